"""Replace a RepeatVector by a nearest Resizing of a 1×1 image between two reshapes (QF308, exact).

`RepeatVector(n)` repeats a (C,) vector n times with a reshape and a TILE in both Keras 3.15
and tf_keras 2.21 (TF 2.21, reproduced); the Edge TPU has no TILE. The vector as a 1×1 image,
`Reshape((1, 1, C))` → `Resizing(n, 1, "nearest")` → `Reshape((n, C))`, gives the same values:
every output pixel of a nearest resize from one pixel reads that pixel, whatever the sampling
grid. It converts to RESHAPE, RESIZE_NEAREST_NEIGHBOR, RESHAPE. None of the layers has weights;
the last reshape takes the layer's name back when it is a model output.
"""

from __future__ import annotations

from qfix.model.config import policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer
from qfix.model.rewrites._shared import layer_input_shape, one_shape_for_every_call

# tf_keras' Resizing takes only these (Keras 3 added pad_to_aspect_ratio, fill_*, antialias, data_format)
_TF_KERAS_RESIZING = {"interpolation": "nearest", "crop_to_aspect_ratio": False}
_KERAS3_RESIZING = {**_TF_KERAS_RESIZING, "pad_to_aspect_ratio": False, "fill_mode": "constant", "fill_value": 0.0,
                    "antialias": False, "data_format": "channels_last"}


def repeat_vector_to_resizing(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a RepeatVector whose input (batch, channels) has static channels."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    n = cfg.get("n")
    if raw.get("class_name") != "RepeatVector" or not isinstance(n, int) or n < 1:
        raise EditError(f"{name!r} is not a RepeatVector")
    one_shape_for_every_call(edit, scope, name)
    shape = layer_input_shape(edit, scope, name)
    if not isinstance(shape, list) or len(shape) != 2 or not isinstance(shape[1], int):
        raise EditError(f"the input of {name!r} has no static channel count; the reshapes need it")
    batch, channels = shape
    dtype = policy_name(cfg.get("dtype")) or "float32"
    edit.replace(name, make_layer("Reshape", {"target_shape": [1, 1, channels]}, edit.dialect, name,
                                  dtype=dtype, input_shape=shape), scope, keep_weights=True)
    extra = _KERAS3_RESIZING if edit.dialect == "keras3" else _TF_KERAS_RESIZING
    resize = make_layer("Resizing", {"height": n, "width": 1, **extra}, edit.dialect, f"{name}_resize",
                        dtype=dtype, input_shape=[batch, 1, 1, channels])
    resized = edit.insert_after((name, 0, 0), resize, scope, out_shape=[batch, n, 1, channels])
    back = make_layer("Reshape", {"target_shape": [n, channels]}, edit.dialect, f"{name}_flat",
                      dtype=dtype, input_shape=[batch, n, 1, channels])
    out = edit.insert_after((resized, 0, 0), back, scope, out_shape=[batch, n, channels])
    out = edit.take_output_name(out, name, scope)
    return (f"RepeatVector {name!r} → Reshape(1, 1, {channels}), Resizing({n}, 1, nearest), "
            f"Reshape({n}, {channels}) ({out!r}): no TILE")
