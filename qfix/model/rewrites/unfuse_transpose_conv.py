"""Keep a ReLU from fusing into a transposed convolution, 2-D or 1-D (QF307 transpose-conv-activation, exact).

The TFLite converter fuses a ReLU/ReLU6 that follows a biased Conv2DTranspose into the
TRANSPOSE_CONV op (whether it is the layer's `activation` or a ReLU layer after it), and a
TRANSPOSE_CONV with a fused activation is op version 4 (op_version.cc). Moving the activation to
its own layer is not enough: the converter fuses it back (TF 2.21, reproduced). What stops the
fusion is an identity DepthwiseConv2D between them: a 1x1 kernel of ones, no bias, which the
activation then fuses into (DEPTHWISE_CONV_2D v3 with RELU). Observed after int8 conversion:

    Conv2DTranspose(activation="relu")                  → TRANSPOSE_CONV v4 (RELU fused)
    Conv2DTranspose → ReLU()                            → TRANSPOSE_CONV v4 (RELU fused)
    Conv2DTranspose → DepthwiseConv2D(1, ones, relu)    → TRANSPOSE_CONV v3, DEPTHWISE_CONV_2D v3 (this fix)
    Conv1DTranspose(activation="relu")                  → TRANSPOSE_CONV v4 between RESHAPEs
    Conv1DTranspose → DepthwiseConv1D(1, ones, relu)    → TRANSPOSE_CONV v3, DEPTHWISE_CONV_2D v3 (this fix)

x·1 = x exactly, so the float outputs are unchanged; the transposed conv keeps its weights and
the new layer's kernel is ones.
"""

from __future__ import annotations

from qfix.model.config import activation_name, policy_name
from qfix.model.edit import EditError, ModelEdit, initializer, make_layer

FUSED = ("relu", "relu6")
# Each transposed conv and the identity that takes its activation: a 1-wide depthwise conv of ones
# of the same rank (Conv1DTranspose lowers to a TRANSPOSE_CONV between RESHAPEs, and its ReLU fuses
# the same way; a DepthwiseConv1D becomes DEPTHWISE_CONV_2D v3 with the ReLU).
IDENTITY = {"Conv2DTranspose": ("DepthwiseConv2D", 2), "Conv1DTranspose": ("DepthwiseConv1D", 1)}


def unfuse_transpose_conv(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Conv2DTranspose/Conv1DTranspose with a relu/relu6 activation, or one followed by one."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    cls = raw.get("class_name")
    if cls not in IDENTITY:
        raise EditError(f"{name!r} is not a Conv2DTranspose or Conv1DTranspose")
    depthwise, rank = IDENTITY[cls]
    act = activation_name(raw)
    if act not in FUSED and act not in (None, "linear"):
        raise EditError(f"{name!r} applies {act}, which the converter does not fuse")
    filters = cfg.get("filters")
    if not isinstance(filters, int):
        raise EditError(f"{name!r} has no integer `filters`")
    shape = edit.tensor_meta((name, 0, 0), scope)[0]
    identity = make_layer(
        depthwise,
        {"kernel_size": [1] * rank, "strides": [1] * rank, "padding": "valid", "depth_multiplier": 1,
         "data_format": cfg.get("data_format") or "channels_last", "dilation_rate": [1] * rank,
         "activation": act if act in FUSED else "linear", "use_bias": False,
         "depthwise_initializer": initializer("Ones"), "depthwise_regularizer": None,
         "depthwise_constraint": None, "activity_regularizer": None, "bias_regularizer": None,
         "bias_constraint": None, "bias_initializer": initializer("Zeros")},
        edit.dialect, f"{name}_act", dtype=policy_name(cfg.get("dtype")) or "float32", input_shape=shape,
    )
    if act in FUSED:
        cfg["activation"] = "linear"
    import numpy as np  # local: source-side start-up (LSP, `qfix script.py`) never needs numpy

    new = edit.insert_after((name, 0, 0), identity, scope, weights=[np.ones((*[1] * rank, filters, 1), np.float32)])
    if act in FUSED:
        new = edit.take_output_name(new, name, scope)
        return (f"{act} of {cls} {name!r} moved to an identity {depthwise} (size 1, ones) after it, "
                f"which keeps it out of the TRANSPOSE_CONV; the output keeps the name {new!r}")
    return (f"identity {depthwise} {new!r} (size 1, ones) after {cls} {name!r}: "
            "the ReLU after it fuses there, not into the TRANSPOSE_CONV")
