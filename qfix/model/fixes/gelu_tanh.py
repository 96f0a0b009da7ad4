"""QF302 unsupported-activation, gelu → its tanh approximation from built-in layers (unsafe).

    gelu(x) ≈ x · (0.5 + 0.5·tanh(√(2/π)·(x + 0.044715·x³)))

Keras's "gelu" is the exact erf form (approximate=False), so this changes the numbers (max abs
difference ~1e-3 on unit-scale inputs): an unsafe fix, applied only with --unsafe-fixes, and
the report states the float delta. Every layer is a weightless built-in (Multiply,
Rescaling, Add, Activation tanh); after conversion they are MUL, ADD and TANH, which the Edge
TPU maps, instead of GELU, which it lacks.
"""

from __future__ import annotations

import math
from typing import Any

from qfix.model.fixes import Detached, FixResult, activation_name, guarded

CODE = "QF302"
GELU = {"gelu"}


def accepts(raw: dict[str, Any]) -> bool:
    return activation_name(raw) in GELU


@guarded
def apply(config: dict[str, Any], weights_bytes: bytes, target: Any, dialect: str | None = None) -> FixResult:
    d = Detached(config, target, dialect, GELU)
    x = d.x
    cube = d.add("Multiply", {}, "cube", [x, x, x])
    cubic = d.add("Rescaling", {"scale": 0.044715, "offset": 0.0}, "cubic", [cube])
    inner = d.add("Add", {}, "inner", [x, cubic])
    scaled = d.add("Rescaling", {"scale": math.sqrt(2.0 / math.pi), "offset": 0.0}, "scaled", [inner])
    tanh = d.add("Activation", {"activation": "tanh"}, "tanh", [scaled])
    gate = d.add("Rescaling", {"scale": 0.5, "offset": 0.5}, "gate", [tanh])
    out = d.finish(d.add("Multiply", {}, "gelu", [x, gate]))
    note = f"gelu of {d.name!r} → tanh approximation ({out!r}) from MUL/ADD/TANH (changes numbers)"
    return d.edit.config, d.edit.weights(weights_bytes), note
