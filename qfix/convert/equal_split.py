"""Split into equal parts with SPLIT instead of SPLIT_V, in the .tflite.

tf_keras's GRU cell splits its recurrent matrix product into the three gates with
`tf.split(x, [units, units, -1])` (SPLIT_V, sizes given); unrolled by QF305 it converts to one
SPLIT_V per time step, and the Edge TPU has no SPLIT_V, so its graph was cut at the layer. When
every size is the same (the gates are), SPLIT_V is SPLIT with that many parts on the same axis:
the same slices in the same order, each copied with the input's scale and zero point, so the
integer outputs are bit-identical.

Only for a target that runs SPLIT and not SPLIT_V (qfix.model.opmap.splits_equal), only where
the sizes and the axis are constants, the sizes all equal. Runs in the worker child: it uses
TF's flatbuffer object API (tensorflow.lite.python.schema_py_generated).
"""

from __future__ import annotations

from typing import Any


def split_v_as_split(tflite: bytes) -> tuple[bytes, int]:
    """The .tflite with each SPLIT_V of equal constant sizes replaced by a SPLIT, and how many."""
    import flatbuffers
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as S

    root = S.Model.GetRootAsModel(tflite, 0)
    ops_enum = S.BuiltinOperator
    if not any(max(root.OperatorCodes(i).BuiltinCode(), root.OperatorCodes(i).DeprecatedBuiltinCode())
               == ops_enum.SPLIT_V for i in range(root.OperatorCodesLength())):
        return tflite, 0
    model = S.ModelT.InitFromObj(root)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    replaced = 0

    def const(g: Any, index: int) -> Any:
        t = g.tensors[index]
        data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        if data is None or len(data) == 0 or t.type not in (S.TensorType.INT32, S.TensorType.INT64):
            return None
        return np.frombuffer(bytes(bytearray(data)), np.int32 if t.type == S.TensorType.INT32 else np.int64)

    def split_code(version: int) -> int:
        if ops_enum.SPLIT in codes:
            i = codes.index(ops_enum.SPLIT)
            model.operatorCodes[i].version = max(model.operatorCodes[i].version, version)
            return i
        c = S.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = ops_enum.SPLIT, ops_enum.SPLIT, version
        model.operatorCodes.append(c)
        codes.append(ops_enum.SPLIT)
        return len(codes) - 1

    for g in model.subgraphs:
        for op in g.operators or []:
            if codes[op.opcodeIndex] != ops_enum.SPLIT_V or len(op.inputs) != 3:
                continue
            data, sizes_at, axis_at = op.inputs
            sizes, axis = const(g, sizes_at), const(g, axis_at)
            shape = [int(d) for d in (g.tensors[data].shape if g.tensors[data].shape is not None else [])]
            if sizes is None or axis is None or axis.size != 1 or not shape:
                continue
            ax = int(axis[0]) % len(shape)
            parts = len(op.outputs)
            if shape[ax] <= 0 or shape[ax] % parts or any(int(s) not in (-1, shape[ax] // parts) for s in sizes):
                continue
            if list(sizes).count(-1) > 1 or len(sizes) != parts:
                continue
            dtype = g.tensors[data].type
            version = {S.TensorType.INT16: 4, S.TensorType.INT32: 3, S.TensorType.INT8: 2}.get(dtype, 1)
            op.opcodeIndex = split_code(version)
            op.inputs = [axis_at, data]
            op.builtinOptionsType = S.BuiltinOptions.SplitOptions
            op.builtinOptions = S.SplitOptionsT()
            op.builtinOptions.numSplits = parts
            replaced += 1
    if not replaced:
        return tflite, 0
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), replaced
