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
    import flatbuffers
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as S

    root = S.Model.GetRootAsModel(tflite, 0)
    ops_enum = S.BuiltinOperator
    if not any(max(root.OperatorCodes(i).BuiltinCode(), root.OperatorCodes(i).DeprecatedBuiltinCode())
               == ops_enum.PACK for i in range(root.OperatorCodesLength())):
        return tflite, 0
    model = S.ModelT.InitFromObj(root)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    replaced = 0

    def reshape_code() -> int:
        """The RESHAPE operator code (version 1: int8 and uint8; TF's op_version.cc)."""
        if ops_enum.RESHAPE in codes:
            return codes.index(ops_enum.RESHAPE)
        c = S.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = ops_enum.RESHAPE, ops_enum.RESHAPE, 1
        model.operatorCodes.append(c)
        codes.append(ops_enum.RESHAPE)
        return len(codes) - 1

    for g in model.subgraphs:
        out: list[Any] = []
        for op in g.operators or []:
            if not _packs_batch_of_ones(op, codes, g, ops_enum):
                out.append(op)
                continue
            final = g.tensors[op.outputs[0]]
            shape = [int(d) for d in final.shape]  # [N, 1, ...]
            mid = copy.deepcopy(final)
            mid.shape = [1, shape[0], *shape[2:]]
            mid.shapeSignature = None
            mid.buffer = 0
            mid.name = (final.name or b"") + b"/qfix_pack_axis1"
            g.tensors.append(mid)
            mid_index = len(g.tensors) - 1

            buf = S.BufferT()
            buf.data = np.asarray(shape, np.int32).tobytes()
            model.buffers.append(buf)
            target_shape = S.TensorT()
            target_shape.shape, target_shape.type = [len(shape)], S.TensorType.INT32
            target_shape.buffer = len(model.buffers) - 1
            target_shape.name = f"qfix/pack_off_batch/shape_{len(g.tensors)}".encode()
            g.tensors.append(target_shape)

            pack = copy.deepcopy(op)
            pack.builtinOptions.axis = 1
            pack.outputs = [mid_index]
            reshape = S.OperatorT()
            reshape.opcodeIndex = reshape_code()
            reshape.inputs = [mid_index, len(g.tensors) - 1]
            reshape.outputs = [op.outputs[0]]
            reshape.builtinOptionsType = S.BuiltinOptions.ReshapeOptions
            reshape.builtinOptions = S.ReshapeOptionsT()
            reshape.builtinOptions.newShape = shape
            out += [pack, reshape]
            replaced += 1
        g.operators = out
    if not replaced:
        return tflite, 0
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), replaced


def _packs_batch_of_ones(op: Any, codes: list[int], g: Any, ops_enum: Any) -> bool:
    """A PACK on axis 0 of static inputs [1, ...] into [N, 1, ...]."""
    if codes[op.opcodeIndex] != ops_enum.PACK or op.builtinOptions is None or op.builtinOptions.axis != 0:
        return False
    shapes = [list(g.tensors[i].shape) if g.tensors[i].shape is not None else [] for i in op.inputs]
    out = list(g.tensors[op.outputs[0]].shape) if g.tensors[op.outputs[0]].shape is not None else []
    return (bool(shapes) and all(s == shapes[0] for s in shapes) and len(shapes[0]) >= 1
            and shapes[0][0] == 1 and all(int(d) > 0 for d in shapes[0])
            and out == [len(shapes), *shapes[0]])
