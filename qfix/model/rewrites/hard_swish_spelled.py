"""Rewire a hard_swish spelled out with layers into a product the converter keeps unfused (QF302).

`Multiply([x, relu6(x + 3) * (1/6)])` is how tf_keras's MobileNetV3 writes hard_swish (and how
people write it by hand). No `activation` says hard_swish, yet the converter fuses the pattern
into HARD_SWISH, which the Edge TPU lacks. Moving the 1/6 onto x,
`Multiply([relu6(x + 3), x * (1/6)])`, is a rewiring of two references: no new layer, no
weights to re-key, and the converter emits ADD(relu6), MUL, MUL (see hard_swish.py).
`qfix.model.patterns.spelled_hard_swish` finds the occurrences.
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit
from qfix.model.patterns import spelled_hard_swish
from qfix.model.rewrites._shared import graph_of


def hard_swish_spelled(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is the Multiply of a spelled-out hard_swish."""
    graph = graph_of(edit, scope)
    match = dict(spelled_hard_swish(graph)).get(name)
    if match is None:
        raise EditError(f"{name!r} is not the product of a spelled-out hard_swish")
    div6 = graph.layers[match]
    relu = div6.inputs[0]
    x = next(t for t in graph.layers[name].inputs if t.layer != match)
    x_t, relu_t = (x.layer, x.node, x.index), (relu.layer, relu.node, relu.index)
    edit.retarget(match, relu_t, x_t, scope)  # div6 now scales x
    edit.retarget(name, x_t, relu_t, scope)  # the product reads relu6(x + 3) instead of x
    return f"hard_swish spelled out at {name!r} → relu6(x+3)·(x/6), which the converter does not fuse"
