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
from qfix.model.graph import EXACT_IN_FLOAT32, integer_closure, integer_sources
from qfix.model.rewrites._shared import graph_of

# Layers that need integer inputs: a float input would break them.
INTEGER_CONSUMERS = {"Embedding", "CategoryEncoding", "Hashing", "IntegerLookup", "StringLookup"}


def fold_input_cast(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is the cast (or the implicitly casting layer) that reads the input, or the input.

    The input may reach it through layers that keep its values exactly (`Concatenate` of two
    uint8 frames, `Reshape`, `ZeroPadding2D`, ...): then every input it reads is folded, and the
    casts anywhere after those layers go."""
    graph = graph_of(edit, scope)
    layer = graph.layers.get(name)
    if layer is None:
        raise EditError(f"no layer named {name!r}")
    if layer.is_input:
        inputs = [layer]
    else:
        inputs = integer_sources(graph, layer) or [
            graph.layers[t.layer] for t in layer.inputs if graph.layers[t.layer].is_input][:1]
    if not inputs:
        raise EditError(f"{name!r} does not read a model input")
    for inp in inputs:
        if inp.out_dtype not in EXACT_IN_FLOAT32:
            raise EditError(f"input {inp.name!r} is {inp.out_dtype}: float32 does not hold its values exactly")

    casts: list[str] = []
    for inp in inputs:
        _, readers = integer_closure(graph, inp)
        for user in readers:
            if user.class_name in INTEGER_CONSUMERS:
                raise EditError(f"{user.class_name} {user.name!r} needs the integer input {inp.name!r}")
            if user.is_cast:
                if user.out_dtype != "float32" or len(user.inputs) != 1:
                    raise EditError(f"cast {user.name!r} is not a plain cast to float32")
                if user.name not in casts:
                    casts.append(user.name)
    for inp in inputs:
        edit.set_input(inp.name, dtype="float32", scope=scope)
    for cast in casts:  # float32 → float32 now: an identity
        edit.remove(cast, scope)
    removed = f"; removed cast(s) {', '.join(map(repr, casts))}" if casts else ""
    names = ", ".join(repr(i.name) for i in inputs)
    dtypes = "/".join(sorted({i.out_dtype for i in inputs}))
    one = len(inputs) == 1
    # The .tflite input is the recipe's integer type (uint8 for the Edge TPU), quantized from
    # these values: raw only when they fit its range with scale 1 (uint8 pixels), otherwise with
    # the scale and zero point the report's inputs table gives (an int8 input into uint8 I/O).
    note = (f"input{'' if one else 's'} {names} {dtypes} → float32 (same values){removed}; the converted model "
            f"takes {'it' if one else 'them'} as the recipe's integer input type, quantized from these values "
            f"(the inputs table gives scale and zero point)")
    return note
