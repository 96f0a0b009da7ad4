"""Layer patterns the converter fuses into one op, found on the read-only graph.

Shared by the rules that report them and the rewrites that undo them.
"""

from __future__ import annotations

from typing import Any

from qfix.model.config import tfk_entries
from qfix.model.graph import Graph, Layer


def spelled_hard_swish(graph: Graph) -> list[tuple[str, str]]:
    """`(multiply, div6)` layer names of every `x · (relu6(x + 3) / 6)` spelled with layers
    (tf_keras's MobileNetV3, hand-written code): the converter fuses it into HARD_SWISH."""
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


def _const_kw(raw: dict[str, Any]) -> float | None:
    """The constant operand of a tf_keras `x + c` / `x * c` TFOpLambda (kwargs `y`)."""
    for node in raw.get("inbound_nodes") or []:
        for e in tfk_entries(node):
            if isinstance(e, list) and len(e) > 3 and isinstance(e[3], dict) and isinstance(e[3].get("y"), (int, float)):
                return float(e[3]["y"])
    return None


def _is_add3(layer: Layer) -> bool:
    if layer.class_name == "Rescaling":
        return layer.config.get("scale") == 1.0 and layer.config.get("offset") == 3.0
    return layer.op_function in ("add", "__operators__.add") and _const_kw(layer.raw) == 3.0


def _is_div6(layer: Layer) -> bool:
    if layer.class_name == "Rescaling":
        scale = layer.config.get("scale")
        return isinstance(scale, float) and abs(scale - 1 / 6) < 1e-6 and not layer.config.get("offset")
    value = _const_kw(layer.raw) if layer.op_function in ("multiply", "__operators__.mul") else None
    return value is not None and abs(value - 1 / 6) < 1e-6


def _is_relu6(layer: Layer) -> bool:
    cfg = layer.config
    return (layer.class_name == "ReLU" and cfg.get("max_value") == 6.0 and not cfg.get("negative_slope")
            and not cfg.get("threshold")) or (layer.class_name == "Activation" and cfg.get("activation") == "relu6")


DEFAULT_LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu and tf.nn.leaky_relu


def _number(value: Any) -> float | None:
    """A finite real number from the config, or None (a crafted config may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if abs(value) != float("inf") else None


def leaky_relu_slope(raw: dict[str, Any]) -> float | None:
    """The slope of a layer entry that computes a plain leaky ReLU, in any of its three
    spellings: a `LeakyReLU` layer, `ReLU(negative_slope=a)` without a cap or threshold, and
    `activation="leaky_relu"` on any layer. None for anything else."""
    cfg = raw.get("config") or {}
    cls = raw.get("class_name")
    if cls == "LeakyReLU":
        return _number(cfg.get("negative_slope", cfg.get("alpha", 0.3)))  # Keras 3 / tf_keras spelling
    if cls == "ReLU" and cfg.get("negative_slope") and cfg.get("max_value") is None and not cfg.get("threshold"):
        return _number(cfg["negative_slope"])
    if cfg.get("activation") == "leaky_relu":
        return DEFAULT_LEAKY_SLOPE
    return None
