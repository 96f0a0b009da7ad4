"""Write a Conv1D / DepthwiseConv1D as its 2-D layer between two reshapes (QF502, exact).

tfmot 0.8 has Conv1D commented out of its registry (tfmot#362) and no DepthwiseConv1D:
`quantize_model` rejects both. A 1-D convolution over (T, C) is the 2-D one over an image of
height 1: `Reshape((1, T, C))` → `Conv2D(F, (1, k), strides (1, s), dilation (1, d))` →
`Reshape((T', F))`, with the kernel (k, C, F) read as (1, k, C, F) (DepthwiseConv1D: (k, C, m) →
(1, k, C, m)); bias, activation and padding ("valid"/"same") are unchanged. TFLite lowers a
Conv1D to exactly this CONV_2D between EXPAND_DIMS and RESHAPE, so the converted model is the
same; tfmot now quantizes it (per-channel kernel). "causal" padding has no 2-D form: refused.
The first reshape keeps the layer's name, the convolution is `<name>_2d`, the last reshape takes
the name back when it is a model output.
"""

from __future__ import annotations

import copy

from qfix.model.config import policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer
from qfix.model.rewrites._shared import layer_input_shape

AS_2D = {"Conv1D": "Conv2D", "DepthwiseConv1D": "DepthwiseConv2D"}


def channels_of(edit: ModelEdit, scope: tuple[str, ...], name: str) -> list:
    """The (batch, steps, channels) input shape of a 1-D layer with static channels."""
    shape = layer_input_shape(edit, scope, name)
    if not isinstance(shape, list) or len(shape) != 3 or not isinstance(shape[2], int):
        raise EditError(f"the input of {name!r} has no static (steps, channels) shape")
    return shape


def around_2d(edit: ModelEdit, scope: tuple[str, ...], name: str, layer2d: dict, out_channels: int,
              shape: list, weights=None) -> str:
    """Put `layer2d` (named `<name>_2d`) between Reshape((1, -1, C)) and Reshape((-1, out)) in the
    place of layer `name`; returns the name of the output reshape."""
    raw = edit.layer(name, scope)
    dtype = policy_name((raw.get("config") or {}).get("dtype")) or "float32"
    source = edit.origin.get((*scope, name))
    edit.replace(name, make_layer("Reshape", {"target_shape": [1, -1, shape[2]]}, edit.dialect, name, dtype=dtype,
                                  input_shape=shape), scope, keep_weights=True)
    edit.origin[(*scope, name)] = None
    wide = [shape[0], 1, shape[1], shape[2]]
    layer2d["build_config"] = {"input_shape": wide}
    conv = edit.insert_after((name, 0, 0), layer2d, scope)
    if weights is not None:
        if source is None:
            raise EditError(f"{name!r} was added by this edit; its weights are not in the file yet")
        edit.new_vars[(*scope, conv)] = lambda read: weights(read(source))
    back = make_layer("Reshape", {"target_shape": [-1, out_channels]}, edit.dialect, f"{name}_1d", dtype=dtype)
    out = edit.insert_after((conv, 0, 0), back, scope)
    return edit.take_output_name(out, name, scope)


def conv1d_as_conv2d(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Conv1D (groups 1) or DepthwiseConv1D, channels_last, not causal."""
    raw = edit.layer(name, scope)
    cls = raw.get("class_name")
    cfg = raw.get("config") or {}
    if cls not in AS_2D:
        raise EditError(f"{name!r} is not a Conv1D or DepthwiseConv1D")
    if cfg.get("padding") not in ("valid", "same"):
        raise EditError(f"{name!r} has padding={cfg.get('padding')!r}; only valid/same have a 2-D form")
    if cfg.get("data_format", "channels_last") != "channels_last" or cfg.get("groups", 1) != 1:
        raise EditError(f"{name!r} is channels_first or grouped")
    shape = channels_of(edit, scope, name)

    def pair(key: str, default: int = 1) -> list[int]:
        v = cfg.get(key, default)
        v = v[0] if isinstance(v, (list, tuple)) else v
        return [1, int(v)]

    new = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in ("name", "trainable", "dtype", "groups")}
    new.update(kernel_size=pair("kernel_size"), strides=pair("strides"), dilation_rate=pair("dilation_rate"),
               data_format="channels_last")
    if cls == "Conv1D":
        out_channels = cfg["filters"]
        new["groups"] = 1
    else:
        out_channels = shape[2] * int(cfg.get("depth_multiplier", 1))
    layer2d = make_layer(AS_2D[cls], new, edit.dialect, f"{name}_2d",
                         dtype=policy_name(cfg.get("dtype")) or "float32")

    def weights(found):
        if not found:
            return []
        kernel, *rest = found
        return [kernel[None, ...], *rest]

    out = around_2d(edit, scope, name, layer2d, out_channels, shape, weights)
    return (f"{cls} {name!r} → Reshape(1, -1, {shape[2]}), {AS_2D[cls]} (1×{new['kernel_size'][1]}) with the "
            f"kernel reshaped, Reshape(-1, {out_channels}) ({out!r})")
