"""Fold the cast of an integer input into the input itself (QF102 integer-input-cast).

`Input(dtype="uint8") → cast to float32 → Rescaling(1/255)` becomes `Input(dtype="float32") →
Rescaling(1/255)`: the input carries the same values (0..255, exact in float32), the casts
that read it go away, and the Keras graph no longer has a CAST. With an integer-I/O recipe (the
Edge TPU's uint8) the TFLite input is still the raw uint8 frame, the cast now living in the
input quantization; with float I/O (the GPU delegate) it becomes float32, which the fix job's
note says (qfix.jobs.fix.interface_note). The Rescaling stays; folding it too would change the float model's interface
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
    uint8 frames, `Reshape`, `ZeroPadding2D`, ...) or pick among them as integers (max pooling,
    ReLU, Maximum: on float32 copies they compute the same values): then every input it reads is
    folded, and the casts anywhere after those layers go."""
    from qfix.model.rewrites.float_kernel_cast import hands_on_integers  # it imports this module

    graph = graph_of(edit, scope)
    layer = graph.layers.get(name)
    if layer is None:
        raise EditError(f"no layer named {name!r}")
    if layer.is_input:
        inputs = [layer]
    else:
        inputs = integer_sources(graph, layer, hands_on_integers) or [
            graph.layers[t.layer] for t in layer.inputs if graph.layers[t.layer].is_input][:1]
    if not inputs:
        raise EditError(f"{name!r} does not read a model input")
    for inp in inputs:
        if inp.out_dtype not in EXACT_IN_FLOAT32:
            raise EditError(f"input {inp.name!r} is {inp.out_dtype}: float32 does not hold its values exactly")

    casts: list[str] = []
    for inp in inputs:
        _, readers = integer_closure(graph, inp, hands_on_integers)
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
    # How the .tflite takes the input now depends on the target's recipe: the fix job says
    # (qfix.jobs.fix.interface_note).
    note = f"input{'' if one else 's'} {names} {dtypes} → float32 (same values){removed}"
    return note
