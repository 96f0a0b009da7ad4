"""Read an unrolled RNN's time steps with STRIDED_SLICE instead of UNPACK, in the .tflite.

An unrolled recurrent layer (QF305's unroll=True) reads its time steps with `tf.unstack` of the
time-major input (both dialects' backend rnn()); at batch 1 TF 2.21 converts the transpose to a
RESHAPE [1, T, ...] -> [T, 1, ...] and keeps one UNPACK (axis 0, T outputs). The Edge TPU has
no UNPACK, so its graph was cut at the RNN's first op. Step t of that UNPACK is exactly
`x[0:1, t:t+1, ...]` of the RESHAPE's input with axis 1 shrunk: a STRIDED_SLICE, which the Edge
TPU runs. The slice copies int8 values with the input's scale and zero point, as UNPACK and
RESHAPE do, so the integer outputs are bit-identical (reproduced on a Keras 3
Bidirectional(LSTM): max int8 difference 0 on 16 inputs).

Where the UNPACK reads anything else (an RNN after a Conv1D: a RESHAPE [1, 1, T, C] -> [T, 1, C];
tf_keras's own transposes), each output t is the STRIDED_SLICE of the UNPACK's own input at
index t of the unpacked axis, that axis shrunk: the same int8 values with the same scale and
zero point, exactly (the UNPACK's outputs keep its input's quantization).

Only for a target that runs STRIDED_SLICE and not UNPACK (qfix.model.opmap.steps_sliced), for
every UNPACK of a static shape; a RESHAPE left without readers is dropped. Runs in the worker child: it uses
TF's flatbuffer object API (tensorflow.lite.python.schema_py_generated).
"""

from __future__ import annotations

from typing import Any


def slice_time_steps(tflite: bytes) -> tuple[bytes, int]:
    """The .tflite with each UNPACK(axis 0) of a RESHAPE [1, T, ...] -> [T, 1, ...] replaced by
    T STRIDED_SLICEs of the RESHAPE's input, every other static UNPACK by STRIDED_SLICEs of its
    own input, and how many UNPACKs were replaced."""
    import flatbuffers
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as S

    root = S.Model.GetRootAsModel(tflite, 0)
    ops_enum = S.BuiltinOperator
    # Unpacking the whole file into objects costs seconds on a big model: only when it has an UNPACK
    if not any(max(root.OperatorCodes(i).BuiltinCode(), root.OperatorCodes(i).DeprecatedBuiltinCode())
               == ops_enum.UNPACK for i in range(root.OperatorCodesLength())):
        return tflite, 0
    model = S.ModelT.InitFromObj(root)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    replaced = 0

    def code_index(op: int, version: int) -> int:
        """The operator code of `op`, at `version` at least (a .tflite stores one per op type)."""
        if op in codes:
            i = codes.index(op)
            model.operatorCodes[i].version = max(model.operatorCodes[i].version, version)
            return i
        c = S.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = op, min(op, 127), version
        model.operatorCodes.append(c)
        codes.append(op)
        return len(codes) - 1

    for g in model.subgraphs:
        def const(values: list[int]) -> int:
            buf = S.BufferT()
            buf.data = np.asarray(values, np.int32).tobytes()
            model.buffers.append(buf)
            t = S.TensorT()
            t.shape, t.type, t.buffer = [len(values)], S.TensorType.INT32, len(model.buffers) - 1
            t.name = f"qfix/slice_time_steps/const_{len(g.tensors)}".encode()
            g.tensors.append(t)
            return len(g.tensors) - 1

        ops = list(g.operators or [])
        producer = {o: op for op in ops for o in (op.outputs if op.outputs is not None else [])}
        out: list[Any] = []
        dropped: set[int] = set()
        for op in ops:
            src = _sliceable(op, codes, producer, g, ops_enum)
            if src is None:
                axis = _unpacked_axis(op, codes, g, ops_enum)
                if axis is None:
                    out.append(op)
                    continue
                # Any other producer: slice the UNPACK's own input along its axis.
                src = op.inputs[0]
                shape = [int(d) for d in g.tensors[src].shape]
                version = _strided_slice_version(g.tensors[src].type, len(shape), S.TensorType)
                for t, tensor in enumerate(op.outputs):
                    begin = [t if i == axis else 0 for i in range(len(shape))]
                    end = [t + 1 if i == axis else d for i, d in enumerate(shape)]
                    s = S.OperatorT()
                    s.opcodeIndex = code_index(ops_enum.STRIDED_SLICE, version)
                    s.inputs = [src, const(begin), const(end), const([1] * len(shape))]
                    s.outputs = [tensor]
                    s.builtinOptionsType = S.BuiltinOptions.StridedSliceOptions
                    s.builtinOptions = S.StridedSliceOptionsT()
                    s.builtinOptions.shrinkAxisMask = 1 << axis  # drop the unpacked axis, as UNPACK does
                    out.append(s)
                replaced += 1
                continue
            shape = [int(d) for d in g.tensors[src].shape]
            rest = shape[2:]
            version = _strided_slice_version(g.tensors[src].type, len(shape), S.TensorType)
            for t, tensor in enumerate(op.outputs):
                s = S.OperatorT()
                s.opcodeIndex = code_index(ops_enum.STRIDED_SLICE, version)
                s.inputs = [src, const([0, t] + [0] * len(rest)), const([1, t + 1] + rest), const([1] * len(shape))]
                s.outputs = [tensor]
                s.builtinOptionsType = S.BuiltinOptions.StridedSliceOptions
                s.builtinOptions = S.StridedSliceOptionsT()
                s.builtinOptions.shrinkAxisMask = 2  # drop the time axis: [1, ...] as UNPACK gave
                out.append(s)
            dropped.add(id(producer[op.inputs[0]]))
            replaced += 1
        # A RESHAPE left without readers (and not a graph output) goes.
        read = {i for op in out for i in (op.inputs if op.inputs is not None else [])} | set(g.outputs)
        g.operators = [op for op in out if id(op) not in dropped or op.outputs[0] in read]
    if not replaced:
        return tflite, 0
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), replaced


def _sliceable(op: Any, codes: list[int], producer: dict, g: Any, ops_enum: Any) -> int | None:
    """The [1, T, ...] tensor an UNPACK(axis 0) reads through a RESHAPE to [T, 1, ...], or None."""
    if codes[op.opcodeIndex] != ops_enum.UNPACK or op.builtinOptions is None or op.builtinOptions.axis != 0:
        return None
    reshape = producer.get(op.inputs[0])
    if reshape is None or codes[reshape.opcodeIndex] != ops_enum.RESHAPE:
        return None
    src = reshape.inputs[0]
    shape = [int(d) for d in (g.tensors[src].shape if g.tensors[src].shape is not None else [])]
    mid = [int(d) for d in (g.tensors[op.inputs[0]].shape if g.tensors[op.inputs[0]].shape is not None else [])]
    if len(shape) < 3 or shape[0] != 1 or mid != [shape[1], 1, *shape[2:]] or shape[1] != len(op.outputs):
        return None
    return src


def _unpacked_axis(op: Any, codes: list[int], g: Any, ops_enum: Any) -> int | None:
    """The axis an UNPACK unpacks whole (one output per index, its input's shape static), or None."""
    if codes[op.opcodeIndex] != ops_enum.UNPACK or op.builtinOptions is None:
        return None
    shape = [int(d) for d in (g.tensors[op.inputs[0]].shape if g.tensors[op.inputs[0]].shape is not None else [])]
    signature = g.tensors[op.inputs[0]].shapeSignature
    if not shape or any(d < 0 for d in shape) or (signature is not None and any(int(d) < 0 for d in signature)):
        return None
    axis = op.builtinOptions.axis + (len(shape) if op.builtinOptions.axis < 0 else 0)
    if not 0 <= axis < len(shape) or shape[axis] != len(op.outputs):
        return None
    return axis


def _strided_slice_version(dtype: int, rank: int, types: Any) -> int:
    """The version TF 2.21's converter gives a STRIDED_SLICE without offset, ellipsis or new-axis
    masks (tensorflow/lite/tools/versioning/op_version.cc): 4 above 4 dimensions, else 2 for
    int8, 1 otherwise (uint8, float32)."""
    if rank > 4:
        return 4
    return 2 if dtype == types.INT8 else 1
