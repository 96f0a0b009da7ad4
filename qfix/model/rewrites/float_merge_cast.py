"""Make a merge of integer tensors that TFLite cannot convert (`Add`, `Subtract`, `Multiply`,
`Average`, `Maximum`, `Minimum` of uint8 or int8 tensors, `Concatenate` of uint16 ones; the
types per merge are float_kernel_cast.UNCONVERTED_MERGES) compute in float32.

TensorFlow runs such a merge in the integer type, but the TFLite converter has no builtin for
it ("'tf.AddV2' op is neither a custom op nor a flex op"): the model does not convert, whatever
follows the merge. As for a float-only kernel (`float_kernel_cast`), the cast folds into the
model inputs the merge reads (the TFLite input stays the raw integer frame through qfix's
integer-I/O recipe), otherwise an explicit cast to float32 is inserted before the merge alone.
Maximum and Minimum then compute the same values; Add, Subtract, Multiply and Average compute
without the integer type's wrap-around (uint8: 200 + 100 = 44), and float32 rounds integers
above 2**24: the caller says which.
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit
from qfix.model.rewrites._shared import graph_of
from qfix.model.rewrites.float_kernel_cast import float_inputs, unconverted_merge


def float_merge_cast(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a merge of integer tensors the converter cannot convert (`unconverted_merge`)."""
    graph = graph_of(edit, scope)
    layer = graph.layers.get(name)
    if layer is None or unconverted_merge(graph, layer) is None:
        raise EditError(f"{name!r} is not a merge of integer tensors that TFLite cannot convert")
    return float_inputs(edit, scope, graph, layer)
