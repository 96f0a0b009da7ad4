"""qfix's findings as LSP diagnostics (LSP 3.17 "Diagnostic").

Each diagnostic has `source` "qfix", the finding's `code` (QFxxx) with a `codeDescription` link
to the rule's page (`qfix.rules.docs.doc_url`), its message and a severity: blocker → Error,
warning → Warning, info → Information. A Python finding spans the exact expression libcst
located (converted to the client's position encoding); a model finding, or an error about the
configuration, sits on the file's first character. A display-only fix (a suggestion qfix cannot
apply, such as a code template) is shown under the message as `help: ...`, as the command line
prints it, since no code action carries it.
"""

from __future__ import annotations

from lsprotocol import types as lsp

from qfix.lsp.positions import UTF16, LineIndex, finding_range
from qfix.rules.docs import doc_url
from qfix.types import Applicability, Severity, Violation

SOURCE = "qfix"
SEVERITY = {
    Severity.BLOCKER: lsp.DiagnosticSeverity.Error,
    Severity.WARNING: lsp.DiagnosticSeverity.Warning,
    Severity.INFO: lsp.DiagnosticSeverity.Information,
}
PARSE_ERROR = "QF915"
START = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))


def _message(v: Violation) -> str:
    if v.fix is not None and v.fix.applicability is Applicability.DISPLAY_ONLY and v.fix.description:
        return f"{v.message}\nhelp: {v.fix.description}"
    return v.message


def _diagnostic(v: Violation, rng: lsp.Range) -> lsp.Diagnostic:
    return lsp.Diagnostic(
        range=rng,
        message=_message(v),
        severity=SEVERITY.get(v.severity, lsp.DiagnosticSeverity.Error),
        code=v.code,
        code_description=lsp.CodeDescription(href=doc_url(v.code)),
        source=SOURCE,
    )


def source_diagnostic(v: Violation, index: LineIndex, encoding: str = UTF16) -> lsp.Diagnostic:
    """The diagnostic of a finding in the Python text `index` holds."""
    loc = v.location
    if v.code == PARSE_ERROR and loc.line is not None:
        # libcst's syntax errors give a zero-based column (ParserSyntaxError.raw_column)
        # and no end: from there to the end of the line
        rng = finding_range(index, loc.line, (loc.col or 0) + 1, None, None, encoding)
    else:
        rng = finding_range(index, loc.line, loc.col, loc.end_line, loc.end_col, encoding)
    return _diagnostic(v, rng)


def model_diagnostic(v: Violation) -> lsp.Diagnostic:
    """The diagnostic of a `.keras` model's finding: on the file's first character (the file is
    a zip archive: no text position names a layer), its message naming the layer."""
    layer = v.location.layer
    if layer and f"'{layer}'" not in v.message:
        v = Violation(v.code, v.name, f"layer '{layer}': {v.message}", v.location, v.severity, v.fix)
    return _diagnostic(v, START)


def error_diagnostic(code: str, message: str, severity: Severity = Severity.BLOCKER) -> lsp.Diagnostic:
    """A diagnostic for an error that stops the check (QF9xx: bad configuration, unreadable
    model, internal error), on the file's first character."""
    return _diagnostic(Violation(code, "error", message, severity=severity), START)
