"""One Markdown document per code, for `qfix rule CODE`, SARIF's rule metadata and the editor.

A rule code's document is its rule module's docstring: one module per code holds both its
model side and its source side, so the document covers both. It starts with `QFxxx name: ...`
and has Ruff's sections (What it does, Why is this bad?, Example, Use instead, Fix safety,
Targets). An error code's (QF9xx) document comes from `qfix.errors.DOCS`.
"""

from __future__ import annotations

import inspect
import re

from qfix import HOME
from qfix.errors import CODES, DOCS
from qfix.rules import all_rules
from qfix.types import RuleDoc, Severity

RULE_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety", "Targets")

# Where a code's page is published (qfix.HOME: the project): the one place that says so (the
# editor's diagnostics and SARIF's rules link to it; pyproject's [project.urls] says the same).
# The pages are DESIGN.md's catalogue, `rules/<CODE>.md` at the top of the repository, made by
# `pages()` below. `qfix rule CODE` prints the same document.
RULE_URL = HOME + "/blob/main/rules/{code}.md"


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
    return RuleDoc(code, name, severity, summary, description, doc, error, doc_url(code))


# --------------------------------------------------------------------------------------------
# The catalogue's pages (DESIGN: `rules/` at the top of the repository, generated from the rule
# docstrings; tests/rules/test_catalogue_pages.py fails when a page is stale). `doc_url` links
# to them.
# --------------------------------------------------------------------------------------------
def pages() -> dict[str, str]:
    """File name -> Markdown: one page per code (its document, the first line as the title),
    and `README.md`, the index: every code with its name and summary, linked to its page."""
    out: dict[str, str] = {}
    rows = ["| code | name | summary |", "|---|---|---|"]
    errors = ["| code | name | summary |", "|---|---|---|"]
    for d in catalogue():
        title, _, body = d.doc.strip().partition("\n\n")
        out[f"{d.code}.md"] = f"# {' '.join(title.split())}\n\n{body.strip()}\n"
        summary = " ".join(d.summary.split()).replace("|", "\\|")
        row = f"| [{d.code}]({d.code}.md) | {d.name} | {summary} |"
        (errors if d.error else rows).append(row)
    out["README.md"] = "\n".join([
        "# qfix rules", "",
        "Generated from the rule modules' docstrings (`python -m qfix.rules.docs`); `qfix rule CODE` "
        "prints the same page.", "", "## Rules", "", *rows, "", "## Errors (QF9xx)", "", *errors, ""])
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m qfix.rules.docs [FOLDER]`: write the pages into FOLDER (default `rules`),
    removing pages of codes that no longer exist."""
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "rules")
    folder.mkdir(parents=True, exist_ok=True)
    wanted = pages()
    for old in folder.glob("*.md"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    print(f"{len(wanted)} pages in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
