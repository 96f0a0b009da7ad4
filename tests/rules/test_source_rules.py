"""Every source rule's embedded cases, plus the fix invariants (Ruff's test harness):
the output re-parses, a second run changes nothing, the rule no longer offers that fix,
and a file without findings is left byte-identical."""

from __future__ import annotations

import re

import libcst as cst
import pytest

from qfix.rules import source_rules
from qfix.source.engine import fix_source, lint_source
from qfix.types import Applicability

RULES = source_rules()


def _cases(kind: str):
    for rule in RULES:
        for i, case in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, case, id=f"{rule.code}-{kind}-{i}")


def test_rules_registered():
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes)), codes
    assert {"QF101", "QF104", "QF202", "QF204", "QF205", "QF301", "QF302", "QF401", "QF402", "QF403", "QF404", "QF501"} <= set(codes)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_metadata(rule):  # the rule's document: tests/rules/test_docs.py
    assert re.fullmatch(r"QF\d{3}", rule.code)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name)
    assert rule.__module__.rsplit(".", 1)[-1] == rule.name.replace("-", "_")
    assert rule.VALID and rule.INVALID, rule.code


@pytest.mark.parametrize("rule,case", list(_cases("VALID")))
def test_valid(rule, case):
    code = case.source()
    res = lint_source(code, rules=[rule], target=case.target, options=case.options)
    assert [v for v in res.violations if v.code == rule.code] == []
    # no findings: the fixer leaves the text byte-identical
    fr = fix_source(code, rules=[rule], target=case.target, options=case.options, unsafe_fixes=True)
    assert fr.code == code


@pytest.mark.parametrize("rule,case", list(_cases("INVALID")))
def test_invalid(rule, case):
    code = case.source()
    res = lint_source(code, rules=[rule], target=case.target, options=case.options)
    mine = [v for v in res.violations if v.code == rule.code]
    assert mine, f"{rule.code} did not fire on:\n{code}"
    if case.count is not None:
        assert len(mine) == case.count, [v.message for v in mine]
    if case.message is not None:
        assert case.message in mine[0].message, mine[0].message
    for v in mine:
        assert v.location.line is not None and v.location.col is not None
        assert v.name == rule.name
    if case.applicability is not None:
        apps = {v.fix.applicability if v.fix else None for v in mine}
        assert case.applicability in apps, apps

    fr = fix_source(code, rules=[rule], target=case.target, options=case.options, unsafe_fixes=True)
    expected = case.fixed()
    if expected is None:
        assert fr.code == code, f"unexpected fix:\n{fr.code}"
        return
    assert fr.code == expected, f"--- got ---\n{fr.code}\n--- expected ---\n{expected}"
    # invariants
    cst.parse_module(fr.code)
    again = fix_source(fr.code, rules=[rule], target=case.target, options=case.options, unsafe_fixes=True)
    assert again.code == fr.code, "second run changed the output"
    after = lint_source(fr.code, rules=[rule], target=case.target, options=case.options)
    left = [v for v in after.violations if v.code == rule.code and v.fix is not None and v.fix.edits]
    assert left == [], [v.message for v in left]
    # safe-only run applies exactly the safe part and stays parseable
    safe = fix_source(code, rules=[rule], target=case.target, options=case.options, unsafe_fixes=False)
    cst.parse_module(safe.code)
    if all(v.fix is None or v.fix.applicability is not Applicability.SAFE for v in mine):
        assert safe.code == code


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_fix_availability_matches_cases(rule):
    """A rule that declares fixable invalid cases must produce edits for them."""
    for case in rule.INVALID:
        res = lint_source(case.source(), rules=[rule], target=case.target, options=case.options)
        has_edits = any(v.fix is not None and v.fix.edits for v in res.violations if v.code == rule.code)
        assert has_edits == (case.fixed() is not None), (rule.code, case.source())
