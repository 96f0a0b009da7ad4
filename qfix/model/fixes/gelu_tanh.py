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

from ..edit import EditError, ModelEdit, make_layer, policy_name
from . import FixResult, guarded, locate, resolve_dialect

CODE = "QF302"
APPLICABILITY = "unsafe"
GELU = {"gelu"}


def accepts(raw: dict[str, Any]) -> bool:
    return _activation(raw) in GELU


def _activation(raw: dict[str, Any]) -> str | None:
    act = (raw.get("config") or {}).get("activation")
    if isinstance(act, dict):  # a serialized function
        act = act.get("config") if isinstance(act.get("config"), str) else act.get("class_name")
    return act if isinstance(act, str) else None


@guarded
def apply(config: dict[str, Any], weights_bytes: bytes, target: Any, dialect: str | None = None) -> FixResult:
    dialect = resolve_dialect(config, dialect)
    scope, name = locate(config, target)
    edit = ModelEdit(config, dialect)
    raw = edit.layer(name, scope)
    if _activation(raw) not in GELU:
        raise EditError(f"{name!r} does not apply gelu")
    if len(raw.get("inbound_nodes") or []) != 1:
        raise EditError(f"{name!r} is not called exactly once in a functional model")
    dtype = policy_name(raw["config"].get("dtype")) or "float32"
    standalone = raw.get("class_name") == "Activation"
    if standalone:
        x = edit.inputs_of(name, scope)[0]
    else:  # the layer keeps its weights and loses the activation
        raw["config"]["activation"] = "linear"
        x = (name, 0, 0)

    def add(cls: str, cfg: dict[str, Any], suffix: str, inputs: list) -> tuple[str, int, int]:
        new = edit.add(make_layer(cls, cfg, dialect, f"{name}_{suffix}", dtype=dtype), inputs, scope)
        return (new, 0, 0)

    cube = add("Multiply", {}, "cube", [x, x, x])
    cubic = add("Rescaling", {"scale": 0.044715, "offset": 0.0}, "cubic", [cube])
    inner = add("Add", {}, "inner", [x, cubic])
    scaled = add("Rescaling", {"scale": math.sqrt(2.0 / math.pi), "offset": 0.0}, "scaled", [inner])
    tanh = add("Activation", {"activation": "tanh"}, "tanh", [scaled])
    gate = add("Rescaling", {"scale": 0.5, "offset": 0.5}, "gate", [tanh])
    out = add("Multiply", {}, "gelu", [x, gate])
    edit.rewire((name, 0, 0), out, scope)
    if standalone:
        edit.remove(name, scope)
        edit.rename(out[0], name, scope)
        out = (name, 0, 0)
    else:
        out = (edit.take_output_name(out[0], name, scope), 0, 0)
    note = f"gelu of {name!r} → tanh approximation ({out[0]!r}) from MUL/ADD/TANH (changes numbers)"
    return edit.config, edit.weights(weights_bytes), note
