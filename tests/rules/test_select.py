"""One rule selection for both front ends (`qfix.rules.select`, Ruff semantics)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qfix.rules import all_rules, model_rules, select, source_rules, unknown_selectors


def codes(rules) -> set[str]:
    return {r.code for r in rules}


@pytest.mark.parametrize("side", [model_rules, source_rules], ids=["model", "source"])
def test_selection_semantics_are_the_same_on_both_sides(side):
    rules = side()
    every = codes(rules)
    assert codes(select(rules)) == every
    assert codes(select(rules, ["ALL"])) == every
    assert codes(select(rules, ["all"], ["ALL"])) == set()
    # a prefix selects every code it starts
    assert codes(select(rules, ["QF3"])) == {c for c in every if c.startswith("QF3")}
    assert codes(select(rules, ["qf3"])) == {c for c in every if c.startswith("QF3")}
    # ignore applies after select, with the same selectors
    assert codes(select(rules, ["QF3"], ["QF302"])) == {c for c in every if c.startswith("QF3")} - {"QF302"}
    # a name selects its rule, in any case (the CLI upper-cases its values)
    for rule in rules:
        assert codes(select(rules, [rule.name])) == {rule.code}
        assert codes(select(rules, [rule.name.upper()])) == {rule.code}
        assert rule.code not in codes(select(rules, None, [rule.name]))
    # order is kept, and blanks select nothing extra
    assert [r.code for r in select(rules, ["QF", " "])] == [r.code for r in rules]


def test_a_code_on_both_sides_is_selected_on_both_sides():
    both = codes(model_rules()) & codes(source_rules())
    assert {"QF302", "QF202"} <= both
    for code in both:
        assert codes(select(model_rules(), [code])) == codes(select(source_rules(), [code])) == {code}


def test_unknown_selectors():
    rule = all_rules()[0]
    known = ["ALL", "all", "QF", "QF3", "QF302", "qf302", rule.name, rule.name.upper(), "QF9", "QF908", "QF91"]
    assert unknown_selectors(known) == []
    assert unknown_selectors(["QF302", "QF399", "nope", "QF9999", "E501"]) == ["QF399", "nope", "QF9999", "E501"]


def test_the_source_engine_does_not_import_the_rules():
    """The rules are handed to the engine and runner; `source/` sits below `rules/`."""
    code = (
        "import sys\nimport qfix.source.engine, qfix.source.runner, qfix.source.rule\n"
        "assert 'qfix.rules' not in sys.modules, sorted(m for m in sys.modules if m.startswith('qfix.rules'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
