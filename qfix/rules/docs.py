"""One Markdown document per code, for `qfix rule CODE`, SARIF's rule metadata and the editor.

A rule code's document is its rule module's docstring: one module per code holds both its
model side and its source side, so the document covers both. It starts with `QFxxx name: ...`
and has Ruff's sections (What it does, Why is this bad?, Example, Use instead, Fix safety,
Targets). An error code's (QF9xx) document comes from `qfix.errors.DOCS`.
"""

from __future__ import annotations

import inspect
import re

from qfix.errors import CODES, DOCS
from qfix.rules import all_rules
from qfix.types import RuleDoc, Severity

RULE_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety", "Targets")

# Where a code's page is published: the one place that says so (the editor's diagnostics link
# to it). The project has no published address yet; this follows DESIGN.md's catalogue
# (`rules/<CODE>.md` at the top of the repository). `qfix rule CODE` prints the same document.
RULE_URL = "https://github.com/qfix-dev/qfix/blob/main/rules/{code}.md"


def doc_url(code: str) -> str:
    """The address of the page of rule or error `code` (`RULE_URL`)."""
    return RULE_URL.format(code=code.strip().upper())


def doc_for(code: str) -> str | None:
    """The whole document for a rule code or a QF9xx error code (any case), None if unknown."""
    code = code.strip().upper()
    for rule in all_rules():
        if rule.code == code:
            return inspect.cleandoc(inspect.getmodule(rule).__doc__ or "")
    if code in DOCS:
        return f"{code} {CODES[code]} (a qfix error)\n\n{inspect.cleandoc(DOCS[code])}"
    return None


def catalogue() -> list[RuleDoc]:
    """Every rule code (sorted), then every QF9xx error code (sorted), with its document. A code
    with several sides takes the severity of its first side (model, source, verify), as the
    rules' registry lists them."""
    out: dict[str, RuleDoc] = {}
    for rule in all_rules():
        if rule.code not in out:
            out[rule.code] = _entry(rule.code, rule.name, getattr(rule, "severity", Severity.BLOCKER), False)
    rules = [out[c] for c in sorted(out)]
    errors = [_entry(c, CODES[c], Severity.BLOCKER, True) for c in sorted(CODES)]
    return rules + errors


def _entry(code: str, name: str, severity: Severity, error: bool) -> RuleDoc:
    doc = doc_for(code) or code
    head, _, rest = doc.partition("\n")
    summary = head.removeprefix(f"{code} {name}").lstrip(": ").strip() or name
    sections = re.split(r"^## .+$", rest, flags=re.M)
    description = sections[1].strip() if len(sections) > 1 else summary
    if error:  # its head says only "(a qfix error)": the first sentence of its cause says more
        summary = re.split(r"(?<=\.)\s", " ".join(description.split()), maxsplit=1)[0]
    return RuleDoc(code, name, severity, summary, description, doc, error)
