"""QF101 mixed-dtype-merge: make the integer → float conversion explicit, at the model boundary
when possible.

When the integer operand of the merge is a model input that float32 holds exactly and that
nothing needs as an integer, the conversion moves into the input (`fold_input_cast`): no CAST
op is left on device and the TFLite input stays the raw integer frame. Otherwise an explicit
cast is inserted on that operand, for this merge only, where Keras 3 promotes today: same
numbers, and the conversion is visible in the model (it is still a CAST op on device).
"""

from __future__ import annotations

from typing import Any

from qfix.types import QfixError
from qfix.model.edit import EditError, ModelEdit
from qfix.model.graph import build_graph, is_float, is_integer, tensor_dtype
from qfix.model.fixes import FixResult, fold_input_cast, guarded, open_edit

CODE = "QF101"
MERGES = {"Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot"}


def accepts(raw: dict[str, Any]) -> bool:
    return raw.get("class_name") in MERGES


def defers(model: dict[str, Any], name: str, dialect: str) -> bool:
    """True when the integer operand is a model input that a cast also reads: QF102 fires for
    that cast, and its fix (fold the cast into the input) removes this finding too."""
    try:
        graph = build_graph(model, dialect)
    except QfixError:
        return False
    merge = graph.layers.get(name)
    for ref in merge.inputs if merge is not None else []:
        source = graph.layers.get(ref.layer)
        if source is not None and source.is_input and is_integer(source.out_dtype) and any(
                user.is_cast for user in graph.consumers(source.name)):
            return True
    return False


@guarded
def apply(config: dict[str, Any], weights_bytes: bytes, target: Any, dialect: str | None = None) -> FixResult:
    edit, scope, name, graph = open_edit(config, target, dialect)
    dialect = edit.dialect
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
                return fold_input_cast.apply(config, weights_bytes, (scope, ref.layer), dialect)
            except EditError:
                pass  # the input is needed as an integer elsewhere: cast here instead
    dtype = floats[0]
    casts = []
    for ref in ints:
        t = (ref.layer, ref.node, ref.index)
        cast = edit.add(_cast_layer(edit, dialect, f"{ref.layer}_to_{dtype}", dtype, scope), [t], scope)
        if dialect == "tf_keras":  # tf.cast takes its dtype as a call argument
            edit.layer(cast, scope)["inbound_nodes"] = [[t[0], t[1], t[2], {"dtype": dtype}]]
        edit.retarget(name, t, (cast, 0, 0), scope)
        casts.append(cast)
    note = f"explicit cast(s) {', '.join(map(repr, casts))} to {dtype} before {name!r}"
    return edit.config, edit.weights(weights_bytes), note


def _cast_layer(edit: ModelEdit, dialect: str, base: str, dtype: str, scope: tuple[str, ...]) -> dict[str, Any]:
    """A cast as each dialect saves `cast(x, dtype)`: a Keras 3 op node, a tf_keras TFOpLambda."""
    if dialect == "keras3":
        return {"module": "keras.src.ops.core", "class_name": "Cast", "config": {"name": base, "dtype": dtype},
                "registered_name": "Cast", "name": base, "inbound_nodes": []}
    name = edit.unique_name("tf.cast", scope)
    return {"module": "tf_keras.src.layers.core.tf_op_layer", "class_name": "TFOpLambda",
            "config": {"name": name, "trainable": True, "dtype": "float32", "function": "cast"},
            "registered_name": "TFOpLambda", "name": name, "inbound_nodes": []}
