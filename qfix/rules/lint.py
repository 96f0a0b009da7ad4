"""Run the model rules over a graph: the static findings, no TensorFlow."""

from __future__ import annotations

from qfix.rules import model_rules, select as select_rules
from qfix.rules.base import Context
from qfix.types import Violation
from qfix.model.graph import Graph


def lint(graph: Graph, ctx: Context, select=None, ignore=None) -> list[Violation]:
    found: list[Violation] = []
    for rule_cls in select_rules(model_rules(), select, ignore):
        found.extend(rule_cls().check(graph, ctx))
    return found
