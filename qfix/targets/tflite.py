"""Read a `.tflite` flatbuffer without TensorFlow or LiteRT.

Uses the pure-Python schema bindings of the `tflite` package (PyPI `tflite`, generated from
TFLite's schema.fbs; needs only `flatbuffers` and numpy), so the target checks run on a
core-only install. Only the main subgraph is decoded into ops; other subgraphs are counted
(the Edge TPU maps at most one).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Iterable

import numpy as np

from qfix.targets.argtypes import ACTIVATIONS
from qfix.types import QfixError

# schema TensorType value -> lowercase numpy-ish name (TensorType has no name lookup).
_DTYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
    7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
    13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16",
    19: "int2", 20: "uint4", 21: "float8_e4m3fn",
}
_NUMPY = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64, "int8": np.int8,
    "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
    "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64, "bool": np.bool_,
}
FLOAT_DTYPES = frozenset({"float16", "float32", "float64", "bfloat16", "float8_e4m3fn"})
_ACTIVATIONS = dict(enumerate(ACTIVATIONS))  # schema.fbs ActivationFunctionType value -> name
_PADDING = {0: "SAME", 1: "VALID"}
# Builtin op codes newer than the `tflite` package's enum (2.18): TF 2.21's schema.fbs
# (tensorflow/compiler/mlir/lite/schema/schema.fbs, BuiltinOperator). Others: "BUILTIN_<n>".
_NEWER_OPS = {209: "STABLEHLO_CASE"}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic dimension
    dtype: str
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    is_variable: bool = False
    _data: bytes | None = field(default=None, repr=False)

    @property
    def quantized(self) -> bool:
        return bool(self.scale)

    @property
    def is_const(self) -> bool:
        return self._data is not None and len(self._data) > 0

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)

    def const_value(self) -> np.ndarray | None:
        """The buffer as a numpy array of `shape`, or None for activations/unknown dtypes."""
        if not self.is_const or self.dtype not in _NUMPY:
            return None
        arr = np.frombuffer(self._data, dtype=_NUMPY[self.dtype])
        try:
            return arr.reshape(self.shape)
        except ValueError:  # packed/sparse buffers: give the flat data rather than fail
            return arr


@dataclass
class Op:
    index: int
    name: str  # BuiltinOperator enum name, "CUSTOM" for custom ops
    version: int
    inputs: list[int]  # -1 = optional input left out
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    custom_code: str | None = None


@dataclass
class TfliteModel:
    ops: list[Op]
    tensors: list[Tensor]
    inputs: list[int]
    outputs: list[int]
    min_runtime_version: str | None
    subgraph_count: int
    metadata: dict[str, bytes] = field(default_factory=dict, repr=False)
    # The main subgraph's first SignatureDef: signature name -> tensor index.
    signature_inputs: dict[str, int] = field(default_factory=dict)
    signature_outputs: dict[str, int] = field(default_factory=dict)
    _dialect: dict[frozenset[str], bool] = field(default_factory=dict, repr=False, compare=False)

    def keras3_scopes(self, layer_names: frozenset[str]) -> bool:
        """True when tensor names carry Keras 3 scopes (`conv_1` for layer `conv`)."""
        if layer_names not in self._dialect:
            self._dialect[layer_names] = keras3_scopes((t.name for t in self.tensors), layer_names)
        return self._dialect[layer_names]

    def producer(self, tensor_index: int) -> Op | None:
        for op in self.ops:
            if tensor_index in op.outputs:
                return op
        return None

    def consumers(self, tensor_index: int) -> list[Op]:
        return [op for op in self.ops if tensor_index in op.inputs]

    def input_tensors(self, op: Op) -> list[Tensor | None]:
        return [self.tensors[i] if i >= 0 else None for i in op.inputs]

    def output_tensors(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@cache
def _enum(module: str) -> dict[int, str]:
    """value -> name of a `tflite` schema enum (BuiltinOperator, BuiltinOptions, ...)."""
    cls = getattr(importlib.import_module(f"tflite.{module}"), module)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_")}


@cache
def _fields(cls: type) -> tuple[tuple[str, str], ...]:
    """(accessor, kind) of a generated table class: "scalar", "vector" (has XAsNumpy),
    "tables" (a vector of tables: XLength without XAsNumpy)."""
    names = {n for n in dir(cls) if n[:1].isupper() and not n.startswith(("GetRootAs", "Init"))
             and "BufferHasIdentifier" not in n}
    out = []
    for n in sorted(names):
        if n.endswith(("AsNumpy", "Length", "IsNone")):
            continue
        if f"{n}AsNumpy" in names:
            out.append((n, "vector"))
        elif f"{n}Length" in names:
            out.append((n, "tables"))
        else:
            out.append((n, "scalar"))
    return tuple(out)


def _table(obj: Any) -> dict[str, Any]:
    """Flatten a generated options table into {snake_case: value}, enums as names."""
    out: dict[str, Any] = {}
    for name, kind in _fields(type(obj)):
        key = _snake(name)
        if kind == "vector":
            value = None if getattr(obj, f"{name}IsNone")() else getattr(obj, f"{name}AsNumpy")().tolist()
        elif kind == "tables":
            value = [_table(getattr(obj, name)(j)) for j in range(getattr(obj, f"{name}Length")())]
        else:
            value = getattr(obj, name)()
            if hasattr(value, "Init"):  # nested table (rare): keep it readable
                value = _table(value)
        if key == "fused_activation_function":
            value = _ACTIVATIONS.get(value, str(value))
        elif key == "padding" and isinstance(value, int):
            value = _PADDING.get(value, str(value))
        out[key] = value
    return out


def _options(op: Any, kind: str) -> dict[str, Any]:
    """The op's BuiltinOptions (kind "") or BuiltinOptions2 (kind "2") as a dict."""
    name = _enum(f"BuiltinOptions{kind}").get(getattr(op, f"BuiltinOptions{kind}Type")())
    table = getattr(op, f"BuiltinOptions{kind}")()
    if not name or name == "NONE" or table is None:
        return {}
    cls = getattr(importlib.import_module(f"tflite.{name}"), name)
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return _table(obj)


def _buffer_bytes(buffer: Any, raw: bytes) -> bytes | None:
    # Models over 2 GB keep data outside the flatbuffer: offset/size into the file.
    if buffer.Offset() > 1 and buffer.Size() > 0:
        return raw[buffer.Offset() : buffer.Offset() + buffer.Size()]
    if buffer.DataIsNone() or buffer.DataLength() == 0:
        return None
    return buffer.DataAsNumpy().tobytes()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _ints(obj: Any, field: str) -> list[int]:
    return [] if getattr(obj, f"{field}IsNone")() else [int(x) for x in getattr(obj, f"{field}AsNumpy")()]


def read_tflite(data: bytes) -> TfliteModel:
    """Decode a `.tflite` flatbuffer. Raises QfixError QF909 on anything unreadable."""
    from tflite.Model import Model  # flatbuffers + numpy only

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise QfixError("QF909", "not a TFLite flatbuffer (missing 'TFL3' identifier)")
    try:
        return _convert(Model.GetRootAs(data, 0), data)
    except QfixError:
        raise
    except Exception as exc:  # corrupt offsets surface as struct/index errors
        raise QfixError("QF909", f"corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})") from None


def _convert(model: Any, raw: bytes) -> TfliteModel:
    if model.SubgraphsLength() == 0:
        raise QfixError("QF909", "TFLite model has no subgraph")
    op_names = _enum("BuiltinOperator")
    buffers = [model.Buffers(i) for i in range(model.BuffersLength())]
    graph = model.Subgraphs(0)

    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        q = t.Quantization()
        scale = [] if q is None else [float(x) for x in _ints_or_floats(q, "Scale")]
        zp = [] if q is None else _ints(q, "ZeroPoint")
        shape = tuple(_ints(t, "Shape"))
        sig = tuple(_ints(t, "ShapeSignature")) if not t.ShapeSignatureIsNone() else shape
        data = _buffer_bytes(buffers[t.Buffer()], raw) if 0 < t.Buffer() < len(buffers) else None
        tensors.append(
            Tensor(i, _text(t.Name()), shape, sig, _DTYPES.get(t.Type(), f"type{t.Type()}"),
                   scale, zp, bool(t.IsVariable()), data)
        )

    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    ops = []
    for i in range(graph.OperatorsLength()):
        o = graph.Operators(i)
        oc = codes[o.OpcodeIndex()]
        # deprecated_builtin_code is an int8 and saturates at 127 for newer ops.
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        name = op_names.get(code) or _NEWER_OPS.get(code, f"BUILTIN_{code}")
        options = _options(o, "")
        options.update(_options(o, "2"))
        ops.append(
            Op(i, name, int(oc.Version() or 1), _ints(o, "Inputs"), _ints(o, "Outputs"),
               options, _text(oc.CustomCode()) if name == "CUSTOM" else None)
        )

    metadata = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if 0 <= md.Buffer() < len(buffers):
            metadata[_text(md.Name())] = _buffer_bytes(buffers[md.Buffer()], raw) or b""
    mrv = metadata.get("min_runtime_version")
    sig_in, sig_out = _signature(model)
    return TfliteModel(
        ops=ops,
        tensors=tensors,
        inputs=_ints(graph, "Inputs"),
        outputs=_ints(graph, "Outputs"),
        min_runtime_version=mrv.rstrip(b"\x00").decode("ascii", "replace") if mrv else None,
        subgraph_count=model.SubgraphsLength(),
        metadata=metadata,
        signature_inputs=sig_in,
        signature_outputs=sig_out,
    )


def _signature(model: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Name -> tensor index of the first SignatureDef over subgraph 0 (empty without one)."""
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        if sig.SubgraphIndex() == 0:
            return ({_text(sig.Inputs(j).Name()): int(sig.Inputs(j).TensorIndex()) for j in range(sig.InputsLength())},
                    {_text(sig.Outputs(j).Name()): int(sig.Outputs(j).TensorIndex()) for j in range(sig.OutputsLength())})
    return {}, {}


def _ints_or_floats(obj: Any, field: str) -> list[Any]:
    return [] if getattr(obj, f"{field}IsNone")() else list(getattr(obj, f"{field}AsNumpy")())


# --- mapping TFLite tensor names back to Keras layers -------------------------------------
#
# Keras 3 appends `_N` to every name scope (`functional_1/conv2d_3_1/Relu` is layer
# `conv2d_3`); tf_keras uses the layer names as they are (`model/conv2d_3/Conv2D`). A single
# component cannot tell the two apart (`conv2d_1` is layer `conv2d` in Keras 3, layer
# `conv2d_1` in tf_keras), so the dialect is decided once per model: tf_keras when the model
# scope (`model`, `sequential`) or a component that is exactly a layer name (the first
# `conv2d`, a user-named `head`) has no `_N` suffix, which never happens in Keras 3. With all-suffixed names either
# reading falls back to the other, so only `conv` + `conv_1` in one such model stays ambiguous.

_SCOPE_SUFFIX = re.compile(r"_\d+$")


def _scopes(tensor_name: str) -> list[list[str]]:
    """Scope components of each `;`-joined path, without the trailing TF op name."""
    return [path.split("/")[:-1] for path in tensor_name.split(";") if "/" in path]


def keras3_scopes(tensor_names: Iterable[str], layer_names: Iterable[str]) -> bool:
    names = set(layer_names)
    return not any(
        (i == 0 or c in names) and not _SCOPE_SUFFIX.search(c)
        for name in tensor_names for path in _scopes(name) for i, c in enumerate(path)
    )


# tfmot's quantize_model wraps each layer in a QuantizeWrapperV2 named `quant_<layer>` (its
# default quantized_layer_name_prefix): a QAT model's tensors carry that scope, not the layer's.
QAT_WRAPPER_PREFIX = "quant_"


def _match(component: str, names: set[str], keras3: bool) -> str | None:
    stripped = _SCOPE_SUFFIX.sub("", component)
    order = (stripped, component) if keras3 else (component, stripped)
    found = next((n for n in order if n in names), None)
    if found is None and component.startswith(QAT_WRAPPER_PREFIX):
        return _match(component[len(QAT_WRAPPER_PREFIX):], names, keras3)
    return found


def layer_of(tensor_name: str, layer_names: Iterable[str], keras3: bool | None = None) -> str | None:
    """The Keras layer a TFLite tensor name comes from, or None.

    Names look like `functional_1/conv_1/Relu;functional_1/conv_1/convolution` (Keras 3) or
    `model/conv/Conv2D` (tf_keras). Fused ops join several paths with `;`: the first path that
    names a layer wins. Within a path the innermost matching scope wins, so a layer inside a
    nested model maps to itself rather than to the nested model. `keras3=None` guesses the
    dialect from this name alone; `op_layer` decides it once per model.
    """
    names = set(layer_names)
    if not names or not tensor_name:
        return None
    if keras3 is None:
        keras3 = keras3_scopes([tensor_name], names)
    for path in _scopes(tensor_name):
        hits = [m for c in path if (m := _match(c, names, keras3)) is not None]
        if hits:
            return hits[-1]
    return None


def op_layer(model: TfliteModel, op: Op, layer_names: Iterable[str], own_only: bool = False) -> str | None:
    """An op's layer: that of its first output tensor, else of its constant inputs (weights are
    named after the layer that owns them), else of its other inputs in order.

    A converter-inserted DEQUANTIZE (output `tfl.dequantize`) exists for the float op that
    reads it, so it takes that op's layer before falling back to its input's. Weights come
    before activation inputs because an activation input is named after the layer that made
    it: a head conv writing `StatefulPartitionedCall:1` reads the trunk's output.
    `own_only` stops before the activation inputs (None when the op's own names say nothing).
    """
    names = frozenset(layer_names)
    keras3 = model.keras3_scopes(names)
    candidates = op.outputs[:1]
    if op.name == "DEQUANTIZE":
        candidates += [c.outputs[0] for o in op.outputs for c in model.consumers(o) if c.outputs]
    ins = [i for i in op.inputs if i >= 0]
    consts = [i for i in ins if model.tensors[i].is_const]
    for idx in candidates + consts + ([] if own_only else [i for i in ins if i not in consts]):
        layer = layer_of(model.tensors[idx].name, names, keras3)
        if layer is not None:
            return layer
    return None
