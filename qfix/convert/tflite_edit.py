"""One converted .tflite opened for editing its operators: what qfix's exact op swaps share.

The swaps (qfix.convert.unstack, equal_split, unbatched_pack) each replace ops a target lacks by
ops it runs, after conversion. Each opens the file only when it holds the op to replace (turning
a big model's flatbuffer into objects costs seconds), finds or adds an operator code, adds int32
constant tensors, and packs the file again with the TFLite identifier "TFL3".

Uses TF's flatbuffer object API (tensorflow.lite.python.schema_py_generated, TFLite's
schema.fbs), so it runs in the worker child.
"""

from __future__ import annotations

from typing import Any


class TfliteEdit:
    """A .tflite as TF's mutable object tree (`model`: a schema ModelT), with its operator codes
    by index (`codes`: builtin codes, the larger of builtin_code and deprecated_builtin_code as
    TFLite's schema reads them) and the schema module (`S`)."""

    def __init__(self, tflite: bytes, S: Any) -> None:
        self.S = S
        self.model = S.ModelT.InitFromObj(S.Model.GetRootAsModel(tflite, 0))
        self.codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in self.model.operatorCodes]
        self.size = len(tflite)

    @classmethod
    def if_uses(cls, tflite: bytes, op_name: str) -> TfliteEdit | None:
        """The file opened for editing if an operator code of its is `op_name` (a BuiltinOperator
        name, e.g. "UNPACK"), else None without unpacking it."""
        from tensorflow.lite.python import schema_py_generated as S

        root = S.Model.GetRootAsModel(tflite, 0)
        op = getattr(S.BuiltinOperator, op_name)
        if not any(max(root.OperatorCodes(i).BuiltinCode(), root.OperatorCodes(i).DeprecatedBuiltinCode()) == op
                   for i in range(root.OperatorCodesLength())):
            return None
        return cls(tflite, S)

    def is_op(self, op: Any, op_name: str) -> bool:
        """Whether operator `op` (an OperatorT) is the builtin `op_name`."""
        return self.codes[op.opcodeIndex] == getattr(self.S.BuiltinOperator, op_name)

    def opcode(self, op_name: str, version: int) -> int:
        """The index of the operator code of builtin `op_name`, at `version` at least (a .tflite
        stores one code, so one version, per op type); added when the file has none."""
        op = getattr(self.S.BuiltinOperator, op_name)
        if op in self.codes:
            i = self.codes.index(op)
            self.model.operatorCodes[i].version = max(self.model.operatorCodes[i].version, version)
            return i
        c = self.S.OperatorCodeT()
        # deprecated_builtin_code holds codes up to 127 (PLACEHOLDER_FOR_GREATER_OP_CODES above).
        c.builtinCode, c.deprecatedBuiltinCode, c.version = op, min(op, 127), version
        self.model.operatorCodes.append(c)
        self.codes.append(op)
        return len(self.codes) - 1

    def int32_tensor(self, g: Any, values: list[int], name: str) -> int:
        """A new constant int32 tensor of shape [len(values)] in subgraph `g`, its index; `name`
        gets the new index appended, so names stay unique."""
        import numpy as np

        buf = self.S.BufferT()
        buf.data = np.asarray(values, np.int32).tobytes()
        self.model.buffers.append(buf)
        t = self.S.TensorT()
        t.shape, t.type, t.buffer = [len(values)], self.S.TensorType.INT32, len(self.model.buffers) - 1
        t.name = f"{name}_{len(g.tensors)}".encode()
        g.tensors.append(t)
        return len(g.tensors) - 1

    def constant(self, g: Any, index: int) -> Any:
        """The values of tensor `index` of `g` as a 1-D numpy array when it is a constant int32 or
        int64 tensor, else None."""
        import numpy as np

        t = g.tensors[index]
        data = self.model.buffers[t.buffer].data if t.buffer < len(self.model.buffers) else None
        types = self.S.TensorType
        if data is None or len(data) == 0 or t.type not in (types.INT32, types.INT64):
            return None
        return np.frombuffer(bytes(bytearray(data)), np.int32 if t.type == types.INT32 else np.int64)

    def to_bytes(self) -> bytes:
        """The edited file, packed again with the TFLite file identifier."""
        import flatbuffers

        builder = flatbuffers.Builder(self.size + 1024)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def shape_of(g: Any, index: int) -> list[int]:
    """The static shape of tensor `index` of subgraph `g` ([] when the file records none)."""
    shape = g.tensors[index].shape
    return [int(d) for d in (shape if shape is not None else [])]
