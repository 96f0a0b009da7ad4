"""The source engine: one batched walk of all source rules per file, fixes until stable.

* `lint_source(code, ...)` parses once, builds the import-alias map, walks the tree once and
  calls every active rule's `visit_*` / `leave_*` hooks; positions are computed only for the
  top-level statements that hold findings (`qfix.source.locate`), the whole tree's only when a
  fix needs them (`LintResult.positions`).
* `fix_source(code, ...)` applies the applicable fixes (safe; unsafe with `unsafe_fixes`),
  re-parses the result, re-lints and repeats until nothing changes (Ruff's loop). A fix that
  breaks the syntax is dropped and the file keeps its last good text.

A file that does not parse gives one QF915 `source-parse-error` finding. A file without
findings is never re-printed, so it stays byte-identical.
"""

from __future__ import annotations

import ast
import re
import tokenize
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import libcst as cst

from qfix.types import Applicability, Fix, Location, Severity, Violation
from qfix.source.locate import locate, whole
from qfix.source.names import Names
from qfix.source.preorder import forget_subtrees, index_module
from qfix.source.parse import parse_module
from qfix.source.util import python_tokens
from qfix.source.rule import (
    AddImport,
    FileContext,
    InsertStatements,
    RemoveStatement,
    RemoveUnusedImport,
    Replace,
    Report,
    SourceRule,
)
from qfix.targets import Profile, load_profile

PARSE_ERROR = ("QF915", "source-parse-error")
FIX_ERROR = ("QF916", "fix-failed")
MAX_ITERATIONS = 10

# `# qfix: ignore[QF401, QF402]` (also read by the editor's suppress action, qfix.lsp)
SUPPRESS = re.compile(r"#\s*qfix\s*:\s*ignore(?:\[([A-Za-z0-9_,\s-]*)\])?", re.I)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SUPPRESS_FILE = re.compile(r"#\s*qfix\s*:\s*ignore-file(?:\[([A-Za-z0-9_,\s-]*)\])?", re.I)


# --------------------------------------------------------------------------------------------
# Walking
# --------------------------------------------------------------------------------------------
def walk(
    module: cst.Module,
    visit: dict[type, list[Callable[[Any], None]]],
    leave: dict[type, list[Callable[[Any], None]]],
) -> None:
    """Pre-order, source-order walk over the meaningful nodes (no whitespace/punctuation):
    the module, then each top-level statement's `qfix.source.preorder.Preorder`, the walk the
    file's other whole-file passes share (`subtree`)."""
    for cb in visit.get(cst.Module, ()):
        cb(module)
    for p in index_module(module):
        p.walk(visit, leave)
    for cb in leave.get(cst.Module, ()):
        cb(module)


# --------------------------------------------------------------------------------------------
# Lint
# --------------------------------------------------------------------------------------------
_PROFILES: dict[str, Profile] = {}


def target_profile(name: str) -> Profile:
    """The profile for a `--target` value, loaded once per process (worker processes get
    the name in their Job and load it on first use)."""
    if name not in _PROFILES:
        _PROFILES[name] = load_profile(name)
    return _PROFILES[name]


@dataclass
class LintResult:
    violations: list[Violation]
    module: cst.Module | None
    reports: list[Report] = field(default_factory=list)  # with fixes' edit objects
    _positions: Any = field(default=None, repr=False)

    @property
    def positions(self) -> Any:
        """libcst's PositionProvider mapping for the whole module, made on first use (the
        findings' own locations need only their statements'); None without a module."""
        if self._positions is None and self.module is not None:
            self._positions = whole(self.module)
        return self._positions


def _parse_error(path: str | None, exc: Exception, code: str) -> Violation:
    """QF915 for a file libcst cannot parse, worded by Python's own parser (`ast.parse` compiles,
    it runs nothing): "Missing parentheses in call to 'print'" says a Python 2 file at once,
    where libcst lists the tokens it expected; a file Python accepts is syntax libcst lacks."""
    line = getattr(exc, "raw_line", None) or getattr(exc, "line", None)
    col = getattr(exc, "raw_column", None) or getattr(exc, "column", None)
    msg = getattr(exc, "message", None) or str(exc).splitlines()[0]
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        ast.parse(code)
        msg = f"Python {version} accepts it, but libcst's parser does not ({msg})"
    except SyntaxError as e:
        msg = f"Python {version}: {e.msg}"
        if isinstance(e.lineno, int):
            line, col = e.lineno, max((e.offset or 1) - 1, 0)
    except (RecursionError, MemoryError, ValueError):
        pass
    return Violation(
        code=PARSE_ERROR[0],
        name=PARSE_ERROR[1],
        message=f"Cannot parse the file: {msg}",
        location=Location(path=path, line=line if isinstance(line, int) else 1, col=col if isinstance(col, int) else 0),
        severity=Severity.BLOCKER,
    )


def _suppressions(code: str) -> tuple[dict[int, set[str] | None], set[str] | None | bool]:
    lines: dict[int, set[str] | None] = {}
    file_level: set[str] | None | bool = False
    if "qfix" not in code:
        return lines, file_level
    # Python's (and libcst's) line breaks only: str.splitlines also breaks at \f, \x1c, \u2028...,
    # which would move every comment after one of them to the wrong line
    comments = _comments(code) if SUPPRESS.search(code) else None  # ignore-file matches SUPPRESS too
    for i, text in enumerate(_LINE_BREAK.split(code), start=1):
        if "qfix" not in text:
            continue
        if comments is not None:  # only a comment suppresses: not `"# qfix: ignore"` in a string
            text = comments.get(i, "")
        mf = _SUPPRESS_FILE.search(text)
        if mf:
            codes = {c.strip().upper() for c in (mf.group(1) or "").split(",") if c.strip()}
            if not codes:
                file_level = None
            elif file_level is not None:
                file_level = (file_level or set()) | codes  # type: ignore[operator]
            continue
        m = SUPPRESS.search(text)
        if m:
            codes = {c.strip().upper() for c in (m.group(1) or "").split(",") if c.strip()}
            lines[i] = codes or None
    return lines, file_level


def _comments(code: str) -> dict[int, str] | None:
    """The comment on each line of `code` (Python's tokenizer), or None when the tokenizer cannot
    read the text (then whole lines are searched)."""
    tokens = python_tokens(code)
    if tokens is None:
        return None
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


def _suppressed(v: Violation, lines: dict[int, set[str] | None], file_level: Any) -> bool:
    if file_level is None or (file_level and v.code in file_level):
        return True
    for ln in {v.location.line, v.location.end_line}:
        if ln in lines:
            codes = lines[ln]
            if codes is None or v.code in codes or v.name.upper() in codes:
                return True
    return False


def lint_source(
    code: str,
    *,
    rules: Sequence[type[SourceRule]],
    path: str | None = None,
    target: str | Profile | None = None,
    options: dict[str, Any] | None = None,
    module: cst.Module | None = None,
) -> LintResult:
    """Findings of the given source rules on `code` (the caller selects them:
    `qfix.rules.select(qfix.rules.source_rules(), ...)`). `target`: a Profile, or a target name /
    profile path (resolved once per process; QfixError QF910 / QF912 when unknown or invalid)."""
    tgt = target_profile(target) if isinstance(target, str) else target
    forget_subtrees()  # the last check's statements
    active = [
        r for r in rules if r.applies_to(tgt) and (not r.TRIGGERS or any(t in code for t in r.TRIGGERS))
    ]
    if module is None:
        try:
            module = parse_module(code)
        except (cst.ParserSyntaxError, RecursionError, ValueError, SyntaxError) as exc:  # noqa: PERF203
            return LintResult([_parse_error(path, exc, code)], None)
    if not active:
        return LintResult([], module)

    ctx = FileContext(path, code, module, Names.from_module(module), tgt, dict(options or {}))
    instances = [r(ctx) for r in active]
    visit: dict[type, list[Callable]] = {}
    leave: dict[type, list[Callable]] = {}

    def push_fn(node: cst.FunctionDef) -> None:
        ctx.function_stack.append(node)

    def pop_fn(node: cst.FunctionDef) -> None:
        ctx.function_stack.pop()

    visit[cst.FunctionDef] = [push_fn]
    leave[cst.FunctionDef] = [pop_fn]
    for inst in instances:
        for attr in dir(type(inst)):
            if attr.startswith("visit_") or attr.startswith("leave_"):
                node_type = getattr(cst, attr[6:], None)
                if not isinstance(node_type, type):
                    continue
                table = visit if attr[0] == "v" else leave
                table.setdefault(node_type, []).append(getattr(inst, attr))
    # the scope pop must run after the rules' own leave_FunctionDef hooks
    leave[cst.FunctionDef].append(leave[cst.FunctionDef].pop(0))
    walk(module, visit, leave)
    reports: list[Report] = []
    for inst in instances:
        inst.finish()
        reports.extend(inst.reports)
    if not reports:
        return LintResult([], module)

    positions = locate(module, [rep.node for rep in reports if rep.node is not None])
    lines, file_level = _suppressions(code)
    kept: list[Report] = []
    seen: set[tuple] = set()
    for rep in reports:
        rng = positions.get(rep.node)
        loc = Location(path=path)
        if rng is not None:
            loc = Location(
                path=path,
                line=rng.start.line,
                col=rng.start.column + 1,
                end_line=rng.end.line,
                end_col=rng.end.column + 1,
            )
        rep.violation.location = loc
        key = (rep.violation.code, loc.line, loc.col, rep.violation.message)
        if key in seen or _suppressed(rep.violation, lines, file_level):
            continue
        seen.add(key)
        kept.append(rep)
    kept.sort(key=lambda r: (r.violation.location.line or 0, r.violation.location.col or 0, r.violation.code))
    return LintResult([r.violation for r in kept], module, kept)


def lint_parsed(parsed: Any, **kw: Any) -> LintResult:
    """`lint_source` of a `qfix.source.incremental.Parsed` (the text and its parse, made
    incrementally by the editor): the same result, without parsing the text again."""
    if parsed.module is None:
        return LintResult([_parse_error(kw.get("path"), parsed.error, parsed.text)], None)
    return lint_source(parsed.text, module=parsed.module, **kw)


# --------------------------------------------------------------------------------------------
# Applying fixes
# --------------------------------------------------------------------------------------------
def applicable(fix: Fix | None, unsafe_fixes: bool) -> bool:
    if fix is None or not fix.edits:
        return False
    if fix.applicability is Applicability.SAFE:
        return True
    return unsafe_fixes and fix.applicability is Applicability.UNSAFE


class _Applier(cst.CSTTransformer):
    def __init__(self, edits: Sequence[Any], positions: Any = None, skip: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.skip = skip  # ids of top-level statements known to hold no edit's node
        self.positions = positions
        self.spans: list[tuple[tuple[int, int], tuple[int, int]]] = []
        if positions is not None:
            for e in edits:
                node = getattr(e, "node", None) or getattr(e, "anchor", None)
                rng = positions.get(node) if node is not None else None
                if node is not None and rng is None:
                    self.positions = None  # cannot prune safely
                    break
                if rng is not None:
                    self.spans.append(((rng.start.line, rng.start.column), (rng.end.line, rng.end.column)))
        self.replace: dict[int, cst.CSTNode] = {}
        self.remove: set[int] = set()
        self.after: dict[int, list[cst.BaseStatement]] = {}
        self.before: dict[int, list[cst.BaseStatement]] = {}
        self.top: list[cst.BaseStatement] = []
        for e in edits:
            if isinstance(e, Replace):
                self.replace[id(e.node)] = e.new
            elif isinstance(e, RemoveStatement):
                self.remove.add(id(e.node))
            elif isinstance(e, InsertStatements):
                if e.anchor is None:
                    self.top.extend(e.statements)
                else:
                    (self.before if e.before else self.after).setdefault(id(e.anchor), []).extend(e.statements)

    def on_visit(self, node: cst.CSTNode) -> bool:
        """Descend only into nodes that contain an edit target (prunes most of the tree)."""
        if id(node) in self.skip:
            return False
        if self.positions is None or isinstance(node, cst.Module):
            return True
        rng = self.positions.get(node)
        if rng is None:
            return True
        a, b = (rng.start.line, rng.start.column), (rng.end.line, rng.end.column)
        return any(a <= s and e <= b for s, e in self.spans)

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> Any:
        key = id(original_node)
        if key in self.remove:
            return cst.RemovalSentinel.REMOVE
        node = self.replace.get(key, updated_node)
        if key in self.after or key in self.before:
            return cst.FlattenSentinel([*self.before.get(key, []), node, *self.after.get(key, [])])
        if isinstance(original_node, cst.Module) and self.top:
            return _insert_top(node, self.top)  # type: ignore[arg-type]
        return node


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_future(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and any(isinstance(s, cst.ImportFrom) and not s.relative and getattr(s.module, "value", None) == "__future__" for s in stmt.body)
    )


def _insert_top(module: cst.Module, stmts: Sequence[cst.BaseStatement]) -> cst.Module:
    body = list(module.body)
    i = 0
    if body and _is_docstring(body[0]):
        i = 1
    while i < len(body) and _is_future(body[i]):
        i += 1
    existing = {module.code_for_node(s).strip() for s in body}
    new: list[cst.BaseStatement] = []
    for s in stmts:
        text = module.code_for_node(s).strip()
        if text in existing:
            continue
        existing.add(text)
        new.append(s)
    if not new:
        return module
    if i < len(body):
        # keep the comments/blank lines that preceded the first statement where they were
        first = body[i]
        if isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement)) and first.leading_lines and i == 0:
            new[0] = new[0].with_changes(leading_lines=first.leading_lines)  # type: ignore[union-attr]
            body[i] = first.with_changes(leading_lines=())
    return module.with_changes(body=[*body[:i], *new, *body[i:]])


def apply_fix(module: cst.Module, edits: Sequence[Any]) -> cst.Module:
    """`apply_edits` for one fix applied alone (the editor's quick fix, `Fix.text_edits`): the
    same result, with positions for the top-level statements its edits touch only (the others
    are skipped whole) instead of the whole module's."""
    nodes = [n for e in edits if (n := getattr(e, "node", None) or getattr(e, "anchor", None)) is not None]
    positions = locate(module, nodes)
    skip = frozenset(id(s) for s in module.body if s not in positions)
    return apply_edits(module, edits, positions, skip)


def apply_edits(module: cst.Module, edits: Sequence[Any], positions: Any = None,
                skip: frozenset[int] = frozenset()) -> cst.Module:
    new = module.visit(_Applier(edits, positions, skip))
    imports = [e for e in edits if isinstance(e, AddImport)]
    removals = [e for e in edits if isinstance(e, RemoveUnusedImport)]
    if imports or removals:
        # imported only here: loading libcst.codemod costs ~0.3 s, the editor's first quick fix
        from libcst.codemod import CodemodContext
        from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
    if imports:
        context = CodemodContext()
        for imp in imports:
            AddImportsVisitor.add_needed_import(context, imp.module, imp.obj, imp.asname)
        new = AddImportsVisitor(context).transform_module(new)
    if removals:
        context = CodemodContext()
        for r in removals:
            RemoveImportsVisitor.remove_unused_import(context, r.module, r.obj, r.asname)
        new = RemoveImportsVisitor(context).transform_module(new)
    return new  # type: ignore[return-value]


def _edit_span(positions: Any, edit: Any) -> tuple[int, int] | None:
    node = getattr(edit, "node", None) or getattr(edit, "anchor", None)
    if node is None:
        return None
    rng = positions.get(node)
    if rng is None:
        return None
    return ((rng.start.line, rng.start.column), (rng.end.line, rng.end.column))  # type: ignore[return-value]


@dataclass
class FixResult:
    code: str  # the final text
    fixed: list[Violation]  # findings whose fix was applied
    remaining: list[Violation]  # findings of the final text
    iterations: int
    errors: list[Violation] = field(default_factory=list)
    final: LintResult | None = None  # the lint of `code` (its reports keep their fixes' edits)

    @property
    def changed(self) -> bool:
        return bool(self.fixed)


def fix_source(
    code: str,
    *,
    rules: Sequence[type[SourceRule]],
    path: str | None = None,
    target: str | Profile | None = None,
    options: dict[str, Any] | None = None,
    unsafe_fixes: bool = False,
    first: LintResult | None = None,
    parsed: Any = None,
) -> FixResult:
    """`parsed`: `code`'s `qfix.source.incremental.Parsed` (the editor's): each round's text is
    then generated and re-parsed by its changed statements only, with the same result."""
    result = first or lint_source(code, path=path, rules=rules, target=target, options=options)
    fixed: list[Violation] = []
    errors: list[Violation] = []
    current = code
    iterations = 0
    while iterations < MAX_ITERATIONS:
        todo = [r for r in result.reports if applicable(r.violation.fix, unsafe_fixes)]
        if not todo or result.module is None:
            break
        iterations += 1
        # ranges for the statements the edits touch only (as apply_fix), not the whole module's
        nodes = [n for rep in todo for e in rep.violation.fix.edits  # type: ignore[union-attr]
                 if (n := getattr(e, "node", None) or getattr(e, "anchor", None)) is not None]
        positions = locate(result.module, nodes)
        skip = frozenset(id(s) for s in result.module.body if s not in positions)
        chosen: list[Report] = []
        spans: list[tuple] = []
        for rep in todo:
            mine = [s for s in (_edit_span(positions, e) for e in rep.violation.fix.edits) if s]  # type: ignore[union-attr]
            if any(a[0] < b[1] and b[0] < a[1] for a in mine for b in spans):
                continue  # overlaps an edit chosen this round: next round
            chosen.append(rep)
            spans.extend(mine)
        edits = [e for rep in chosen for e in rep.violation.fix.edits]  # type: ignore[union-attr]
        try:
            new_module = apply_edits(result.module, edits, positions, skip)
            if parsed is not None:
                from qfix.source.incremental import code_of

                new_code = code_of(new_module, parsed)
                parsed = parsed.update(new_code)  # the result must re-parse
                if parsed.module is None:
                    raise parsed.error  # type: ignore[misc]
                new_module = parsed.module
            else:
                new_code = new_module.code
                new_module = parse_module(new_code)  # the result must re-parse
        except Exception as exc:  # noqa: BLE001 - a broken fix must not stop the run
            errors.append(
                Violation(
                    code=FIX_ERROR[0],
                    name=FIX_ERROR[1],
                    message=f"Fix for {', '.join(sorted({r.violation.code for r in chosen}))} was dropped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                    location=Location(path=path, line=1, col=1),
                    severity=Severity.WARNING,
                )
            )
            break
        if new_code == current:
            break
        for rep in chosen:
            rep.violation.applied = True
            fixed.append(rep.violation)
        current = new_code
        result = lint_source(current, path=path, rules=rules, target=target, options=options, module=new_module)
    if iterations >= MAX_ITERATIONS and any(applicable(r.violation.fix, unsafe_fixes) for r in result.reports):
        errors.append(
            Violation(
                code=FIX_ERROR[0],
                name=FIX_ERROR[1],
                message=f"Fixes did not converge after {MAX_ITERATIONS} rounds ({', '.join(sorted({r.violation.code for r in result.reports}))})",
                location=Location(path=path, line=1, col=1),
                severity=Severity.WARNING,
            )
        )
    return FixResult(current, fixed, result.violations, iterations, errors, result)
