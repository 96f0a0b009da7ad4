"""Run the model rules over a graph: the static findings, no TensorFlow."""

from __future__ import annotations

from typing import Iterable

from qfix.rules import model_rules
from qfix.rules.base import Context
from qfix.types import Violation
from qfix.model.graph import Graph


def selected(code: str, select: Iterable[str] | None, ignore: Iterable[str] | None) -> bool:
    """Ruff-style prefix selection: `QF3` selects QF301, QF302…"""
    if select and not any(code.startswith(s) for s in select):
        return False
    return not (ignore and any(code.startswith(s) for s in ignore))


def lint(graph: Graph, ctx: Context, select=None, ignore=None) -> list[Violation]:
    found: list[Violation] = []
    for rule_cls in model_rules():
        if selected(rule_cls.code, select, ignore):
            found.extend(rule_cls().check(graph, ctx))
    return found
