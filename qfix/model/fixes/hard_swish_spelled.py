"""QF302 unsupported-activation, hard_swish spelled out with layers → a product the converter
keeps unfused.

`Multiply([x, relu6(x + 3) * (1/6)])` is how tf_keras's MobileNetV3 writes hard_swish (and how
people write it by hand). No `activation` says hard_swish, yet the converter fuses the pattern
into HARD_SWISH, which the Edge TPU lacks. Moving the 1/6 onto x,
`Multiply([relu6(x + 3), x * (1/6)])`, is a rewiring of two references: no new layer, no
weights to re-key, and the converter emits ADD(relu6), MUL, MUL (see hard_swish.py).

`find(graph)` lists the occurrences; QF302 findings on such a Multiply get this fix.
"""

from __future__ import annotations

from typing import Any

from qfix.model.edit import EditError
from qfix.model.fixes import FixResult, guarded, open_edit

CODE = "QF302"


def accepts(raw: dict[str, Any]) -> bool:
    return raw.get("class_name") == "Multiply"


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


def find(graph: Any) -> list[tuple[str, str]]:
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
def apply(config: dict[str, Any], weights_bytes: bytes, target: Any, dialect: str | None = None) -> FixResult:
    """Rewire the spelled-out hard_swish whose Multiply is `target` (see `find`)."""
    edit, scope, name, graph = open_edit(config, target, dialect)
    dialect = edit.dialect
    match = dict(find(graph)).get(name)
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
