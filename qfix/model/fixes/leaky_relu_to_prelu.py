"""QF302 unsupported-activation, LeakyReLU → PReLU with a constant alpha (exact).

PReLU(x) = max(0, x) + alpha·min(0, x) is LeakyReLU when every alpha equals the slope. Its
alpha is shared over every axis but the channels (`shared_axes` = the spatial dims), so the
Edge TPU gets one alpha per channel. PReLU has a weight (LeakyReLU has none): we create it
in `model.weights.h5` and the other layers are re-keyed around the new `p_re_lu` group.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..edit import EditError, ModelEdit, policy_name, initializer, make_layer
from . import FixResult, locate, resolve_dialect


def slope(raw: dict[str, Any]) -> float:
    cfg = raw.get("config") or {}
    value = cfg.get("negative_slope", cfg.get("alpha", 0.3))  # Keras 3 / tf_keras spelling
    return float(value)


def apply(config: dict[str, Any], weights_bytes: bytes, target: Any, dialect: str | None = None) -> FixResult:
    dialect = resolve_dialect(config, dialect)
    scope, name = locate(config, target)
    edit = ModelEdit(config, dialect)
    raw = edit.layer(name, scope)
    if raw.get("class_name") != "LeakyReLU":
        raise EditError(f"{name!r} is a {raw.get('class_name')}, not a LeakyReLU layer")
    shape = _input_shape(edit, raw, scope)
    if shape is None or any(d is None for d in shape[1:]):
        raise EditError(f"the input shape of {name!r} is not recorded; cannot size the PReLU alpha")
    rank = len(shape)
    shared = list(range(1, rank - 1))  # all but batch and channels (channels_last)
    alpha_shape = [1 if axis in shared else shape[axis] for axis in range(1, rank)]
    alpha = slope(raw)
    dtype = policy_name((raw.get("config") or {}).get("dtype"))
    prelu = make_layer(
        "PReLU",
        {"alpha_initializer": initializer("Constant", {"value": alpha}), "alpha_regularizer": None,
         "alpha_constraint": None, "shared_axes": shared or None},
        dialect, name, dtype=dtype or "float32", input_shape=shape,
    )
    value = np.full(alpha_shape, alpha, dtype=np.float32)
    edit.replace(name, prelu, scope, weights=[value])
    return edit.config, edit.weights(weights_bytes), (
        f"LeakyReLU {name!r} → PReLU(alpha={alpha:g}, shared_axes={shared})"
    )


def _input_shape(edit: ModelEdit, raw: dict[str, Any], scope: tuple[str, ...]) -> list | None:
    bc = (raw.get("build_config") or {}).get("input_shape")
    if isinstance(bc, list):
        return bc
    inputs = edit.inputs_of(raw.get("name") or raw["config"]["name"], scope)
    return edit.tensor_meta(inputs[0], scope)[0] if inputs else None
