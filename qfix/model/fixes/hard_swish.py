"""QF302 unsupported-activation, hard_swish → (x/6)·relu6(x+3), which the converter keeps.

hard_swish(x) = x·relu6(x+3)/6. Written that way (x·relu6(x+3)/6 or x·(relu6(x+3)/6)), the
TFLite converter pattern-matches it back into one HARD_SWISH op, which the Edge TPU lacks.
Scaling x before the product, (x/6)·relu6(x+3), is not matched (TF 2.21): it converts to
ADD (with RELU6 fused), MUL, MUL. Observed op lists after full-int8 conversion:

    x·relu6(x+3)/6            → HARD_SWISH
    x·(relu6(x+3)/6)          → HARD_SWISH
    (x/6)·relu6(x+3)          → ADD(relu6), MUL, MUL        (this fix)
    x·clip(x/6+1/2, 0, 1)     → MUL, ADD, MINIMUM, RELU, MUL

The new layers are weightless built-ins (Rescaling, ReLU, Multiply) in both dialects; the
float outputs differ from hard_swish by float rounding only (~1e-7).
"""

from __future__ import annotations

from typing import Any

from ..edit import EditError, ModelEdit, make_layer, policy_name
from . import FixResult, guarded, locate, resolve_dialect

HARD_SWISH = {"hard_swish", "hard_silu"}
CODE = "QF302"


def accepts(raw: dict[str, Any]) -> bool:
    return activation_of(raw) in HARD_SWISH


def activation_of(raw: dict[str, Any]) -> str | None:
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
    if activation_of(raw) not in HARD_SWISH:
        raise EditError(f"{name!r} does not apply hard_swish")
    if len(raw.get("inbound_nodes") or []) != 1:
        raise EditError(f"{name!r} is not called exactly once in a functional model")
    dtype = policy_name(raw["config"].get("dtype")) or "float32"
    standalone = raw.get("class_name") == "Activation"
    if standalone:  # the activation's input is x
        x = edit.inputs_of(name, scope)[0]
    else:  # the layer computes x; it keeps its weights and loses the activation
        raw["config"]["activation"] = "linear"
        x = (name, 0, 0)

    def layer(cls: str, cfg: dict[str, Any], suffix: str) -> dict[str, Any]:
        return make_layer(cls, cfg, dialect, f"{name}_{suffix}", dtype=dtype)

    shifted = edit.add(layer("Rescaling", {"scale": 1.0, "offset": 3.0}, "plus3"), [x], scope)
    gate = edit.add(layer("ReLU", {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}, "relu6"),
                    [(shifted, 0, 0)], scope)
    scaled = edit.add(layer("Rescaling", {"scale": 1.0 / 6.0, "offset": 0.0}, "div6"), [x], scope)
    out = edit.add(layer("Multiply", {}, "hswish"), [(scaled, 0, 0), (gate, 0, 0)], scope)
    edit.rewire((name, 0, 0), (out, 0, 0), scope)
    if standalone:  # nobody reads the Activation now; its name goes to the product
        edit.remove(name, scope)
        edit.rename(out, name, scope)
        out = name
    else:
        out = edit.take_output_name(out, name, scope)
    note = f"hard_swish of {name!r} → (x/6)·relu6(x+3) ({out!r}), which the converter does not fuse"
    return edit.config, edit.weights(weights_bytes), note

