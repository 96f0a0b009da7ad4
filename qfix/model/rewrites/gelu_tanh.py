"""Replace gelu by its tanh approximation from built-in layers (QF302 unsupported-activation, unsafe).

    gelu(x) ≈ x · (0.5 + 0.5·tanh(√(2/π)·(x + 0.044715·x³)))

Keras's "gelu" is the exact erf form (approximate=False), so this changes the numbers (max abs
difference ~1e-3 on unit-scale inputs): an unsafe fix, applied only with --unsafe-fixes, and
the report states the float delta. Every layer is a weightless built-in (Multiply,
Rescaling, Add, Activation tanh); after conversion they are MUL, ADD and TANH, which the Edge
TPU maps, instead of GELU, which it lacks.
"""

from __future__ import annotations

import math

from qfix.model.edit import ModelEdit
from qfix.model.rewrites._shared import Detached

GELU = {"gelu"}


def gelu_tanh(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` applies gelu (an `activation` or an Activation layer)."""
    d = Detached(edit, scope, name, GELU)
    x = d.x
    cube = d.add("Multiply", {}, "cube", [x, x, x])
    cubic = d.add("Rescaling", {"scale": 0.044715, "offset": 0.0}, "cubic", [cube])
    inner = d.add("Add", {}, "inner", [x, cubic])
    scaled = d.add("Rescaling", {"scale": math.sqrt(2.0 / math.pi), "offset": 0.0}, "scaled", [inner])
    tanh = d.add("Activation", {"activation": "tanh"}, "tanh", [scaled])
    gate = d.add("Rescaling", {"scale": 0.5, "offset": 0.5}, "gate", [tanh])
    out = d.finish(d.add("Multiply", {}, "gelu", [x, gate]))
    return f"gelu of {d.name!r} → tanh approximation ({out!r}) from MUL/ADD/TANH (changes numbers)"
