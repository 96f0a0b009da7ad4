"""Code actions on a checked Python document (LSP 3.17 "textDocument/codeAction").

* a quick fix per finding whose fix qfix can apply: the finding's own libcst edits applied
  alone to the document's text (`qfix.source.engine.apply_fix`, what the first round of
  `qfix FILE --write` does for it), imports it adds included. Preferred when safe; an unsafe
  one says "(unsafe)" in its title. The result must parse, or no action is offered;
* "Suppress QFxxx with `# qfix: ignore[QFxxx]`": the comment the engine honours
  (`qfix.source.engine.SUPPRESS`) at the end of the finding's first line (else its last line)
  where a comment can go: not inside a string that continues on the next line, not after a
  backslash continuation. An existing `# qfix: ignore[...]` on that line gets the code added;
* `source.fixAll.qfix`: `qfix.source.engine.fix_source` over the document, with the unsafe fixes
  when the settings ask for them, as `qfix FILE --write` gives.

The edits turn the checked text into the fixed text exactly (`qfix.lsp.edits.text_edits`). For a
client that can resolve an action's edit later (`codeAction/resolve`), the quick fixes and the
fix-all are listed without their edit, computed only for the action picked.
"""

from __future__ import annotations

import tokenize
from bisect import bisect_right
from typing import Callable

from lsprotocol import types as lsp

from qfix.lsp.documents import Checked, Finding
from qfix.lsp.edits import text_edits
from qfix.source.engine import SUPPRESS, apply_fix, fix_source
from qfix.source.incremental import Parsed, code_of
from qfix.source.util import python_tokens
from qfix.types import Applicability

FIX_ALL = "source.fixAll.qfix"
QUICK_FIX = lsp.CodeActionKind.QuickFix
UNSUPPRESSIBLE = ("QF915", "QF916")  # not the engine's findings: no comment hides them


def wanted(kind: str, only: list[str] | None) -> bool:
    """`kind` is asked for: no filter, or a filter that is the kind or a parent of it
    (`source` and `source.fixAll` ask for `source.fixAll.qfix`)."""
    return not only or any(kind == o or kind.startswith(f"{o}.") for o in only)


Wrap = Callable[[list[lsp.TextEdit]], lsp.WorkspaceEdit]


def _applicable(finding: Finding, unsafe: bool = True) -> bool:
    """The finding carries edits qfix may apply (a safe fix; an unsafe one too with `unsafe`)."""
    fix = finding.violation.fix
    return (finding.report is not None and fix is not None and bool(fix.edits)
            and (fix.applicability is Applicability.SAFE or (unsafe and fix.applicability is Applicability.UNSAFE)))


def fixed_alone(checked: Checked, finding: Finding) -> str | None:
    """The document's text after this finding's fix alone (None: no fix qfix can apply, or one
    that changes nothing or would not parse)."""
    lint = checked.lint
    if not _applicable(finding) or lint is None or lint.module is None:
        return None
    try:
        module = apply_fix(lint.module, finding.violation.fix.edits)
        base = checked.parsed
        if base is not None and base.module is lint.module:
            base.prepare()  # the statements' lengths (done after the check in the server)
            # the fixed text from the unchanged statements' own text, re-parsed by its changed
            # ones (qfix.source.incremental: the same text and parse as the whole module's)
            new = code_of(module, base)
            ok = base.update(new).module is not None
        else:
            new = module.code
            ok = Parsed.parse(new).module is not None
    except Exception:  # noqa: BLE001 - a broken fix is no action, not a failed request
        return None
    if not ok:  # as the engine does: a fix that breaks the file is dropped
        return None
    return None if new == checked.text else new


def fixed_all(checked: Checked) -> str:
    """The document's text after every fix `qfix FILE --write` applies with these settings."""
    s = checked.settings
    if checked.lint is None or s.error is not None or not any(
            f.violation.fix and f.violation.fix.edits for f in checked.findings):
        return checked.text
    where = str(checked.path) if checked.path is not None else None
    # the check's own lint is the first round's (its reports carry the edits), and each round's
    # text is re-parsed by its changed statements (`parsed`): what `qfix FILE --write` gives
    parsed = checked.parsed if checked.parsed is not None and checked.parsed.module is checked.lint.module else None
    return fix_source(checked.text, rules=s.rules, path=where, target=s.target, options=s.options,
                      unsafe_fixes=s.unsafe_fixes, first=checked.lint, parsed=parsed).code


def code_actions(checked: Checked, findings: list[Finding], only: list[str] | None, wrap: Wrap,
                 lazy: bool = False) -> list[lsp.CodeAction]:
    """The actions for `findings` of `checked` (the ones the client's request is about), of
    the kinds in `only` (all when None), then the fix-all action. `wrap` makes the client's
    WorkspaceEdit from a list of edits on this document. `lazy`: the quick fixes and the fix-all
    come without their edit, which `resolve` adds when the client picks one (the fixed text
    costs a parse of the document, too much for every cursor move)."""
    actions: list[lsp.CodeAction] = []
    if wanted(QUICK_FIX, only):
        for finding in findings:
            fix = quick_fix(checked, finding, wrap, lazy)
            if fix is not None:
                actions.append(fix)
            loc = finding.violation.location
            tokens = _statement_tokens(checked, loc.line, loc.end_line or loc.line) if loc.line is not None else None
            hide = suppress(checked, finding, wrap, tokens)
            if hide is not None:
                actions.append(hide)
    if wanted(FIX_ALL, only):
        everything = fix_all(checked, wrap, lazy)
        if everything is not None:
            actions.append(everything)
    return actions


def _key(finding: Finding) -> dict:
    r = finding.diagnostic.range
    return {"code": finding.violation.code, "range": [r.start.line, r.start.character, r.end.line, r.end.character]}


def quick_fix(checked: Checked, finding: Finding, wrap: Wrap, lazy: bool = False) -> lsp.CodeAction | None:
    if not _applicable(finding):
        return None
    new = None
    if not lazy:
        new = fixed_alone(checked, finding)
        if new is None:
            return None
    fix = finding.violation.fix
    safe = fix.applicability is Applicability.SAFE
    return lsp.CodeAction(
        title=f"qfix {finding.violation.code}: {fix.description}{'' if safe else ' (unsafe)'}",
        kind=QUICK_FIX,
        diagnostics=[finding.diagnostic],
        is_preferred=safe,
        edit=None if new is None else wrap(text_edits(checked.text, new, checked.encoding)),
        data={"qfix": "fix", **_key(finding)} if lazy else None,
    )


def suppress(checked: Checked, finding: Finding, wrap: Wrap,
             tokens: list[tokenize.TokenInfo] | None) -> lsp.CodeAction | None:
    code = finding.violation.code
    loc = finding.violation.location
    if code in UNSUPPRESSIBLE or checked.lint is None or loc.line is None or tokens is None:
        return None
    edit = None
    for line in dict.fromkeys([loc.line, loc.end_line or loc.line]):
        edit = _suppression_on(checked, code, line, tokens)
        if edit is not None:
            break
    if edit is None:
        return None
    return lsp.CodeAction(
        title=f"Suppress {code} with `# qfix: ignore[{code}]`",
        kind=QUICK_FIX,
        diagnostics=[finding.diagnostic],
        edit=wrap([edit]),
    )


def fix_all(checked: Checked, wrap: Wrap, lazy: bool = False) -> lsp.CodeAction | None:
    unsafe = checked.settings.unsafe_fixes
    if checked.lint is None or not any(_applicable(f, unsafe) for f in checked.findings):
        return None
    new = None
    if not lazy:
        new = fixed_all(checked)
        if new == checked.text:
            return None
    return lsp.CodeAction(
        title="qfix: apply all fixes (unsafe ones included)" if unsafe else "qfix: apply all safe fixes",
        kind=FIX_ALL,
        edit=None if new is None else wrap(text_edits(checked.text, new, checked.encoding)),
        data={"qfix": "fixAll"} if lazy else None,
    )


def resolve(checked: Checked, action: lsp.CodeAction, wrap: Wrap) -> lsp.CodeAction:
    """`action` (made by `code_actions(..., lazy=True)` for the same text) with its edit; left
    without one when its finding is gone or its fix no longer applies."""
    data = action.data if isinstance(action.data, dict) else {}
    new = None
    if data.get("qfix") == "fixAll":
        new = fixed_all(checked)
    elif data.get("qfix") == "fix":
        finding = next((f for f in checked.findings if _key(f) == {"code": data.get("code"), "range": data.get("range")}), None)
        new = fixed_alone(checked, finding) if finding is not None and _applicable(finding) else None
    if new is not None and new != checked.text:
        action.edit = wrap(text_edits(checked.text, new, checked.encoding))
    return action


# --------------------------------------------------------------------------------------------
# Where the suppression comment goes
# --------------------------------------------------------------------------------------------
def _statement_tokens(checked: Checked, first: int, last: int) -> list[tokenize.TokenInfo] | None:
    """The tokens of the top-level statements holding one-based lines `first`..`last`, with
    the whole text's line numbers: what the suppression needs to know of those lines. A
    top-level statement starts at column 0 with nothing open, so its tokens are the whole
    text's; tokenizing 1,000 lines costs ~100 ms, a code action list is asked for at every move
    of the cursor. Without the statements' lengths (`Parsed.prepare`), the whole text."""
    p, index = checked.parsed, checked.index
    if (p is None or p.lengths is None or checked.lint is None or p.module is not checked.lint.module
            or not 1 <= first <= last <= len(index.starts)):
        return python_tokens(checked.text)
    lo, hi = index.starts[first - 1], index.starts[last - 1]
    start = end = None
    at = p.head
    for length in p.lengths:
        if start is None and at <= lo < at + length:
            start = at
        if at <= hi < at + length:
            end = at + length
            break
        at += length
    if start is None or end is None:
        return python_tokens(checked.text)
    tokens = python_tokens(checked.text[start:end])
    if tokens is None:
        return None
    shift = bisect_right(index.starts, start) - 1
    return [t._replace(start=(t.start[0] + shift, t.start[1]), end=(t.end[0] + shift, t.end[1])) for t in tokens]


_LINE_TOKENS = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)


def _suppression_on(checked: Checked, code: str, line: int, tokens: list[tokenize.TokenInfo]) -> lsp.TextEdit | None:
    """The edit that suppresses `code` on one-based `line`, None where no comment can go."""
    if any(t.start[0] <= line < t.end[0] for t in tokens if t.type not in _LINE_TOKENS):
        return None  # the line ends inside a token (a string continued on the next line)
    text = checked.index.line(line - 1)
    comments = [t for t in tokens if t.type == tokenize.COMMENT and t.start[0] == line]
    if not comments and text.rstrip().endswith("\\"):
        return None  # a backslash continuation: a comment after it is a syntax error
    enc = checked.encoding
    for t in comments:
        if "ignore-file" in t.string.lower():
            return None  # the engine reads no line suppression on a line with a file-level one
        m = SUPPRESS.search(t.string)
        if m is None:
            continue
        if m.group(1) is None:
            return None  # a bare `# qfix: ignore` already hides every code
        inner = m.group(1)
        col = t.start[1] + m.start(1)
        new = f"{inner.rstrip()}, {code}" if inner.strip() else code
        rng = lsp.Range(checked.index.position(line - 1, col, enc), checked.index.position(line - 1, col + len(inner), enc))
        return lsp.TextEdit(range=rng, new_text=new)
    end = len(text.rstrip())
    rng = lsp.Range(checked.index.position(line - 1, end, enc), checked.index.position(line - 1, len(text), enc))
    return lsp.TextEdit(range=rng, new_text=f"  # qfix: ignore[{code}]")
