"""Whether a name a fix inserts will resolve when the fixed script runs, and the import it needs.

A fix that writes `converter.representative_dataset = calib.representative_dataset` must also
make `calib` a name of the script, or the script dies with NameError. `reference()` turns a
setting that names an object (`pkg.module.obj`, `pkg.module:obj`, or a bare name the file
defines) into the code to write, the `import` to add, or the reason it cannot be inserted.

Nothing is imported to find out: a module is looked for as a file beside the script
(`python script.py` puts the script's folder first on `sys.path`) and among the installed
top-level packages (`PathFinder.find_spec` of a top-level name reads no code), and the
object as a definition in the module's text.
"""

from __future__ import annotations

import builtins
import importlib.machinery
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from qfix.source.names import Names, dotted
from qfix.source.util import iter_nodes


@dataclass(frozen=True)
class Reference:
    """`code`: the expression to write; `module`: to `import` first (None: nothing to import);
    `problem`: why the expression would not resolve (then nothing may be inserted)."""

    code: str
    module: str | None = None
    problem: str | None = None
    asname: str | None = None  # `import module as asname`: the module's own name is taken in the file


def reference(setting: str, names: Names, module: cst.Module, script: str | None, before: cst.CSTNode | None = None) -> Reference:
    """How to write the object `setting` names in this file.

    `setting`: `pkg.mod.obj` or `pkg.mod:obj` (an object of an importable module), or a bare
    name bound in the file (a def, class, assignment or import; at module level before the
    statement `before`, when that is a module-level statement). `script`: the file's path
    (None for text without a file: the module is then not looked for)."""
    text = setting.strip()
    if ":" in text:
        mod, _, obj = text.partition(":")
    else:
        mod, _, obj = text.rpartition(".")
    code = f"{mod}.{obj}" if mod else obj
    try:
        node = cst.parse_expression(code)
    except cst.ParserSyntaxError:
        return Reference(code, problem=f"`{setting}` is not a Python name")
    if dotted(node) is None:
        return Reference(code, problem=f"`{setting}` is not a dotted name (`module.object`)")
    if not mod:
        if obj in names.aliases or _bound_before(module, obj, before):
            return Reference(code)
        return Reference(code, problem=f"`{obj}` is not defined in this file before the converter is set up, and names no module (write `module.{obj}`)")
    taken = bound_names(module)
    local = names.local_for(code)
    if local is not None and local.split(".")[0] not in taken:  # already imported (`import calib`, `from calib import gen as g`)
        return Reference(local)
    head = mod.split(".")[0]
    asname = None
    if head in taken or names.aliases.get(head, mod) not in (mod, head):
        # `calib = None` in the function the line goes into (or anywhere: an import binds at
        # module level, and every scope that binds the name hides it): a name no scope uses
        asname = free_name(mod.split(".")[-1] + "_module", module)
        code = f"{asname}.{obj}"
    if script is None:
        return Reference(code, module=mod, asname=asname)
    where = _module_file(mod, Path(script).resolve().parent)
    if where is None:
        return Reference(code, problem=f"module `{mod}` is neither beside {Path(script).name} nor installed: the inserted `import {mod}` would fail")
    if where.suffix == ".py" and not _defines(where, obj):
        return Reference(code, problem=f"{where.name} defines no `{obj}`")
    return Reference(code, module=mod, asname=asname)


def bound_names(module: cst.Module) -> set[str]:
    """Every name the file binds other than by an import, in any scope: assignment and loop
    targets, parameters, defs, classes, `as` names of `with` / `except`, walrus, `global`
    ones. A name an inserted import brings in must be none of these, or some scope hides it."""
    out: set[str] = set()

    def targets(t: cst.CSTNode) -> None:
        if isinstance(t, cst.Name):
            out.add(t.value)
        elif isinstance(t, (cst.Tuple, cst.List)):
            for e in t.elements:
                targets(e.value)
        elif isinstance(t, cst.StarredElement):
            targets(t.value)

    for n in iter_nodes(module):
        if isinstance(n, (cst.FunctionDef, cst.ClassDef)):
            out.add(n.name.value)
        elif isinstance(n, cst.Param):
            out.add(n.name.value)
        elif isinstance(n, cst.AssignTarget):
            targets(n.target)
        elif isinstance(n, (cst.AnnAssign, cst.AugAssign, cst.NamedExpr)):
            targets(n.target)
        elif isinstance(n, (cst.For, cst.CompFor)):
            targets(n.target)
        elif isinstance(n, (cst.WithItem, cst.ExceptHandler)) and n.asname is not None:  # type: ignore[union-attr]
            targets(n.asname.name)  # type: ignore[union-attr]
        elif isinstance(n, cst.Global):
            out.update(g.name.value for g in n.names)
    return out


def free_name(base: str, module: cst.Module) -> str:
    """`base`, `base_2`, ...: the first that no `Name` of the file spells (no scope uses it)."""
    used = {n.value for n in iter_nodes(module) if isinstance(n, cst.Name)}
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    return name


def _module_file(mod: str, folder: Path) -> Path | None:
    parts = mod.split(".")
    found = _under(folder, parts)
    if found is not None:
        return found
    # installed: sys.path without qfix's own working folder (`python -m qfix` puts it there;
    # the script will not have it), searched by file: nothing is imported
    cwd = Path.cwd().resolve()
    search = [p for p in sys.path if p and Path(p).resolve() != cwd]
    try:
        spec = importlib.machinery.PathFinder.find_spec(parts[0], search)
    except (ImportError, ValueError, OSError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        return Path(spec.origin) if spec.origin and spec.origin not in ("built-in", "frozen") else Path(parts[0])
    for location in spec.submodule_search_locations or ():
        found = _under(Path(location).parent, parts)
        if found is not None:
            return found
    return None


def _under(root: Path, parts: list[str]) -> Path | None:
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _defines(path: Path, obj: str) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    name = re.escape(obj)
    return re.search(rf"^(?:async\s+def|def|class)\s+{name}\b|^{name}\s*(?::[^=]*)?=[^=]|\bimport\b.*\b{name}\b", text, re.M) is not None


def _bound_before(module: cst.Module, name: str, before: cst.CSTNode | None) -> bool:
    """`name` is bound by a module-level statement ahead of `before` when `before` is one;
    otherwise (a converter set up in a function, which runs after the module is loaded) by any
    module-level statement or a def / assignment inside a function. Never a builtin."""
    if hasattr(builtins, name):
        return False  # the docs' placeholder `input`: a builtin is never the generator
    for stmt in module.body:
        if stmt is before:
            return False
        if _binds(stmt, name):
            return True
    return any(_binds(n, name) for n in iter_nodes(module) if isinstance(n, (cst.FunctionDef, cst.SimpleStatementLine)))


def _binds(stmt: cst.CSTNode, name: str) -> bool:
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return stmt.name.value == name
    if isinstance(stmt, cst.SimpleStatementLine):
        for small in stmt.body:
            targets = []
            if isinstance(small, cst.Assign):
                targets = [t.target for t in small.targets]
            elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                targets = [small.target]
            if any(isinstance(t, cst.Name) and t.value == name for t in targets):
                return True
    if isinstance(stmt, (cst.If, cst.Try, cst.With)):
        body = stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else ()
        return any(_binds(s, name) for s in body)
    return False
