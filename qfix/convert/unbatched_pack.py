"""Stack an unrolled RNN's time steps on axis 1 instead of the batch axis, in the .tflite.

An unrolled recurrent layer that returns its sequence (QF305's unroll=True,
`return_sequences=True`) stacks its per-step outputs with `tf.stack` on the time-major axis
(both dialects' backend rnn()); at batch 1 TF 2.21 keeps one PACK (axis 0) of T tensors
[1, ...] into [T, 1, ...]. The Edge TPU has no packing in the batch dimension, so its graph was
cut at the RNN's last op. With a leading 1 in every input, PACK on axis 1 gives [1, T, ...]
with the same elements in the same order (element (t, 0, i) of the one is element (0, t, i)
of the other): a RESHAPE to [T, 1, ...] makes it the original tensor, exactly. PACK and
RESHAPE copy int8 values with one scale and zero point (the new [1, T, ...] tensor takes the
original output's), so the integer outputs are bit-identical.

Only for a target whose PACK refuses axis 0 and that runs RESHAPE
(qfix.model.opmap.packs_off_batch), only for a PACK on axis 0 of static inputs [1, ...]. Runs
in the worker child: it uses TF's flatbuffer object API (tensorflow.lite.python.schema_py_generated).
"""

from __future__ import annotations

import copy
from typing import Any


def pack_off_batch(tflite: bytes) -> tuple[bytes, int]:
    """The .tflite with each PACK(axis 0) of N tensors [1, ...] replaced by a PACK(axis 1) into a
    new [1, N, ...] tensor and a RESHAPE of it to the original [N, 1, ...] output, and how many
    PACKs were replaced."""
    from qfix.convert.tflite_edit import TfliteEdit, shape_of

    edit = TfliteEdit.if_uses(tflite, "PACK")
    if edit is None:
        return tflite, 0
    S = edit.S
    replaced = 0
    for g in edit.model.subgraphs:
        out: list[Any] = []
        for op in g.operators or []:
            if not _packs_batch_of_ones(op, edit, g):
                out.append(op)
                continue
            final = g.tensors[op.outputs[0]]
            shape = shape_of(g, op.outputs[0])  # [N, 1, ...]
            mid = copy.deepcopy(final)
            mid.shape = [1, shape[0], *shape[2:]]
            mid.shapeSignature = None
            mid.buffer = 0
            mid.name = (final.name or b"") + b"/qfix_pack_axis1"
            g.tensors.append(mid)
            mid_index = len(g.tensors) - 1

            pack = copy.deepcopy(op)
            pack.builtinOptions.axis = 1
            pack.outputs = [mid_index]
            reshape = S.OperatorT()
            reshape.opcodeIndex = edit.opcode("RESHAPE", 1)  # version 1: int8 and uint8 (op_version.cc)
            reshape.inputs = [mid_index, edit.int32_tensor(g, shape, "qfix/pack_off_batch/shape")]
            reshape.outputs = [op.outputs[0]]
            reshape.builtinOptionsType = S.BuiltinOptions.ReshapeOptions
            reshape.builtinOptions = S.ReshapeOptionsT()
            reshape.builtinOptions.newShape = shape
            out += [pack, reshape]
            replaced += 1
        g.operators = out
    return (edit.to_bytes(), replaced) if replaced else (tflite, 0)


def _packs_batch_of_ones(op: Any, edit: Any, g: Any) -> bool:
    """A PACK on axis 0 of static inputs [1, ...] into [N, 1, ...]."""
    from qfix.convert.tflite_edit import shape_of

    if not edit.is_op(op, "PACK") or op.builtinOptions is None or op.builtinOptions.axis != 0:
        return False
    shapes = [shape_of(g, i) for i in op.inputs]
    out = shape_of(g, op.outputs[0])
    return (bool(shapes) and all(s == shapes[0] for s in shapes) and len(shapes[0]) >= 1
            and shapes[0][0] == 1 and all(d > 0 for d in shapes[0])
            and out == [len(shapes), *shapes[0]])
