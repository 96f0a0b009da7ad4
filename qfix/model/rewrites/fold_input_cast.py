"""Fold the cast of an integer input into the input itself (QF102 integer-input-cast).

`Input(dtype="uint8") → cast to float32 → Rescaling(1/255)` becomes `Input(dtype="float32") →
Rescaling(1/255)`: the input carries the same values (0..255, exact in float32), the casts
that read it go away, and the Keras graph no longer has a CAST. The TFLite input is still the
raw uint8 frame: the target recipe converts with uint8 I/O, so the cast now lives in the input
quantization. The Rescaling stays; folding it too would change the float model's interface
(inputs in 0..1), which is not a safe fix.
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit
from qfix.model.rewrites._shared import graph_of

# Integers every value of which float32 holds exactly (|x| < 2**24).
EXACT_IN_FLOAT32 = {"uint8", "int8", "uint16", "int16", "bool"}
# Layers that need integer inputs: a float input would break them.
INTEGER_CONSUMERS = {"Embedding", "CategoryEncoding", "Hashing", "IntegerLookup", "StringLookup"}


def fold_input_cast(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is the cast (or the implicitly casting layer) that reads the input, or the input."""
    graph = graph_of(edit, scope)
    layer = graph.layers.get(name)
    if layer is None:
        raise EditError(f"no layer named {name!r}")
    inp = layer if layer.is_input else next(
        (graph.layers[t.layer] for t in layer.inputs if graph.layers[t.layer].is_input), None)
    if inp is None:
        raise EditError(f"{name!r} does not read a model input")
    if inp.out_dtype not in EXACT_IN_FLOAT32:
        raise EditError(f"input {inp.name!r} is {inp.out_dtype}: float32 does not hold its values exactly")

    casts, dtype = [], "float32"
    for user in graph.consumers(inp.name):
        if user.class_name in INTEGER_CONSUMERS:
            raise EditError(f"{user.class_name} {user.name!r} needs the integer input {inp.name!r}")
        if user.is_cast:
            if user.out_dtype != "float32" or len(user.inputs) != 1:
                raise EditError(f"cast {user.name!r} is not a plain cast to float32")
            casts.append(user.name)
    edit.set_input(inp.name, dtype=dtype, scope=scope)
    for cast in casts:  # float32 → float32 now: an identity
        edit.remove(cast, scope)
    removed = f"; removed cast(s) {', '.join(map(repr, casts))}" if casts else ""
    note = (f"input {inp.name!r} {inp.out_dtype} → float32 (same values){removed}; the converted model "
            f"keeps a {inp.out_dtype} input through the recipe's input quantization")
    return note
