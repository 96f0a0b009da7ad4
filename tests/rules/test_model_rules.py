"""Every model rule's embedded cases, run against the real target profiles (no TensorFlow).

A firing case with `expected` is fixed through the fix job's own loop (`apply_fixes`): the
rewrites its findings carry must turn the config into what the case states."""

from __future__ import annotations

from typing import Any

import pytest

from qfix.jobs.check import Options
from qfix.jobs.fix import apply_fixes
from qfix.model.cases import empty_weights
from qfix.model.graph import build_graph
from qfix.rules import model_rules
from qfix.rules.base import Context
from qfix.targets import load_profile
from qfix.types import Applicability

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


def test_every_fixable_rule_states_a_fix_result():
    for rule in model_rules():
        fixable = rule.fix_applicability in (Applicability.SAFE, Applicability.UNSAFE)
        assert any(c.expected is not None for c in rule.CASES) == fixable, rule.code
        assert all(c.fires for c in rule.CASES if c.expected is not None), rule.code


def test_rules_that_block_loading_name_their_opt_in():
    blocking = {r.code for r in model_rules() if r.blocks_loading}
    assert blocking == {"QF202", "QF203"}
    for rule in model_rules():
        if rule.blocks_loading:
            assert rule.opt_in in Context.__dataclass_fields__ and rule.refusal, rule.code


def test_why_not_loadable_asks_the_rules():
    from qfix.jobs.check import why_not_loadable
    from qfix.types import Location, Violation

    lam = Violation("QF202", "lambda-layer", "m", Location(layer="lam"))
    custom = Violation("QF203", "unknown-layer-class", "m", Location(layer="blk"))
    assert "Lambda 'lam'" in why_not_loadable([lam], Options())
    assert why_not_loadable([lam], Options(trust_lambdas=True)) is None
    assert "--custom-objects" in why_not_loadable([lam, custom], Options(trust_lambdas=True))
    assert why_not_loadable([custom], Options(custom_objects="my_pkg.layers")) is None


# The rule documents (one per code, both sides) are checked in tests/rules/test_docs.py.


@pytest.mark.parametrize("rule,case,target", CASES, ids=[f"{r.code}-{c.name}-{t}" for r, c, t in CASES])
def test_embedded_case(rule, case, target):
    graph = build_graph(case.config, case.dialect)
    ctx = Context(load_profile(target), mode=case.mode)
    found = list(rule().check(graph, ctx))
    assert bool(found) == case.fires, [v.message for v in found]
    if case.fires and case.count is not None:
        assert len(found) == case.count
    for v in found:
        assert v.code == rule.code and v.message
        if v.location.layer is not None:
            assert v.location.layer in {l.name for _, l in graph.walk()}
    if case.expected is None:
        return
    assert any(v.fix is not None and v.fix.edits for v in found), "a case with `expected` needs a rewrite"
    before = repr(case.config)
    config, _, applied, skipped = apply_fixes(case.config, empty_weights(case.config, case.dialect), case.dialect, ctx,
                                              Options(target=target, select=[rule.code]), unsafe=True)
    assert repr(case.config) == before  # the case's own config is never modified
    assert applied and not skipped, skipped
    fixed = build_graph(config, case.dialect)
    if isinstance(case.expected, dict):
        assert _contains(config, case.expected), config
    else:
        assert [(l.name, l.class_name) for l in fixed] == case.expected
    assert not any(v.fix is not None and v.fix.edits for v in rule().check(fixed, ctx))


def _contains(value: Any, fragment: Any) -> bool:
    """`fragment` matches `value` or something inside it."""
    if _matches(value, fragment):
        return True
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return any(_contains(c, fragment) for c in children)


def _matches(value: Any, fragment: Any) -> bool:
    """Dicts match on the fragment's keys, lists item by item, anything else by equality."""
    if isinstance(fragment, dict):
        return isinstance(value, dict) and all(k in value and _matches(value[k], v) for k, v in fragment.items())
    if isinstance(fragment, list):
        return isinstance(value, list) and len(value) == len(fragment) and all(map(_matches, value, fragment))
    return value == fragment
