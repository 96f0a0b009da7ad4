"""Make the integer → float conversion of a mixed merge explicit, at the model boundary when
possible (QF101 mixed-dtype-merge).

When the integer operand of the merge is a model input that float32 holds exactly and that
nothing needs as an integer, the conversion moves into the input (`fold_input_cast`): no CAST
op is left on device and the TFLite input stays the raw integer frame. Otherwise an explicit
cast is inserted on that operand, for this merge only, where Keras 3 promotes today: same
numbers, and the conversion is visible in the model (it is still a CAST op on device).
"""

from __future__ import annotations

from typing import Any

from qfix.model.edit import EditError, ModelEdit
from qfix.model.graph import is_float, is_integer, tensor_dtype
from qfix.model.rewrites._shared import graph_of
from qfix.model.rewrites.fold_input_cast import fold_input_cast

MERGES = {"Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot"}


def mixed_merge_cast(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a merge layer whose inputs mix integer and float tensors."""
    graph = graph_of(edit, scope)
    merge = graph.layers.get(name)
    if merge is None or merge.class_name not in MERGES:
        raise EditError(f"{name!r} is not a merge layer")
    floats = [tensor_dtype(graph, r) for r in merge.inputs if is_float(tensor_dtype(graph, r))]
    ints = [r for r in merge.inputs if is_integer(tensor_dtype(graph, r))]
    if not ints or not floats:
        raise EditError(f"{name!r} does not mix integer and float inputs")
    for ref in ints:
        if graph.layers[ref.layer].is_input:
            try:
                return fold_input_cast(edit, scope, ref.layer)
            except EditError:
                pass  # the input is needed as an integer elsewhere: cast here instead
    dtype = floats[0]
    casts = insert_casts(edit, scope, name, ints, dtype)
    return f"explicit cast(s) {', '.join(map(repr, casts))} to {dtype} before {name!r}"


def insert_casts(edit: ModelEdit, scope: tuple[str, ...], name: str, refs: list, dtype: str) -> list[str]:
    """An explicit cast to `dtype` of each tensor in `refs` (TensorRefs that layer `name` reads),
    for `name` alone; returns the casts' names."""
    casts = []
    for ref in refs:
        t = (ref.layer, ref.node, ref.index)
        cast = edit.add(_cast_layer(edit, edit.dialect, f"{ref.layer}_to_{dtype}", dtype, scope), [t], scope)
        if edit.dialect == "tf_keras":  # tf.cast takes its dtype as a call argument
            edit.layer(cast, scope)["inbound_nodes"] = [[t[0], t[1], t[2], {"dtype": dtype}]]
        edit.retarget(name, t, (cast, 0, 0), scope)
        casts.append(cast)
    return casts


def _cast_layer(edit: ModelEdit, dialect: str, base: str, dtype: str, scope: tuple[str, ...]) -> dict[str, Any]:
    """A cast as each dialect saves `cast(x, dtype)`: a Keras 3 op node, a tf_keras TFOpLambda."""
    if dialect == "keras3":
        return {"module": "keras.src.ops.core", "class_name": "Cast", "config": {"name": base, "dtype": dtype},
                "registered_name": "Cast", "name": base, "inbound_nodes": []}
    name = edit.unique_name("tf.cast", scope)
    return {"module": "tf_keras.src.layers.core.tf_op_layer", "class_name": "TFOpLambda",
            "config": {"name": name, "trainable": True, "dtype": "float32", "function": "cast"},
            "registered_name": "TFOpLambda", "name": name, "inbound_nodes": []}
