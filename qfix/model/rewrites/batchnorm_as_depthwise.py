"""Fold a BatchNormalization tfmot cannot fold into a 1×1 DepthwiseConv2D (QF502/QF503, exact).

tfmot folds a BatchNormalization only right after a Conv2D/DepthwiseConv2D/Dense whose
activation is linear; anywhere else (after `Conv2D(activation="relu")`, after an Add or a
Concatenate as in DenseNet, after the input) `quantize_model` rejects it (errors.md B8). In
inference a BN is a per-channel affine map, y = a·x + b with a = γ/√(σ² + ε) and
b = β − μ·a, which is exactly a DepthwiseConv2D with a 1×1 kernel a and bias b: a layer tfmot
quantizes (per-channel kernel). The fold is the workaround of tensorflow#43939 ("fold BN into
the preceding conv weights"), done on the BN itself so it needs no linear conv before it.

Rank 4 (N, H, W, C) becomes the DepthwiseConv2D in place (same name); rank 2 or 3 is reshaped
to (N, 1, -1, C) around it and back. Float outputs equal the BN's in inference (checked to
1e-5); in training the layer is a learned affine map instead of batch statistics, which is
what the BN folds of tfmot's own transforms do too.
"""

from __future__ import annotations

from qfix.model.config import policy_name
from qfix.model.edit import EditError, ModelEdit, initializer, make_layer
from qfix.model.rewrites._shared import layer_input_shape


def depthwise_1x1(name: str, dialect: str, dtype: str, use_bias: bool = True) -> dict:
    """A 1×1 DepthwiseConv2D entry (depth multiplier 1, linear), as both dialects write it."""
    return make_layer(
        "DepthwiseConv2D",
        {"kernel_size": [1, 1], "strides": [1, 1], "padding": "valid", "depth_multiplier": 1,
         "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": use_bias,
         "depthwise_initializer": initializer("Ones"), "bias_initializer": initializer("Zeros"),
         "depthwise_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
         "depthwise_constraint": None, "bias_constraint": None},
        dialect, name, dtype=dtype)


def affine_input(edit: ModelEdit, scope: tuple[str, ...], name: str, cls: str) -> tuple[dict, list, object]:
    """The config, input shape (rank 2-4, static channels) and weights source of the per-channel
    affine layer `name` of class `cls` over the last axis, called once. Raises EditError."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    if raw.get("class_name") != cls:
        raise EditError(f"{name!r} is not a {cls}")
    if "inbound_nodes" in raw and len(raw["inbound_nodes"]) != 1:
        raise EditError(f"{name!r} is called {len(raw['inbound_nodes'])} times; only a single call can be folded")
    shape = layer_input_shape(edit, scope, name)
    if not isinstance(shape, list) or len(shape) not in (2, 3, 4) or not isinstance(shape[-1], int):
        raise EditError(f"the input of {name!r} has no static channel count (rank 2-4 needed)")
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis not in (-1, len(shape) - 1):
        raise EditError(f"{name!r} normalizes axis {axis}, not the channels (last axis)")
    source = edit.origin.get((*scope, name))
    if source is None:
        raise EditError(f"{name!r} was added by this edit; its statistics are not in the file yet")
    return cfg, shape, source


def as_depthwise(edit: ModelEdit, scope: tuple[str, ...], name: str, shape: list, fold) -> str:
    """Put a 1×1 DepthwiseConv2D whose [kernel (1, 1, C, 1), bias (C,)] are `fold(read)` in the
    place of layer `name` (rank 4: in place, same name; rank 2/3: between two reshapes, the
    first keeping the name). Returns the depthwise layer's name."""
    cfg = edit.layer(name, scope).get("config") or {}
    dtype = policy_name(cfg.get("dtype")) or "float32"
    rank, channels = len(shape), shape[-1]
    dw = depthwise_1x1(name if rank == 4 else f"{name}_dw", edit.dialect, dtype)
    if rank == 4:
        dw["build_config"] = {"input_shape": shape}
        edit.replace(name, dw, scope)
        _drop_mask(edit.layer(name, scope))
        edit.new_vars[(*scope, name)] = fold
        return name
    flat = [shape[0], 1, -1 if rank == 3 else 1, channels]
    edit.replace(name, make_layer("Reshape", {"target_shape": flat[1:]}, edit.dialect, name, dtype=dtype,
                                  input_shape=shape), scope, keep_weights=True)
    _drop_mask(edit.layer(name, scope))
    edit.origin[(*scope, name)] = None  # the Reshape has no variables; the statistics go to the depthwise conv
    wide = [shape[0], 1, shape[1] if rank == 3 else 1, channels]
    dw["build_config"] = {"input_shape": wide}
    conv = edit.insert_after((name, 0, 0), dw, scope, out_shape=wide)
    edit.new_vars[(*scope, conv)] = fold
    back = make_layer("Reshape", {"target_shape": [-1 if d is None else d for d in shape[1:]]}, edit.dialect,
                      f"{name}_back", dtype=dtype, input_shape=wide)
    out = edit.insert_after((conv, 0, 0), back, scope, out_shape=shape)
    edit.take_output_name(out, name, scope)
    return conv


def batchnorm_as_depthwise(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a BatchNormalization over the last axis of a rank 2-4 tensor, called once."""
    cfg, shape, source = affine_input(edit, scope, name, "BatchNormalization")
    channels = shape[-1]
    eps = float(cfg.get("epsilon", 1e-3))
    scale, center = cfg.get("scale", True), cfg.get("center", True)

    def fold(read):
        import numpy as np  # local: source-side start-up (LSP, `qfix script.py`) never needs numpy

        found = read(source)
        if not found:  # a weights file without this layer's variables (an unbuilt case)
            return []
        vals = list(found)
        gamma = vals.pop(0) if scale else np.ones(channels, np.float32)
        beta = vals.pop(0) if center else np.zeros(channels, np.float32)
        mean, var = vals[0], vals[1]
        a = (gamma / np.sqrt(var.astype(np.float64) + eps)).astype(np.float32)
        return [a.reshape(1, 1, channels, 1), (beta - mean * a).astype(np.float32)]

    conv = as_depthwise(edit, scope, name, shape, fold)
    return (f"BatchNormalization {name!r} → DepthwiseConv2D 1×1 {conv!r} (kernel γ/√(σ²+ε), bias β−μ·γ/√(σ²+ε)): "
            "the same affine map, a layer tfmot quantizes")


def _drop_mask(raw: dict) -> None:
    """Keras 3 records BatchNormalization's call as `{"args": [x], "kwargs": {"mask": null}}`; the
    layer in its place takes no mask."""
    for node in raw.get("inbound_nodes") or []:
        if isinstance(node, dict) and isinstance(node.get("kwargs"), dict):
            node["kwargs"].pop("mask", None)
