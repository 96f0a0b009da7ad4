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
    from qfix.convert.tflite_edit import TfliteEdit, shape_of

    edit = TfliteEdit.if_uses(tflite, "UNPACK")
    if edit is None:
        return tflite, 0
    S = edit.S
    replaced = 0
    for g in edit.model.subgraphs:
        def sliced(src: int, tensor: int, begin: list[int], end: list[int], shrink_axis: int) -> Any:
            """A STRIDED_SLICE of `src` from `begin` to `end` (stride 1) into `tensor`, the axis
            `shrink_axis` dropped, as UNPACK drops the unpacked axis."""
            rank = len(begin)
            s = S.OperatorT()
            s.opcodeIndex = edit.opcode("STRIDED_SLICE", _strided_slice_version(g.tensors[src].type, rank, S.TensorType))
            name = "qfix/slice_time_steps/const"
            s.inputs = [src, edit.int32_tensor(g, begin, name), edit.int32_tensor(g, end, name),
                        edit.int32_tensor(g, [1] * rank, name)]
            s.outputs = [tensor]
            s.builtinOptionsType = S.BuiltinOptions.StridedSliceOptions
            s.builtinOptions = S.StridedSliceOptionsT()
            s.builtinOptions.shrinkAxisMask = 1 << shrink_axis
            return s

        ops = list(g.operators or [])
        producer = {o: op for op in ops for o in (op.outputs if op.outputs is not None else [])}
        out: list[Any] = []
        dropped: set[int] = set()
        for op in ops:
            src = _sliceable(op, edit, producer, g)
            if src is not None:
                # Step t is x[0:1, t:t+1, ...] of the RESHAPE's input, the time axis dropped.
                shape = shape_of(g, src)
                rest = shape[2:]
                out += [sliced(src, tensor, [0, t] + [0] * len(rest), [1, t + 1] + rest, 1)
                        for t, tensor in enumerate(op.outputs)]
                dropped.add(id(producer[op.inputs[0]]))
                replaced += 1
                continue
            axis = _unpacked_axis(op, edit, g)
            if axis is None:
                out.append(op)
                continue
            # Any other producer: slice the UNPACK's own input along its axis.
            src = op.inputs[0]
            shape = shape_of(g, src)
            out += [sliced(src, tensor, [t if i == axis else 0 for i in range(len(shape))],
                           [t + 1 if i == axis else d for i, d in enumerate(shape)], axis)
                    for t, tensor in enumerate(op.outputs)]
            replaced += 1
        # A RESHAPE left without readers (and not a graph output) goes.
        read = {i for op in out for i in (op.inputs if op.inputs is not None else [])} | set(g.outputs)
        g.operators = [op for op in out if id(op) not in dropped or op.outputs[0] in read]
    return (edit.to_bytes(), replaced) if replaced else (tflite, 0)


def _sliceable(op: Any, edit: Any, producer: dict, g: Any) -> int | None:
    """The [1, T, ...] tensor an UNPACK(axis 0) reads through a RESHAPE to [T, 1, ...], or None."""
    from qfix.convert.tflite_edit import shape_of

    if not edit.is_op(op, "UNPACK") or op.builtinOptions is None or op.builtinOptions.axis != 0:
        return None
    reshape = producer.get(op.inputs[0])
    if reshape is None or not edit.is_op(reshape, "RESHAPE"):
        return None
    src = reshape.inputs[0]
    shape, mid = shape_of(g, src), shape_of(g, op.inputs[0])
    if len(shape) < 3 or shape[0] != 1 or mid != [shape[1], 1, *shape[2:]] or shape[1] != len(op.outputs):
        return None
    return src


def _unpacked_axis(op: Any, edit: Any, g: Any) -> int | None:
    """The axis an UNPACK unpacks whole (one output per index, its input's shape static), or None."""
    from qfix.convert.tflite_edit import shape_of

    if not edit.is_op(op, "UNPACK") or op.builtinOptions is None:
        return None
    shape = shape_of(g, op.inputs[0])
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
