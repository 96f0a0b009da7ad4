"""Write a Conv2D whose groups equal its input channels as the DepthwiseConv2D it is (QF306 grouped-conv, exact).

`Conv2D(filters=F, k, groups=C)` on C input channels gives each input channel its own F/C
filters: that is a depthwise convolution with `depth_multiplier = F/C`. ConvNeXt writes its
7×7 depthwise convolutions this way (keras.applications, both dialects). Keras stores the
grouped kernel as (kh, kw, 1, F), output channel j belonging to input channel j // (F/C); a
DepthwiseConv2D stores (kh, kw, C, F/C) and orders its outputs c·(F/C) + k. The orders agree, so
the depthwise kernel is the grouped kernel reshaped, and the bias is unchanged: the same
function, without the g convolutions of a split (96 per ConvNeXtTiny block) or the g× work of a
block-diagonal kernel.

Observed after int8 conversion (TF 2.21): one DEPTHWISE_CONV_2D v3 (v2 for float) where the grouped
layer made every CONV_2D of the model v6.
"""

from __future__ import annotations

from qfix.model.config import policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer
from qfix.model.rewrites.split_grouped_conv import grouped_conv

KEPT = ("kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation", "use_bias",
        "bias_initializer", "bias_regularizer", "activity_regularizer", "bias_constraint")
RENAMED = {"kernel_initializer": "depthwise_initializer", "kernel_regularizer": "depthwise_regularizer",
           "kernel_constraint": "depthwise_constraint"}


def input_channels(edit: ModelEdit, scope: tuple[str, ...], name: str) -> int | None:
    """The static channel count of layer `name`'s input, from its build_config or the config's tensors."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    shape = (raw.get("build_config") or {}).get("input_shape")
    if not isinstance(shape, list):
        ins = edit.inputs_of(name, scope)
        shape = edit.tensor_meta(ins[0], scope)[0] if len(ins) == 1 else None
    if not isinstance(shape, list) or len(shape) < 3:
        return None
    channels = shape[1] if cfg.get("data_format") == "channels_first" else shape[-1]
    return channels if isinstance(channels, int) else None


def depthwise_grouped_conv(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Conv2D (either dialect) with groups equal to its input channels; it becomes a
    DepthwiseConv2D of the same name, settings and activation. Raises EditError otherwise."""
    raw, cfg, groups, filters = grouped_conv(edit, scope, name)
    if raw.get("class_name") != "Conv2D" or input_channels(edit, scope, name) != groups:
        raise EditError(f"{name!r} is not a Conv2D with groups equal to its input channels")
    source = edit.origin.get((*scope, name))
    if source is None:
        raise EditError(f"{name!r} was added by this edit; its weights are not in the file yet")
    dw_cfg = {k: cfg[k] for k in KEPT if k in cfg}
    dw_cfg.update({new: cfg[old] for old, new in RENAMED.items() if old in cfg})
    dw_cfg["depth_multiplier"] = filters // groups
    dw = make_layer("DepthwiseConv2D", dw_cfg, edit.dialect, name, dtype=policy_name(cfg.get("dtype")) or "float32")
    edit.replace(name, dw, scope)
    edit.new_vars[(*scope, name)] = _reshaped(source, groups, filters // groups)
    return (f"Conv2D {name!r} (groups={groups}, its input channels) → DepthwiseConv2D with depth_multiplier="
            f"{filters // groups}, the kernel reshaped: the same function")


def _reshaped(source: tuple[str, ...], channels: int, multiplier: int):
    """The (kh, kw, C, F/C) depthwise kernel from the grouped (kh, kw, 1, F) one; the bias unchanged."""
    def derive(read):
        found = read(source)
        if not found:  # a weights file without this layer's variables (an unbuilt case)
            return []
        kernel, *rest = found
        return [kernel.reshape(*kernel.shape[:2], channels, multiplier).copy(), *(v.copy() for v in rest)]
    return derive
