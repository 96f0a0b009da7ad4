"""Keras 3 layers tf_keras lacks, computes differently, or cannot load, as built-in layers
computing the same floats (up to rounding):

* `hard_sigmoid` (Keras 3: relu6(x + 3) / 6; tf_keras: clip(0.2x + 0.5)) as Rescaling(1, 3)
  → ReLU(6) → Rescaling(1/6); `hard_silu`/`hard_swish` as that times x (Multiply);
* InceptionResNetV2's CustomScaleLayer (a + b * scale) as Rescaling(scale) → Add;
* ConvNeXt's LayerScale and StochasticDepth (replace_application_layer).
"""

from __future__ import annotations

from typing import Any

from qfix.model.config import layer_name
from qfix.model.to_tf_keras.errors import Untranslatable

Ref = list  # [layer, node, tensor]
Step = tuple[str, dict[str, Any], list[Any]]  # (name suffix, entry, inputs: "in<i>" or a step index)


def replace_application_layer(l: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """ConvNeXt's LayerScale and StochasticDepth as built-in layers: tf_keras's own copies of
    those classes do not load (tf_keras 2.21 cannot even reload its own ConvNeXt), and tfmot
    knows neither. LayerScale (x * gamma, per channel) is a 1x1 DepthwiseConv2D without bias
    (weights.py reshapes gamma into its kernel); StochasticDepth (drop the whole residual per
    sample, scale by 1/keep) is Dropout with noise_shape (batch, 1, ..., 1)."""
    if l.get("module") != "keras.src.applications.convnext":
        return l
    name, cfg = layer_name(l), dict(l.get("config") or {})
    rank = len(((l.get("build_config") or {}).get("input_shape")) or [])
    base = {"name": name, "trainable": cfg.get("trainable", True), "dtype": cfg.get("dtype", "float32")}
    if l.get("class_name") == "LayerScale":
        if rank != 4:
            raise Untranslatable(name, f"LayerScale on a rank-{rank} input (only rank 4 maps to DepthwiseConv2D)")
        new = {**base, "kernel_size": [1, 1], "strides": [1, 1], "padding": "valid", "depth_multiplier": 1,
               "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": False}
        notes.append(f"{name}: LayerScale as a 1x1 DepthwiseConv2D without bias (same per-channel product)")
        return {**l, "module": "keras.layers", "class_name": "DepthwiseConv2D", "registered_name": None, "config": new}
    if l.get("class_name") == "StochasticDepth":
        if rank < 2:
            raise Untranslatable(name, "StochasticDepth without a known input rank")
        new = {**base, "rate": cfg.get("drop_path_rate", 0.0), "noise_shape": [None] + [1] * (rank - 1), "seed": None}
        notes.append(f"{name}: StochasticDepth as Dropout with one draw per sample (the same training noise)")
        return {**l, "module": "keras.layers", "class_name": "Dropout", "registered_name": None, "config": new}
    raise Untranslatable(name, f"ConvNeXt's {l.get('class_name')} has no tf_keras equivalent")


def _layer(cls: str, **config: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": cls,
            "config": {"name": None, "trainable": True, "dtype": "float32", **config}, "registered_name": None}


def hard_steps(kind: str) -> list[Step]:
    steps: list[Step] = [("hard_add3", _layer("Rescaling", scale=1.0, offset=3.0), ["in0"]),
                         ("hard_relu6", _layer("ReLU", max_value=6.0, negative_slope=0.0, threshold=0.0), [0]),
                         ("hard_div6", _layer("Rescaling", scale=1.0 / 6.0, offset=0.0), [1])]
    if kind != "hard_sigmoid":
        steps.append(("hard_mul", _layer("Multiply"), ["in0", 2]))
    return steps


def custom_scale_steps(scale: float) -> list[Step]:
    return [("scaled", _layer("Rescaling", scale=scale, offset=0.0), ["in1"]), ("add", _layer("Add"), ["in0", 0])]


def expand(steps: list[Step], base: str, calls: list[list[Ref]], names: set[str], final: str) -> list[dict[str, Any]]:
    """The steps' layers, each called once per call of the expanded layer (so node k of the last
    step is node k of the layer it replaces); `calls[k]` are that call's input references."""
    step_names = [final if i == len(steps) - 1 else unique(f"{base}_{suffix}", names)
                  for i, (suffix, _, _) in enumerate(steps)]
    out = []
    for i, (_, entry, inputs) in enumerate(steps):
        nodes = []
        for k, ins in enumerate(calls):
            rs = [ins[int(x[2:])] if isinstance(x, str) else [step_names[x], k, 0] for x in inputs]
            nodes.append([[*r, {}] for r in rs])
        config = {**entry["config"], "name": step_names[i]}
        out.append({**entry, "config": config, "name": step_names[i], "inbound_nodes": nodes})
    return out


def unique(name: str, names: set[str]) -> str:
    candidate, i = name, 1
    while candidate in names:
        candidate, i = f"{name}_{i}", i + 1
    names.add(candidate)
    return candidate


