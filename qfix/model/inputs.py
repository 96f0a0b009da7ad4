"""Model inputs as calibration specs: name, shape, dtype and the value range they imply."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qfix.model.graph import Graph, Layer, is_integer


@dataclass
class InputSpec:
    """One model input as the graph declares it (built by the model side, consumed here)."""

    name: str
    shape: tuple[int | None, ...]  # batch included
    dtype: str  # numpy dtype name: "uint8", "float32", "int64", ...
    value_range: tuple[float, float] | None = None
    # the mask_value of a Masking layer that reads this input: time steps (axis 1) equal to it in
    # every feature are padding the model skips
    mask_value: float | None = None

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 4 and self.shape[-1] in (1, 3, 4)


def _implied_range(graph: Graph, input_name: str, dtype: str) -> tuple[float, float] | None:
    """For integer inputs: an Embedding's vocabulary, else the whole range of an 8- or 16-bit
    type (uint8 pixels 0..255, int8 -128..127, int16 audio, uint16 depth) and [0, 255] for int32;
    [0, 255] for float inputs rescaled by ~1/255 or 1/127.5 inside the graph (EfficientNet,
    MobileNetV3, fixtures); otherwise None (calibration's default)."""
    if is_integer(dtype):
        # Token ids index an Embedding: stay inside its vocabulary.
        dims = [u.config.get("input_dim") for u in graph.consumers(input_name) if u.class_name == "Embedding"]
        if dims and all(isinstance(d, int) and d > 0 for d in dims):
            return (0.0, float(min(dims) - 1))
        if dtype in ("uint8", "int8", "int16", "uint16"):  # a 16-bit input on 0..255 clipped real values
            info = np.iinfo(dtype)
            return (float(info.min), float(info.max))
        return (0.0, 255.0) if dtype == "int32" else None
    frontier, seen = [input_name], set()
    for _ in range(3):  # look a few layers ahead: Cast → Rescaling → Normalization
        nxt = []
        for name in frontier:
            for user in graph.consumers(name):
                if user.name in seen:
                    continue
                seen.add(user.name)
                scale = user.config.get("scale") if user.class_name == "Rescaling" else None
                if isinstance(scale, (int, float)) and 0 < scale <= 1 / 100:
                    return (0.0, 255.0)
                nxt.append(user.name)
        frontier = nxt
    return None


def _mask_value(graph: Graph, name: str, depth: int = 0) -> float | None:
    """The value of `name`'s output that a Masking reading it skips: its `mask_value` (Keras's
    default 0.0), also through nested models and scalar Rescaling layers (the value the Rescaling
    maps onto the mask value)."""
    if depth > 16:
        return None
    for user in graph.consumers(name):
        value = None
        if user.class_name == "Masking":
            value = masking_value(user)
        elif user.subgraph is not None:
            refs = [t for call in user.calls for t in call]
            pos = next((i for i, t in enumerate(refs) if t.layer == name), None)
            inner = user.subgraph.input_layers()
            if pos is not None and pos < len(inner):
                value = _mask_value(user.subgraph, inner[pos].name, depth + 1)
        elif user.class_name == "Rescaling":
            scale, offset = _number(user.config.get("scale", 1.0)), _number(user.config.get("offset", 0.0))
            after = _mask_value(graph, user.name, depth + 1) if scale and offset is not None else None
            value = None if after is None else (after - offset) / scale
        if value is not None and math.isfinite(value):
            return value
    return None


def masking_value(layer: Layer) -> float | None:
    """The `mask_value` of the Masking `layer` (Keras's default 0.0), or None when it is not a
    number."""
    return _number(layer.config.get("mask_value", 0.0))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def input_specs(graph: Graph) -> list[InputSpec]:
    specs = []
    for layer in graph.input_layers():
        dtype = layer.out_dtype or "float32"
        specs.append(InputSpec(layer.name, tuple(layer.out_shape or ()), dtype, _implied_range(graph, layer.name, dtype),
                               _mask_value(graph, layer.name)))
    return specs
