"""Checking one Python document's text: what `qfix FILE` reports for it, as diagnostics, kept
with the engine's reports (their libcst edits) so that code actions can apply one fix alone.

The text is the editor's (unsaved changes included), never the file on disk. An edit is parsed
by its changed top-level statements only (`qfix.source.incremental`, the previous check's parse
handed in): the module is the full parse's, so the findings are. As in
`qfix.source.runner.process_file`, a text that does not parse is one QF915 finding, one nested
too deeply for the parser a QF915 warning, and an unexpected error in a rule a QF916 warning:
a document never stops the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types as lsp

from qfix.lsp.diagnostics import error_diagnostic, source_diagnostic
from qfix.lsp.positions import UTF16, LineIndex
from qfix.lsp.settings import Settings
from qfix.source.engine import LintResult, lint_parsed
from qfix.source.incremental import Parsed
from qfix.source.rule import Report
from qfix.types import Location, Severity, Violation


@dataclass
class Finding:
    violation: Violation
    diagnostic: lsp.Diagnostic
    report: Report | None = None  # the engine's report (with the fix's libcst edits), if any


@dataclass
class Checked:
    """One check of one text of a document."""

    text: str
    path: Path | None
    settings: Settings
    encoding: str = UTF16
    index: LineIndex = field(init=False)
    findings: list[Finding] = field(default_factory=list)
    lint: LintResult | None = None  # None when the configuration or the text stopped the check
    parsed: Parsed | None = None  # the text's parse, the base of the next edit's

    def __post_init__(self) -> None:
        self.index = LineIndex(self.text)

    @property
    def diagnostics(self) -> list[lsp.Diagnostic]:
        return [f.diagnostic for f in self.findings]

    def at(self, diagnostic: lsp.Diagnostic) -> Finding | None:
        """The finding a client's diagnostic stands for (same code and range), if any."""
        for f in self.findings:
            if f.diagnostic.code == diagnostic.code and f.diagnostic.range == diagnostic.range:
                return f
        return None

    def overlapping(self, rng: lsp.Range) -> list[Finding]:
        """The findings whose range touches `rng` (a client that sends no diagnostics)."""
        def key(p: lsp.Position) -> tuple[int, int]:
            return p.line, p.character
        return [f for f in self.findings
                if key(f.diagnostic.range.start) <= key(rng.end) and key(rng.start) <= key(f.diagnostic.range.end)]


def check_python(text: str, path: Path | None, settings: Settings, encoding: str = UTF16,
                 previous: Parsed | None = None) -> Checked:
    """Lint `text` (the document at `path`, None when unsaved) with `settings`; `previous`: the
    parse of the document's text before this edit (its unchanged statements are reused)."""
    checked = Checked(text, path, settings, encoding)
    if settings.error is not None:
        checked.findings = [Finding(Violation(settings.error.code, "configuration", settings.error.message),
                                    error_diagnostic(settings.error.code, settings.error.message))]
        return checked
    if settings.excluded:
        return checked
    where = str(path) if path is not None else None
    try:
        checked.parsed = previous.update(text) if previous is not None else Parsed.parse(text)
        lint = lint_parsed(checked.parsed, path=where, rules=settings.rules, target=settings.target,
                           options=settings.options)
    except RecursionError:
        return _one(checked, "QF915", "source-parse-error", "File too deeply nested to analyse", Severity.WARNING)
    except Exception as exc:  # noqa: BLE001 - a rule's bug must not stop the server
        return _one(checked, "QF916", "fix-failed",
                    f"Internal error while checking the file: {type(exc).__name__}: {exc}", Severity.WARNING)
    checked.lint = lint
    by_violation = {id(r.violation): r for r in lint.reports}
    checked.findings = [Finding(v, source_diagnostic(v, checked.index, encoding), by_violation.get(id(v)))
                        for v in lint.violations]
    return checked


def _one(checked: Checked, code: str, name: str, message: str, severity: Severity) -> Checked:
    v = Violation(code, name, message, Location(line=1, col=1), severity)
    checked.findings = [Finding(v, source_diagnostic(v, checked.index, checked.encoding))]
    return checked
