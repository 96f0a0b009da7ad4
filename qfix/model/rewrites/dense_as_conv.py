"""Write a Dense over the channels of a 3-D or 4-D tensor as the 1×1 convolution it is (QF311
pointwise-dense, exact).

A Dense on `(batch, H, W, C)` applies the same `(C, units)` matrix at every position: it is
`Conv2D(units, 1)` with the kernel read as `(1, 1, C, units)`, and on `(batch, T, C)`
`Conv1D(units, 1)` with `(1, C, units)`; bias, activation, initializers, regularizers and
constraints are unchanged. TFLite converts the Dense to a FULLY_CONNECTED whose output keeps the
N-D shape, which the Edge TPU does not map ("Output tensor is one-dimensional"), and the
convolution to CONV_2D (for Conv1D between EXPAND_DIMS and RESHAPE), which it does. The layer
keeps its name. ConvNeXt's pointwise layers and a transformer's per-token MLP are such Denses.
"""

from __future__ import annotations

import copy

from qfix.model.config import policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer
from qfix.model.rewrites._shared import layer_input_shape

KEEP = ("units", "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
        "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint")


def dense_as_conv(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Dense whose input is `(batch, ..., C)` of rank 3 or 4 with static C."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    if raw.get("class_name") != "Dense":
        raise EditError(f"{name!r} is not a Dense layer")
    if cfg.get("lora_rank") or cfg.get("quantization_config"):
        raise EditError(f"{name!r} has LoRA or quantized weights")
    shape = layer_input_shape(edit, scope, name)
    if not isinstance(shape, list) or len(shape) not in (3, 4) or not isinstance(shape[-1], int):
        raise EditError(f"the input of {name!r} is not (batch, ..., C) of rank 3 or 4 with static channels")
    rank = len(shape)
    cls = "Conv2D" if rank == 4 else "Conv1D"
    new = {k: copy.deepcopy(cfg[k]) for k in KEEP if k in cfg}
    units = new.pop("units")
    new.update(filters=units, kernel_size=[1] * (rank - 2), strides=[1] * (rank - 2), padding="valid",
               data_format="channels_last", dilation_rate=[1] * (rank - 2), groups=1)
    source = edit.origin.get((*scope, name))
    if source is None:
        raise EditError(f"{name!r} was added by this edit; its weights are not in the file yet")
    layer = make_layer(cls, new, edit.dialect, name, dtype=policy_name(cfg.get("dtype")) or "float32",
                       input_shape=shape)
    edit.replace(name, layer, scope)

    def weights(found):
        if not found:
            return []
        kernel, *rest = found
        return [kernel.reshape((1,) * (rank - 2) + kernel.shape), *rest]

    edit.new_vars[(*scope, name)] = lambda read: weights(read(source))
    one = "×".join(["1"] * (rank - 2))
    return f"Dense {name!r} → {cls}({units}, {one}) on its rank-{rank} input, the kernel read as {one}×C×{units}"
