"""Write a MaxPooling1D as a MaxPooling2D between two reshapes (QF502, exact).

tfmot 0.8 has MaxPooling1D commented out of its registry; MaxPooling2D it accepts (no
quantizer: a max keeps its input's range). Pooling (T, C) with size p, stride s is pooling an
image of height 1 with (1, p), (1, s): `Reshape((1, -1, C))` → `MaxPooling2D((1, p), (1, s))` →
`Reshape((-1, C))`, the same values; TFLite lowers MaxPooling1D to that MAX_POOL_2D anyway.
No weights. The first reshape keeps the layer's name.
"""

from __future__ import annotations

from qfix.model.config import policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer
from qfix.model.rewrites.conv1d_as_conv2d import around_2d, channels_of


def pool1d_as_pool2d(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a channels_last MaxPooling1D."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    if raw.get("class_name") not in ("MaxPooling1D", "MaxPool1D"):
        raise EditError(f"{name!r} is not a MaxPooling1D")
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise EditError(f"{name!r} is channels_first")
    shape = channels_of(edit, scope, name)

    def one(key: str, default):
        v = cfg.get(key, default)
        v = v[0] if isinstance(v, (list, tuple)) else v
        return v

    size = one("pool_size", 2)
    strides = one("strides", None) or size
    pool = make_layer("MaxPooling2D", {"pool_size": [1, size], "strides": [1, strides],
                                       "padding": cfg.get("padding", "valid"), "data_format": "channels_last"},
                      edit.dialect, f"{name}_2d", dtype=policy_name(cfg.get("dtype")) or "float32")
    out = around_2d(edit, scope, name, pool, shape[2], shape)
    return f"MaxPooling1D {name!r} → Reshape(1, -1, {shape[2]}), MaxPooling2D((1, {size}), (1, {strides})), Reshape ({out!r})"
