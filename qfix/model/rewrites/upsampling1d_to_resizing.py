"""Replace a Keras 3 UpSampling1D by a nearest Resizing between two reshapes (QF308, exact).

Keras 3's `UpSampling1D(k)` repeats each step with `ops.repeat`, which converts to RESHAPE,
TILE, RESHAPE (TF 2.21, reproduced); the Edge TPU has no TILE. As an image of width 1,
`Reshape((T, 1, C))` → `Resizing(k·T, 1, "nearest")` → `Reshape((k·T, C))` computes the same
values (TF's half-pixel nearest resize reads step floor((o + 0.5)/k) = floor(o/k), the repeated
one) and converts to RESHAPE, RESIZE_NEAREST_NEIGHBOR, RESHAPE. None of the layers has weights;
the first reshape keeps the layer's name, the last takes it back when it is a model output.
"""

from __future__ import annotations

from qfix.model.config import policy_name
from qfix.model.rewrites._shared import layer_input_shape, one_shape_for_every_call
from qfix.model.edit import EditError, ModelEdit, make_layer


def upsampling1d_to_resizing(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is an UpSampling1D whose input (steps, channels) is static."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    size = cfg.get("size", 2)
    if raw.get("class_name") != "UpSampling1D" or not isinstance(size, int):
        raise EditError(f"{name!r} is not an UpSampling1D")
    one_shape_for_every_call(edit, scope, name)
    shape = layer_input_shape(edit, scope, name)
    if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(d, int) for d in shape[1:]):
        raise EditError(f"the input of {name!r} has no static (steps, channels); the reshapes need them")
    steps, channels = shape[1], shape[2]
    dtype = policy_name(cfg.get("dtype")) or "float32"
    edit.replace(name, make_layer("Reshape", {"target_shape": [steps, 1, channels]}, edit.dialect, name,
                                  dtype=dtype, input_shape=shape), scope, keep_weights=True)
    resize = make_layer("Resizing", {"height": size * steps, "width": 1, "interpolation": "nearest",
                                     "crop_to_aspect_ratio": False, "pad_to_aspect_ratio": False,
                                     "fill_mode": "constant", "fill_value": 0.0, "antialias": False,
                                     "data_format": "channels_last"},
                        edit.dialect, f"{name}_resize", dtype=dtype, input_shape=[shape[0], steps, 1, channels])
    resized = edit.insert_after((name, 0, 0), resize, scope, out_shape=[shape[0], size * steps, 1, channels])
    back = make_layer("Reshape", {"target_shape": [size * steps, channels]}, edit.dialect, f"{name}_flat",
                      dtype=dtype, input_shape=[shape[0], size * steps, 1, channels])
    out = edit.insert_after((resized, 0, 0), back, scope, out_shape=[shape[0], size * steps, channels])
    out = edit.take_output_name(out, name, scope)
    return (f"UpSampling1D {name!r} → Reshape({steps}, 1, {channels}), Resizing({size * steps}, 1, nearest), "
            f"Reshape({size * steps}, {channels}) ({out!r}): no TILE")
