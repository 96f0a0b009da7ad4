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


def split_v_as_split(tflite: bytes) -> tuple[bytes, int]:
    """The .tflite with each SPLIT_V of equal constant sizes replaced by a SPLIT, and how many."""
    from qfix.convert.tflite_edit import TfliteEdit, shape_of

    edit = TfliteEdit.if_uses(tflite, "SPLIT_V")
    if edit is None:
        return tflite, 0
    S = edit.S
    replaced = 0
    for g in edit.model.subgraphs:
        for op in g.operators or []:
            if not edit.is_op(op, "SPLIT_V") or len(op.inputs) != 3:
                continue
            data, sizes_at, axis_at = op.inputs
            sizes, axis = edit.constant(g, sizes_at), edit.constant(g, axis_at)
            shape = shape_of(g, data)
            if sizes is None or axis is None or axis.size != 1 or not shape:
                continue
            ax = int(axis[0]) % len(shape)
            parts = len(op.outputs)
            if shape[ax] <= 0 or shape[ax] % parts or any(int(s) not in (-1, shape[ax] // parts) for s in sizes):
                continue
            if list(sizes).count(-1) > 1 or len(sizes) != parts:
                continue
            dtype = g.tensors[data].type
            # SPLIT's versions by input type (tensorflow/lite/tools/versioning/op_version.cc).
            version = {S.TensorType.INT16: 4, S.TensorType.INT32: 3, S.TensorType.INT8: 2}.get(dtype, 1)
            op.opcodeIndex = edit.opcode("SPLIT", version)
            op.inputs = [axis_at, data]
            op.builtinOptionsType = S.BuiltinOptions.SplitOptions
            op.builtinOptions = S.SplitOptionsT()
            op.builtinOptions.numSplits = parts
            replaced += 1
    return (edit.to_bytes(), replaced) if replaced else (tflite, 0)
