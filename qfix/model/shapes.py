"""The output shape of a built-in layer from its config and its input shape, without Keras.

Configs do not always record the shape of a tensor: a Keras 3 Sequential stores no inbound
nodes (so no tensor shapes), and only layers with a `build()` (Conv2D, Dense, …) store a
`build_config.input_shape`; a model output is read by nobody. Edits that size a weight from a
shape (a PReLU alpha) or write a Keras 3 tensor reference derive it here, as Keras's own
`compute_output_shape` would. Shapes are lists with the batch first, `None` for unknown
dimensions; channels_last only (channels_first configs give None: unknown, never a guess).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from qfix.model.graph import Graph, Layer

Shape = list  # [batch, ..., channels], None for unknown dims

# Layers whose output shape is their input's.
SAME_SHAPE = {
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU", "BatchNormalization",
    "LayerNormalization", "GroupNormalization", "UnitNormalization", "Normalization", "Rescaling", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization", "Identity", "Masking", "Cast", "TFOpLambda",
}
CONVS = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
         "SeparableConv2D", "Convolution1D", "Convolution2D", "Convolution3D"}
POOLS = {"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
         "AveragePooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D"}
GLOBAL_POOLS = {"GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"}


def _tuple(value: Any, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _window(size: int | None, kernel: int, stride: int, padding: str, dilation: int = 1) -> int | None:
    """keras.src.ops.operation_utils.compute_conv_output_shape, one dimension."""
    if size is None:
        return None
    if padding == "same":
        return math.ceil(size / stride)
    span = (kernel - 1) * dilation + 1
    return (size - span) // stride + 1 if size >= span else None


def _conv(cls: str, cfg: dict[str, Any], shape: Shape) -> Shape | None:
    n = len(shape) - 2
    kernel, strides = _tuple(cfg.get("kernel_size"), n), _tuple(cfg.get("strides", 1), n)
    dilation, padding = _tuple(cfg.get("dilation_rate", 1), n), cfg.get("padding", "valid")
    if padding not in ("same", "valid"):  # "causal" (Conv1D) keeps the length
        return [shape[0], *shape[1:-1], _channels(cls, cfg, shape)]
    spatial = [_window(d, k, s, padding, r) for d, k, s, r in zip(shape[1:-1], kernel, strides, dilation)]
    return [shape[0], *spatial, _channels(cls, cfg, shape)]


def _channels(cls: str, cfg: dict[str, Any], shape: Shape) -> int | None:
    if cls.startswith("Depthwise"):
        return None if shape[-1] is None else shape[-1] * int(cfg.get("depth_multiplier", 1))
    return cfg.get("filters")


def _pool(cfg: dict[str, Any], shape: Shape) -> Shape:
    n = len(shape) - 2
    size = _tuple(cfg.get("pool_size", 2), n)
    strides = _tuple(cfg.get("strides") or cfg.get("pool_size", 2), n)
    spatial = [_window(d, k, s, cfg.get("padding", "valid")) for d, k, s in zip(shape[1:-1], size, strides)]
    return [shape[0], *spatial, shape[-1]]


def _flatten(cfg: dict[str, Any], shape: Shape) -> Shape:
    rest = shape[1:]
    return [shape[0], None if any(d is None for d in rest) else math.prod(rest)]


def _reshape(cfg: dict[str, Any], shape: Shape) -> Shape | None:
    target = list(cfg.get("target_shape") or [])
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        total = None if any(d is None for d in shape[1:]) else math.prod(shape[1:])
        target[target.index(-1)] = total // known if total is not None and known else None
    return [shape[0], *target]


def _padding(cfg: dict[str, Any], shape: Shape, sign: int, key: str) -> Shape:
    n = len(shape) - 2
    pads = cfg.get(key, 1)
    pads = [p if isinstance(p, (list, tuple)) else (p, p) for p in _tuple(pads, n)]
    spatial = [None if d is None else d + sign * (a + b) for d, (a, b) in zip(shape[1:-1], pads)]
    return [shape[0], *spatial, shape[-1]]


def _upsampling(cfg: dict[str, Any], shape: Shape) -> Shape:
    n = len(shape) - 2
    size = _tuple(cfg.get("size", 2), n)
    return [shape[0], *[None if d is None else d * s for d, s in zip(shape[1:-1], size)], shape[-1]]


def _global_pool(cfg: dict[str, Any], shape: Shape) -> Shape:
    if cfg.get("keepdims"):
        return [shape[0], *[1] * (len(shape) - 2), shape[-1]]
    return [shape[0], shape[-1]]


RULES: dict[str, Callable[[dict[str, Any], Shape], Shape | None]] = {
    "Dense": lambda cfg, s: [*s[:-1], cfg.get("units")],
    "Flatten": _flatten,
    "Reshape": _reshape,
    "ZeroPadding1D": lambda cfg, s: _padding(cfg, s, 1, "padding"),
    "ZeroPadding2D": lambda cfg, s: _padding(cfg, s, 1, "padding"),
    "ZeroPadding3D": lambda cfg, s: _padding(cfg, s, 1, "padding"),
    "Cropping1D": lambda cfg, s: _padding(cfg, s, -1, "cropping"),
    "Cropping2D": lambda cfg, s: _padding(cfg, s, -1, "cropping"),
    "Cropping3D": lambda cfg, s: _padding(cfg, s, -1, "cropping"),
    "UpSampling1D": _upsampling,
    "UpSampling2D": _upsampling,
    "UpSampling3D": _upsampling,
    "Resizing": lambda cfg, s: [s[0], cfg.get("height"), cfg.get("width"), s[-1]],
    "Permute": lambda cfg, s: [s[0], *[s[d] for d in cfg.get("dims", [])]],
    "RepeatVector": lambda cfg, s: [s[0], cfg.get("n"), s[-1]],
    "Embedding": lambda cfg, s: [*s, cfg.get("output_dim")],
}


def output_shape(raw: dict[str, Any], shape: Shape | None) -> Shape | None:
    """The output shape of the single-input layer entry `raw` called on `shape`, or None when
    the layer (or its data format) is not one derived here."""
    if not isinstance(shape, list) or len(shape) < 2:
        return None
    cls = str(raw.get("class_name"))
    cfg = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    if cfg.get("data_format", "channels_last") != "channels_last":
        return None
    try:
        if cls in SAME_SHAPE:
            return list(shape)
        if cls in CONVS:
            return _conv(cls, cfg, shape)
        if cls in POOLS:
            return _pool(cfg, shape)
        if cls in GLOBAL_POOLS:
            return _global_pool(cfg, shape)
        rule = RULES.get(cls)
        out = rule(cfg, shape) if rule else None
    except (TypeError, ValueError, IndexError):  # a config value of an unexpected kind
        return None
    if out is None or not all(d is None or isinstance(d, int) for d in out):
        return None
    return out


def input_shape_of(graph: "Graph", layer: "Layer") -> tuple[int | None, ...] | None:
    """The (batch-first) shape of the first tensor `layer` reads, as the config records it:
    Keras 3 functional configs on every tensor reference, tf_keras and Sequential configs only on
    the layer's `build_config` or on the layer before it. None when nothing records it."""
    refs = layer.inputs
    if refs and refs[0].shape is not None:
        return tuple(refs[0].shape)
    built = (layer.raw.get("build_config") or {}).get("input_shape")
    if isinstance(built, list) and built and all(d is None or isinstance(d, int) for d in built):
        return tuple(built)
    producer = graph.layers.get(refs[0].layer) if refs else None
    return tuple(producer.out_shape) if producer is not None and producer.out_shape is not None else None
