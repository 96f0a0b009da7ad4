"""Every model rule's embedded cases, run against the real target profiles (no TensorFlow)."""

from __future__ import annotations

import pytest

from qfix.model.graph import build_graph
from qfix.rules import model_rules
from qfix.rules.base import Context
from qfix.targets import load_profile

CASES = [
    (rule, case, target)
    for rule in model_rules()
    for case in rule.CASES
    for target in case.targets
]


def test_every_model_rule_has_cases_both_ways():
    for rule in model_rules():
        assert any(c.fires for c in rule.CASES), rule.code
        assert any(not c.fires for c in rule.CASES), rule.code


# The rule documents (one per code, both sides) are checked in tests/rules/test_docs.py.


@pytest.mark.parametrize("rule,case,target", CASES, ids=[f"{r.code}-{c.name}-{t}" for r, c, t in CASES])
def test_embedded_case(rule, case, target):
    graph = build_graph(case.config, "keras3")
    found = list(rule().check(graph, Context(load_profile(target), mode=case.mode)))
    assert bool(found) == case.fires, [v.message for v in found]
    if case.fires and case.count is not None:
        assert len(found) == case.count
    for v in found:
        assert v.code == rule.code and v.message
        if v.location.layer is not None:
            assert v.location.layer in {l.name for _, l in graph.walk()}
