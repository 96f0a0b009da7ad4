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


# --- hard_swish spelled out with layers (tf_keras MobileNetV3, hand-written models) -------------
#
# `Multiply([x, relu6(x + 3) * (1/6)])` is what tf_keras's MobileNetV3 writes; the converter
# fuses it into HARD_SWISH although no `activation` says so. Moving the 1/6 onto x,
# `Multiply([relu6(x + 3), x * (1/6)])`, is a rewiring of two references, no new layer.


def _const_kw(raw: dict[str, Any]) -> float | None:
    """The constant operand of a tf_keras `x + c` / `x * c` TFOpLambda (kwargs `y`)."""
    for node in raw.get("inbound_nodes") or []:
        entries = [node] if node and isinstance(node[0], str) else node
        for e in entries:
            if isinstance(e, list) and len(e) > 3 and isinstance(e[3], dict) and isinstance(e[3].get("y"), (int, float)):
                return float(e[3]["y"])
    return None


def _is_add3(layer: Any) -> bool:
    if layer.class_name == "Rescaling":
        return layer.config.get("scale") == 1.0 and layer.config.get("offset") == 3.0
    return layer.op_function in ("add", "__operators__.add") and _const_kw(layer.raw) == 3.0


def _is_div6(layer: Any) -> bool:
    if layer.class_name == "Rescaling":
        scale = layer.config.get("scale")
        return isinstance(scale, float) and abs(scale - 1 / 6) < 1e-6 and not layer.config.get("offset")
    value = _const_kw(layer.raw) if layer.op_function in ("multiply", "__operators__.mul") else None
    return value is not None and abs(value - 1 / 6) < 1e-6


def _is_relu6(layer: Any) -> bool:
    cfg = layer.config
    return (layer.class_name == "ReLU" and cfg.get("max_value") == 6.0 and not cfg.get("negative_slope")
            and not cfg.get("threshold")) or (layer.class_name == "Activation" and cfg.get("activation") == "relu6")


def spelled_hard_swish(graph: Any) -> list[tuple[str, str]]:
    """`(multiply, div6)` layer names of every `x · (relu6(x + 3) / 6)` spelled with layers."""
    found = []
    for layer in graph:
        if layer.class_name != "Multiply" or len(layer.calls) != 1 or len(layer.inputs) != 2:
            continue
        for x, m in (layer.inputs, layer.inputs[::-1]):
            div6 = graph.layers.get(m.layer)
            relu = graph.layers.get(div6.inputs[0].layer) if div6 is not None and len(div6.inputs) == 1 else None
            add3 = graph.layers.get(relu.inputs[0].layer) if relu is not None and len(relu.inputs) == 1 else None
            if (add3 is not None and _is_div6(div6) and _is_relu6(relu) and _is_add3(add3)
                    and len(add3.inputs) == 1 and add3.inputs[0] == x
                    and [c.name for c in graph.consumers(div6.name)] == [layer.name]):
                found.append((layer.name, div6.name))
                break
    return found


@guarded
def apply_spelled(config: dict[str, Any], weights_bytes: bytes, target: Any, dialect: str | None = None) -> FixResult:
    """Rewire the spelled-out hard_swish whose Multiply is `target` (see `spelled_hard_swish`)."""
    from ..graph import build_graph

    dialect = resolve_dialect(config, dialect)
    scope, name = locate(config, target)
    edit = ModelEdit(config, dialect)
    graph = build_graph(edit.model(scope) if scope else edit.config, dialect)
    match = dict(spelled_hard_swish(graph)).get(name)
    if match is None:
        raise EditError(f"{name!r} is not the product of a spelled-out hard_swish")
    div6 = graph.layers[match]
    relu = div6.inputs[0]
    x = next(t for t in graph.layers[name].inputs if t.layer != match)
    x_t, relu_t = (x.layer, x.node, x.index), (relu.layer, relu.node, relu.index)
    edit.retarget(match, relu_t, x_t, scope)  # div6 now scales x
    edit.retarget(name, x_t, relu_t, scope)  # the product reads relu6(x + 3) instead of x
    note = f"hard_swish spelled out at {name!r} → relu6(x+3)·(x/6), which the converter does not fuse"
    return edit.config, weights_bytes, note
