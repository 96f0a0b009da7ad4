"""One Markdown document per code, for `qfix rule CODE` (and later SARIF and the editor).

A rule code's document is its rule module's docstring: one module per code holds both its
model side and its source side, so the document covers both. It starts with `QFxxx name: ...`
and has Ruff's sections (What it does, Why is this bad?, Example, Use instead, Fix safety,
Targets). An error code's (QF9xx) document comes from `qfix.errors.DOCS`.
"""

from __future__ import annotations

import inspect

from qfix.errors import CODES, DOCS
from qfix.rules import all_rules

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
