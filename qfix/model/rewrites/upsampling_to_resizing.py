"""Replace a nearest UpSampling2D by the Resizing it computes (QF308 keras3-lowering, exact).

Keras 3 implements `UpSampling2D(size, interpolation="nearest")` with `ops.repeat` on each
spatial axis, which the TFLite converter lowers to RESHAPE (to 5-D), TILE, RESHAPE per axis
(TF 2.21, reproduced). `Resizing(size_h·H, size_w·W, interpolation="nearest")` is the same
function for integer factors: TF's nearest resize with half-pixel centres reads source row
floor((o + 0.5)/k) = floor(o/k), exactly what repeating each row k times gives. It converts to
one RESIZE_NEAREST_NEIGHBOR op. No crop or pad (`crop_to_aspect_ratio=False`,
`pad_to_aspect_ratio=False`), the same `data_format`; neither layer has weights.
"""

from __future__ import annotations

from qfix.model.config import policy_name
from qfix.model.rewrites._shared import layer_input_shape, one_shape_for_every_call
from qfix.model.edit import EditError, ModelEdit, make_layer


def _pair(v) -> tuple[int, int] | None:
    if isinstance(v, int):
        return v, v
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(d, int) for d in v):
        return v[0], v[1]
    return None


def resized_size(shape, cfg: dict) -> tuple[int, int] | None:
    """(height, width) an UpSampling2D of config `cfg` writes from an input of `shape`, None
    when the input's spatial size is not static."""
    size = _pair(cfg.get("size", 2))
    if size is None or shape is None or len(shape) != 4:
        return None
    h, w = (shape[2], shape[3]) if cfg.get("data_format") == "channels_first" else (shape[1], shape[2])
    if not isinstance(h, int) or not isinstance(w, int):
        return None
    return h * size[0], w * size[1]


def upsampling_to_resizing(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a nearest UpSampling2D with a static input size."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    if raw.get("class_name") != "UpSampling2D" or cfg.get("interpolation", "nearest") != "nearest":
        raise EditError(f"{name!r} is not a nearest UpSampling2D")
    one_shape_for_every_call(edit, scope, name)
    shape = layer_input_shape(edit, scope, name)
    hw = resized_size(shape, cfg)
    if hw is None:
        raise EditError(f"the input size of {name!r} is not static; Resizing needs it")
    resizing = make_layer(
        "Resizing",
        {"height": hw[0], "width": hw[1], "interpolation": "nearest", "crop_to_aspect_ratio": False,
         **({"pad_to_aspect_ratio": False, "fill_mode": "constant", "fill_value": 0.0, "antialias": False,
             "data_format": cfg.get("data_format") or "channels_last"} if edit.dialect == "keras3" else {})},
        edit.dialect, name, dtype=policy_name(cfg.get("dtype")) or "float32", input_shape=shape,
    )
    edit.replace(name, resizing, scope, keep_weights=True)
    return f"UpSampling2D {name!r} → Resizing({hw[0]}, {hw[1]}, nearest): one RESIZE_NEAREST_NEIGHBOR op"
