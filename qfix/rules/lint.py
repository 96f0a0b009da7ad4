"""Run the model rules over a graph: the static findings, no TensorFlow."""

from __future__ import annotations

from qfix.errors import error
from qfix.model.graph import Graph
from qfix.rules import model_rules, select as select_rules
from qfix.rules.base import Context
from qfix.types import Violation

# What a rule raises when a layer's config holds a value of a type Keras never writes there
# (config.json's shape is checked by qfix.model.schema; the values of every layer option are
# not): the file is malformed, which is one QF904 line, not an internal error.
MALFORMED = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError)


def lint(graph: Graph, ctx: Context, select=None, ignore=None) -> list[Violation]:
    found: list[Violation] = []
    for rule_cls in select_rules(model_rules(), select, ignore):
        try:
            found.extend(rule_cls().check(graph, ctx))
        except MALFORMED as exc:
            raise error("QF904", f"config.json: {rule_cls.code} met a layer option of an unexpected type "
                                 f"({type(exc).__name__}: {str(exc)[:200]})") from None
    return found
