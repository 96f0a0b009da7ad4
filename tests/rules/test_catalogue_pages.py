"""The rule catalogue (`rules/` at the top of the repository, DESIGN.md) is what the rule
docstrings generate: the editor's diagnostics and SARIF's rules link to these pages, so a
stale or missing page is a broken link. Regenerate with `python -m qfix.rules.docs`."""

from __future__ import annotations

from pathlib import Path

from qfix.rules.docs import catalogue, doc_url, pages

RULES = Path(__file__).resolve().parents[2] / "rules"


def test_every_page_is_the_generated_one():
    wanted = pages()
    have = {p.name: p.read_text(encoding="utf-8") for p in RULES.glob("*.md")}
    assert sorted(have) == sorted(wanted), "rules/ is stale: run python -m qfix.rules.docs"
    stale = [name for name, text in wanted.items() if have[name] != text]
    assert not stale, f"stale pages {stale}: run python -m qfix.rules.docs"


def test_links_point_at_the_pages():
    for d in catalogue():
        url = doc_url(d.code)
        assert url.endswith(f"/rules/{d.code}.md") and (RULES / f"{d.code}.md").exists()


def test_pyproject_declares_the_same_addresses():
    import tomllib

    from qfix import HOME
    from qfix.rules.docs import RULE_URL

    urls = tomllib.loads((RULES.parent / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Homepage"] == HOME and RULE_URL.format(code="QF101") == f"{urls['Rules']}/QF101.md"
