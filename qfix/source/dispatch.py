"""Code that runs only when the input names it: the arms of a dispatch over names.

A model translator (OpenVINO IR or ONNX to Keras) builds one layer per op of the model it
reads, in an `if`/`elif` chain (or a `match`) over the op's type: `elif layer.attrib['type'] ==
'Elu': ... elu(x)`. A configurable builder does the same over its options (`if activation ==
'gelu': ...`). A layer in such an arm is in the built model only when the input or the
configuration asks for it, so a source rule about the layers a script builds cannot say the
script builds it; the model side checks the saved model, which has the layers actually chosen.

`dispatched(module)` gives the ids of the nodes inside such arms: a chain in which at least
`MIN_ARMS` arms compare the same subject to a string literal (`==`, or `in` a literal tuple /
list / set of strings), or a `match` with that many string cases. `if __name__ == "__main__":`
and two-way switches (`if mode == 'train': ... else: ...`) are not dispatches.
"""

from __future__ import annotations

import libcst as cst

from qfix.source.util import iter_nodes

MIN_ARMS = 3


def _string_subject(test: cst.BaseExpression, module: cst.Module) -> str | None:
    """The code of `x` when `test` is `x == 'name'`, `'name' == x` or `x in ('a', 'b')`."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    op, right = test.comparisons[0].operator, test.comparisons[0].comparator
    left = test.left
    if isinstance(op, cst.Equal):
        if isinstance(right, (cst.SimpleString, cst.ConcatenatedString)):
            return module.code_for_node(left)
        if isinstance(left, (cst.SimpleString, cst.ConcatenatedString)):
            return module.code_for_node(right)
        return None
    if isinstance(op, cst.In) and isinstance(right, (cst.Tuple, cst.List, cst.Set)) and right.elements:
        if all(isinstance(e.value, cst.SimpleString) for e in right.elements):
            return module.code_for_node(left)
    return None


def _chain(head: cst.If) -> list[cst.If]:
    arms = [head]
    while isinstance(arms[-1].orelse, cst.If):
        arms.append(arms[-1].orelse)
    return arms


def dispatched(module: cst.Module) -> frozenset[int]:
    """Ids of every node inside an arm of a dispatch over names (see the module docstring)."""
    out: set[int] = set()
    seen: set[int] = set()
    for node in iter_nodes(module):
        bodies: list[cst.CSTNode] = []
        if isinstance(node, cst.If) and id(node) not in seen:
            arms = _chain(node)
            seen.update(id(a) for a in arms)
            by_subject: dict[str, list[cst.If]] = {}
            for a in arms:
                s = _string_subject(a.test, module)
                if s is not None:
                    by_subject.setdefault(s, []).append(a)
            for group in by_subject.values():
                if len(group) >= MIN_ARMS:
                    bodies.extend(a.body for a in group)
        elif isinstance(node, cst.Match):
            cases = [c for c in node.cases if isinstance(c.pattern, cst.MatchValue)
                     and isinstance(c.pattern.value, (cst.SimpleString, cst.ConcatenatedString))]
            if len(cases) >= MIN_ARMS:
                bodies.extend(c.body for c in cases)
        for body in bodies:
            out.update(id(n) for n in iter_nodes(body))
    return frozenset(out)
