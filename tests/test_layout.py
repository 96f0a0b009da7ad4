"""The package layout as a contract: which package may import which, and where TensorFlow lives.

Floors, top to bottom (qfix/<name>/ packages and qfix/<name>.py modules alike):

    cli → lsp → jobs → report, rules → source → targets, convert → model → atomic → errors, types

A module may import its own package and any lower floor; never a higher floor, never a sibling
on its own floor (SIBLING_EDGES lists the one-way exceptions and why). `qfix/__init__.py`
(version only) is below everything; `qfix/__main__.py` is above everything.

TensorFlow and its family (HEAVY) are imported only under qfix/convert/, so the static side,
the .tflite reader and the source codemods run without them. Both rules are checked on every
`import` statement in the source, including those inside functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QFIX = REPO / "qfix"

HEAVY = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization", "tensorflow_hub", "ai_edge_litert")
CONVERSION_PACKAGE = "convert"

FLOORS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"lsp"},  # the editor's front end: `qfix lsp` starts it; it asks the jobs and the source engine
    {"jobs"},
    {"report", "rules"},
    {"source"},
    {"targets", "convert"},
    {"model"},
    {"atomic"},
    {"errors", "types"},
    {"qfix"},  # the root package: qfix/__init__.py, metadata only
]

# (importer package, imported package) pairs allowed on one floor, with why.
SIBLING_EDGES = {
    # QfixError lives in types.py so every floor can raise and catch it; errors.py is the catalogue
    # of QF9xx codes that builds one. types.py imports nothing of qfix's, so this cannot cycle.
    ("errors", "types"),
    # A target's recipe lives in its TOML profile, the only source of a target's facts, so the
    # converter reads it from targets. targets is TensorFlow-free and never imports convert.
    ("convert", "targets"),
}

# Scripts qfix runs as child processes of their own (`python <file>`), never imports: a heavy
# library there is not loaded into qfix. The TFLM child runs LiteRT's reference kernels on the
# same inputs beside the TFLM interpreter, so the two native runtimes share one isolated process.
CHILD_SCRIPTS: dict[str, set[str]] = {"qfix.targets.compilers.tflm_child": {"ai_edge_litert"}}

# Today's violations, each being removed on another branch; emptied at merge. An entry that no
# longer occurs fails the test too, so the list can only shrink.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()  # emptied by the renovation; keep it empty


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    """qfix.rules.base -> rules; qfix.errors -> errors; qfix -> qfix."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    """Every absolute module name imported anywhere in the file (`from qfix import x` -> qfix.x)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the project uses absolute qfix.x.y)"
            names.add(node.module)
            if node.module == "qfix":
                # `from qfix import rules` imports the package qfix.rules; `__version__` is an attribute.
                names.update(f"qfix.{a.name}" for a in node.names if (QFIX / a.name).exists() or (QFIX / f"{a.name}.py").exists())
    return names


@cache  # parsed once for the whole file
def _modules() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(QFIX.rglob("*.py"))}


def _floor(package: str) -> int:
    for i, floor in enumerate(FLOORS):
        if package in floor:
            return i
    raise AssertionError(f"package qfix.{package} has no floor in tests/test_layout.py FLOORS: place it")


def _violations() -> set[tuple[str, str]]:
    found = set()
    for module, imported in _modules().items():
        pkg = _package(module)
        for name in imported:
            top = name.split(".")[0]
            if top in HEAVY and pkg != CONVERSION_PACKAGE and top not in CHILD_SCRIPTS.get(module, ()):
                found.add((module, name.split(".")[0]))
            if top != "qfix" or name == "qfix":
                continue
            target = _package(name)
            if target == pkg or (pkg, target) in SIBLING_EDGES:
                continue
            if _floor(target) <= _floor(pkg):  # upward, or a sibling on the same floor
                found.add((module, f"qfix.{target}"))
    return found


def test_every_package_has_a_floor():
    packages = {_package(m) for m in _modules()}
    for pkg in packages:
        _floor(pkg)
    assert packages >= {"cli", "jobs", "report", "rules", "source", "targets", "convert", "model"}


def test_no_upward_or_sibling_import_and_heavy_libraries_only_in_convert():
    found = _violations()
    new = sorted(found - KNOWN_VIOLATIONS)
    assert not new, "imports against the layout (see this file's docstring):\n" + "\n".join(f"  {m} imports {n}" for m, n in new)
    gone = sorted(KNOWN_VIOLATIONS - found)
    assert not gone, "fixed, remove from KNOWN_VIOLATIONS:\n" + "\n".join(f"  {m} -> {n}" for m, n in gone)


def test_no_import_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for module, imported in _modules().items():
        for name in imported:
            if name.startswith("qfix.") and (module, f"qfix.{_package(name)}") not in KNOWN_VIOLATIONS:
                edges.setdefault(_package(module), set()).add(_package(name))

    def cycle_from(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == node:
                continue
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            found = cycle_from(nxt, path + [nxt])
            if found:
                return found
        return None

    for start in sorted(edges):
        cycle = cycle_from(start, [start])
        assert cycle is None, "import cycle between packages: " + " → ".join(cycle)


def test_the_scan_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    import tensorflow as tf\n    from qfix import rules\n    from qfix import __version__\n")
    assert _imports(src) == {"tensorflow", "qfix", "qfix.rules"}


def test_importing_every_module_outside_convert_leaves_heavy_libraries_unloaded():
    # __main__ is left out: importing it runs the CLI.
    modules = sorted(m for m in _modules() if _package(m) not in (CONVERSION_PACKAGE, "__main__"))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(h for h in {HEAVY!r} if h in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"imported by qfix modules outside qfix/{CONVERSION_PACKAGE}/: {r.stdout}"
    assert len(modules) > 40  # the walk found the tree


def test_source_rules_and_engine_leave_numpy_unloaded():
    # The LSP and `qfix script.py` load the whole rule catalogue, which imports model-side modules
    # (qfix.model.edit, the rewrites, qfix.targets.check); those import numpy where they use it.
    code = ("from qfix.rules import source_rules; source_rules(); import qfix.source.engine, sys; "
            "print('numpy' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
