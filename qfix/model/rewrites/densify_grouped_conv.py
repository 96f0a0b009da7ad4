"""Turn a grouped convolution into a plain one with a block-diagonal kernel (QF306 grouped-conv, exact).

`Conv2D(filters=F, k, groups=g)` (or Conv1D) on C input channels stores its kernel as
(k…, C/g, F): group i convolves input channels [i·C/g, (i+1)·C/g) into output channels
[i·F/g, (i+1)·F/g). A plain convolution (`groups=1`) with the kernel (k…, C, F) that holds
group i's slice in that block and zeros everywhere else computes the same function: the zeros
add nothing (float outputs differ only by summation order, ~1e-7). The layer keeps its name,
settings, bias and activation; only `groups` and the kernel change, so it works in both
dialects and on every kind of model (Sequential, shared layers, any activation).

The price: the plain convolution does g× the grouped layer's multiply-adds (the zero blocks are
computed too). The Keras 3 split (`split_grouped_conv`) costs nothing extra and is preferred
where it applies. Observed after int8 conversion (TF 2.21, tf_keras): CONV_2D v3 where the
grouped layer made every CONV_2D of the model v6.
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit
from qfix.model.rewrites.split_grouped_conv import grouped_conv


def densify_grouped_conv(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Conv1D/Conv2D with groups > 1 (either dialect); its kernel becomes the
    block-diagonal (k…, C, F) float kernel of a `groups=1` convolution."""
    raw, cfg, groups, filters = grouped_conv(edit, scope, name)
    path = (*scope, name)
    source = edit.origin.get(path)
    if source is None:
        raise EditError(f"{name!r} was added by this edit; its weights are not in the file yet")
    cfg["groups"] = 1
    edit.origin[path] = None  # new variables in the layer's own group, derived from the original's
    edit.new_vars[path] = _block_diagonal(source, groups)
    return (f"{raw['class_name']} {name!r} (groups={groups}) → groups=1 with a block-diagonal kernel (zeros outside "
            f"each group's block): the same function, at {groups}× the layer's multiply-adds")


def _block_diagonal(source: tuple[str, ...], groups: int):
    """The (k…, C, F) kernel from the grouped (k…, C/g, F) one; the bias and any other
    variables unchanged."""
    def derive(read):
        import numpy as np  # local: source-side start-up (LSP, `qfix script.py`) never needs numpy

        found = read(source)
        if not found:  # a weights file without this layer's variables (an unbuilt case)
            return []
        kernel, *rest = found
        per_in, filters = kernel.shape[-2], kernel.shape[-1]
        per_out = filters // groups
        dense = np.zeros((*kernel.shape[:-2], per_in * groups, filters), kernel.dtype)
        for i in range(groups):
            out = slice(i * per_out, (i + 1) * per_out)
            dense[..., i * per_in:(i + 1) * per_in, out] = kernel[..., :, out]
        return [dense, *(np.asarray(v).copy() for v in rest)]
    return derive
