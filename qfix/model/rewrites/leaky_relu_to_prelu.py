"""Replace a leaky ReLU by a PReLU with a constant alpha (QF302 unsupported-activation, exact).

PReLU(x) = max(0, x) + alpha·min(0, x) is a leaky ReLU when every alpha equals the slope. Its
alpha is shared over every axis but the channels (`shared_axes` = the spatial dims), so the
Edge TPU gets one alpha per channel. Handles the three spellings: a `LeakyReLU` layer, a
`ReLU(negative_slope=a)` layer, and `activation="leaky_relu"` on any layer (the activation
is cleared and a PReLU follows). PReLU has a weight (LeakyReLU has none): we create it in
`model.weights.h5` and the other layers are re-keyed around the new `p_re_lu` group.
"""

from __future__ import annotations

from typing import Any

from qfix.model.config import policy_name
from qfix.model.rewrites._shared import one_shape_for_every_call
from qfix.model.edit import EditError, ModelEdit, initializer, make_layer
from qfix.model.patterns import leaky_relu_slope


def leaky_relu_to_prelu(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` computes a plain leaky ReLU (`qfix.model.patterns.leaky_relu_slope`)."""
    dialect = edit.dialect
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    cls = raw.get("class_name")
    dtype = policy_name(cfg.get("dtype")) or "float32"
    alpha = leaky_relu_slope(raw)
    if alpha is None:
        raise EditError(f"{name!r} ({cls}) applies no plain leaky ReLU")
    replace = cls in ("LeakyReLU", "ReLU", "Activation")  # else: clear the activation, a PReLU follows
    one_shape_for_every_call(edit, scope, name)
    if replace:
        shape = _input_shape(edit, raw, name, scope)
    else:
        shape = edit.tensor_meta((name, 0, 0), scope)[0]
    if shape is None or any(d is None for d in shape[1:]):
        raise EditError(f"the shape at {name!r} is not recorded; cannot size the PReLU alpha")

    import numpy as np  # local: source-side start-up (LSP, `qfix script.py`) never needs numpy

    shared = list(range(1, len(shape) - 1))  # all but batch and channels (channels_last)
    alpha_value = np.full([1 if a in shared else shape[a] for a in range(1, len(shape))], alpha, np.float32)
    prelu = make_layer(
        "PReLU",
        {"alpha_initializer": initializer("Constant", {"value": alpha}), "alpha_regularizer": None,
         "alpha_constraint": None, "shared_axes": shared or None},
        dialect, name if replace else f"{name}_prelu", dtype=dtype, input_shape=shape,
    )
    if replace:
        edit.replace(name, prelu, scope, weights=[alpha_value])
        note = f"{cls} {name!r} → PReLU(alpha={alpha:g}, shared_axes={shared})"
    else:
        edit.layer(name, scope)["config"]["activation"] = "linear"
        new = edit.insert_after((name, 0, 0), prelu, scope, weights=[alpha_value])
        new = edit.take_output_name(new, name, scope)
        note = f"leaky_relu activation of {name!r} → PReLU {new!r} (alpha={alpha:g}, shared_axes={shared})"
    return note


def _input_shape(edit: ModelEdit, raw: dict[str, Any], name: str, scope: tuple[str, ...]) -> list | None:
    shape = (raw.get("build_config") or {}).get("input_shape")
    if isinstance(shape, list):
        return shape
    inputs = edit.inputs_of(name, scope)
    shape = edit.tensor_meta(inputs[0], scope)[0] if inputs else None
    # An activation keeps the shape: its output's readers know it too.
    return shape if shape is not None else edit.tensor_meta((name, 0, 0), scope)[0]
