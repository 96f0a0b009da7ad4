"""Split a grouped convolution into one convolution per group (QF306 grouped-conv, exact).

`Conv2D(filters, k, groups=g)` (or Conv1D) convolves input channels [i·C/g, (i+1)·C/g) into
output channels [i·F/g, (i+1)·F/g) with the kernel slice `kernel[..., :, i·F/g:(i+1)·F/g]`
(Keras stores a grouped kernel as (k…, C/g, F)). The rewrite writes exactly that: a split of the
input channels into g parts (a Keras 3 `ops.split` node, one SPLIT op), g plain convolutions with
the same settings, `filters=F/g` and their slice of the kernel and bias, and a Concatenate. The
activation stays on each group's convolution: it is elementwise, so applying it per group is the
same function (and the converter fuses it into each CONV_2D). The concatenation takes the
layer's name, so readers and model outputs keep theirs.

Observed after int8 conversion (TF 2.21): SPLIT v2, CONV_2D v3 ×g, CONCATENATION v2, where the
grouped layer made every CONV_2D of the model v6.
"""

from __future__ import annotations

import copy

from qfix.model.config import activation_name, policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer

CONVS = ("Conv1D", "Conv2D")
NOT_ELEMENTWISE = ("softmax", "log_softmax")


def grouped_conv(edit: ModelEdit, scope: tuple[str, ...], name: str) -> tuple[dict, dict, int, int]:
    """The layer entry, its config, groups and filters of the grouped Conv1D/Conv2D `name`.
    Raises EditError for any other layer, or filters not a multiple of groups."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    groups, filters = cfg.get("groups"), cfg.get("filters")
    if raw.get("class_name") not in CONVS or not isinstance(groups, int) or groups < 2:
        raise EditError(f"{name!r} is not a grouped Conv1D/Conv2D")
    if not isinstance(filters, int) or filters % groups:
        raise EditError(f"{name!r}: filters={filters} is not a multiple of groups={groups}")
    return raw, cfg, groups, filters


def split_grouped_conv(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Conv1D/Conv2D with groups > 1 in a Keras 3 model (a Sequential becomes the
    Functional it stands for: a split is not a chain)."""
    if edit.dialect != "keras3":
        raise EditError("splitting a grouped convolution is written for Keras 3 configs only")
    edit.functional(scope)  # a split is not a chain
    raw, cfg, groups, filters = grouped_conv(edit, scope, name)
    if activation_name(raw) in NOT_ELEMENTWISE:
        raise EditError(f"{name!r} applies {activation_name(raw)}, which is not elementwise; split it off first")
    if len(raw.get("inbound_nodes") or []) != 1:
        raise EditError(f"{name!r} is not called exactly once")
    source = edit.origin.get((*scope, name))
    if source is None:
        raise EditError(f"{name!r} was added by this edit; its weights are not in the file yet")
    (x,) = edit.inputs_of(name, scope)
    axis = 1 if cfg.get("data_format") == "channels_first" else -1
    per = filters // groups
    dtype = policy_name(cfg.get("dtype")) or "float32"
    use_bias = cfg.get("use_bias", True)

    split = edit.add({"module": "keras.src.ops.numpy", "class_name": "Split", "registered_name": "Split",
                      "name": f"{name}_split", "config": {"name": f"{name}_split", "indices_or_sections": groups,
                                                            "axis": axis}}, [x], scope)
    parts = []
    for i in range(groups):
        conv_cfg = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in ("name", "trainable", "dtype")}
        conv_cfg.update(filters=per, groups=1)
        conv = make_layer(raw["class_name"], conv_cfg, edit.dialect, f"{name}_g{i}", dtype=dtype)
        part = edit.add(conv, [(split, 0, i)], scope)
        edit.new_vars[(*scope, part)] = _slice(source, i, per, use_bias)
        parts.append((part, 0, 0))
    cat = edit.add(make_layer("Concatenate", {"axis": axis}, edit.dialect, f"{name}_concat", dtype=dtype), parts, scope)
    edit.rewire((name, 0, 0), (cat, 0, 0), scope)
    edit.remove(name, scope)
    edit.rename(cat, name, scope)
    return (f"{raw['class_name']} {name!r} (groups={groups}) → split into {groups}, {groups} convolutions of "
            f"{per} filters with their kernel slices, concatenated as {name!r}")


def _slice(source: tuple[str, ...], i: int, per: int, use_bias: bool):
    """Group i's variables, read from the original layer when the weights are re-keyed."""
    def derive(read):
        found = read(source)
        if not found:  # a weights file without this layer's variables (an unbuilt case) has none to slice
            return []
        kernel, *rest = found
        out = [kernel[..., i * per:(i + 1) * per].copy()]
        if use_bias and rest:
            out.append(rest[0][i * per:(i + 1) * per].copy())
        return out
    return derive
