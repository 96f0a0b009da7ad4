"""Tiny real Keras models converted to full-int8 TFLite for the target-check tests.

Helpers for tests/targets (the `tflite_models` fixture in conftest.py builds on them; nothing
here converts unless a `tf`-marked test asks for it).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

SHAPE = (8, 8, 3)


def _keras3_models() -> dict[str, Callable]:
    import keras
    from keras import layers as L

    def inp(batch=1, shape=SHAPE):
        return keras.Input(shape, batch_size=batch, name="image")

    def friendly(batch=1):
        x = inp(batch)
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
        y = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
        y = L.ReLU(6.0, name="relu6")(y)
        y = L.GlobalAveragePooling2D(name="gap")(y)
        y = L.Dense(4, name="head")(y)
        y = L.Softmax(name="probs")(y)
        return keras.Model(x, y)

    def head(x):
        y = L.GlobalAveragePooling2D(name="gap")(x)
        return L.Dense(4, name="head")(y)

    def hard_swish():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", name="stem_conv")(x)
        y = L.Activation("hard_swish", name="hswish")(y)
        return keras.Model(x, head(y))

    def leaky_relu():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", name="stem_conv")(x)
        y = L.LeakyReLU(0.1, name="leaky")(y)
        return keras.Model(x, head(y))

    def cumsum():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
        y = L.Lambda(lambda t: keras.ops.cumsum(t, axis=1), name="running_sum")(y)
        return keras.Model(x, head(y))

    def five_d():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
        y = L.Reshape((2, 4, 8, 8), name="to_5d")(y)  # two dims > 1 outside the 3 innermost
        y = L.Lambda(lambda t: keras.ops.max(t, axis=1), name="pool_5d")(y)
        return keras.Model(x, head(y))

    def strided_slice():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
        y = L.Lambda(lambda t: t[:, ::2, ::2, :], name="subsample")(y)
        return keras.Model(x, head(y))

    return {
        "friendly": friendly,
        "dynamic_batch": lambda: friendly(batch=None),
        "hard_swish": hard_swish,
        "leaky_relu": leaky_relu,
        "cumsum": cumsum,
        "five_d": five_d,
        "strided_slice": strided_slice,
    }


def _tf_keras_friendly():
    import tf_keras
    from tf_keras import layers as L

    x = tf_keras.Input(SHAPE, batch_size=1, name="image")
    y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = L.ReLU(6.0, name="relu6")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dense(4, name="head")(y)
    y = L.Softmax(name="probs")(y)
    return tf_keras.Model(x, y)


# name -> (builder, io dtype)
def _builders() -> dict[str, tuple[Callable, str | None]]:
    k3 = _keras3_models()
    out = {name: (build, "uint8") for name, build in k3.items()}
    out["friendly_float_io"] = (k3["friendly"], None)
    out["friendly_int8_io"] = (k3["friendly"], "int8")
    out["friendly_tf_keras"] = (_tf_keras_friendly, "uint8")
    return out


# ---- hand-built flatbuffers (no TensorFlow) for the fast tests -----------------------------


def build_tflite(tensors: list[dict], ops: list[dict], inputs: list[int], outputs: list[int],
                 subgraphs: int = 1, min_runtime: str | None = "1.14.0",
                 custom_codes: dict[int, str] | None = None,
                 signature_outputs: dict[str, int] | None = None) -> bytes:
    """A minimal .tflite written with the `tflite` package's flatbuffer builders (no LiteRT).

    tensors: {"name", "shape", "dtype" ("int8"/"uint8"/"int16"/"float32"/"int32"), optional
    "data" (numpy array for constants), "signature", "quant" (default True for 8/16-bit
    integers; "scale" and "zero_point" default to 0.05 and 0, 128 for uint8), "variable" (a
    state tensor)}.
    ops: {"op": builtin name, "in": [...], "out": [...], "version", "options": (class name,
    {field: value}) with schema field names in camelCase (strideH, fusedActivationFunction)}.
    custom_codes: op index -> custom code; that op becomes CUSTOM.
    signature_outputs: output name -> tensor index of a `serving_default` SignatureDef.
    """
    import importlib

    import flatbuffers
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.BuiltinOptions import BuiltinOptions

    codes = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int8": 9, "int16": 7}
    b = flatbuffers.Builder(1024)

    def vector(start, values, kind="Int32"):
        start(b, len(values))
        for v in reversed(values):
            getattr(b, f"Prepend{kind}")(v)
        return b.EndVector()

    def table(name, fields):  # tflite.<name>: <name>Start, <name>Add<Field>, <name>End
        mod = importlib.import_module(f"tflite.{name}")
        getattr(mod, f"{name}Start")(b)
        for key, value in fields.items():
            getattr(mod, f"{name}Add{key[0].upper()}{key[1:]}")(b, value)
        return getattr(mod, f"{name}End")(b)

    def buffer(data: bytes | None):
        if data is None:
            return table("Buffer", {})
        return table("Buffer", {"data": vector(tflite.BufferStartDataVector, list(data), "Uint8")})

    buffers = [buffer(None)]
    tensor_offsets = []
    for spec in tensors:
        fields = {"name": b.CreateString(spec["name"]),
                  "shape": vector(tflite.TensorStartShapeVector, list(spec["shape"])),
                  "shapeSignature": vector(tflite.TensorStartShapeSignatureVector,
                                           list(spec.get("signature", spec["shape"]))),
                  "type": codes[spec["dtype"]], "buffer": 0}
        if spec.get("data") is not None:
            buffers.append(buffer(np.asarray(spec["data"]).tobytes()))
            fields["buffer"] = len(buffers) - 1
        if spec.get("variable"):
            fields["isVariable"] = True
        if spec.get("quant", spec["dtype"] in ("int8", "uint8", "int16")):
            scale = vector(tflite.QuantizationParametersStartScaleVector, [spec.get("scale", 0.05)], "Float32")
            zp = vector(tflite.QuantizationParametersStartZeroPointVector,
                        [spec.get("zero_point", 128 if spec["dtype"] == "uint8" else 0)], "Int64")
            fields["quantization"] = table("QuantizationParameters", {"scale": scale, "zeroPoint": zp})
        tensor_offsets.append(table("Tensor", fields))
    op_codes, op_offsets = [], []
    for i, spec in enumerate(ops):
        code = getattr(BuiltinOperator, spec["op"])
        oc = {"builtinCode": code, "deprecatedBuiltinCode": min(code, 127), "version": spec.get("version", 1)}
        if custom_codes and i in custom_codes:
            oc.update(builtinCode=BuiltinOperator.CUSTOM, deprecatedBuiltinCode=BuiltinOperator.CUSTOM,
                      customCode=b.CreateString(custom_codes[i]))
        op_codes.append(table("OperatorCode", oc))
        fields = {"opcodeIndex": i, "inputs": vector(tflite.OperatorStartInputsVector, list(spec["in"])),
                  "outputs": vector(tflite.OperatorStartOutputsVector, list(spec["out"]))}
        if "options" in spec:
            cls_name, attrs = spec["options"]
            fields["builtinOptions"] = table(cls_name, attrs)
            fields["builtinOptionsType"] = getattr(BuiltinOptions, cls_name)
        op_offsets.append(fields)
    op_offsets = [table("Operator", f) for f in op_offsets]

    def offsets(start, items):
        start(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    graphs = [table("SubGraph", {
        "tensors": offsets(tflite.SubGraphStartTensorsVector, tensor_offsets),
        "inputs": vector(tflite.SubGraphStartInputsVector, list(inputs)),
        "outputs": vector(tflite.SubGraphStartOutputsVector, list(outputs)),
        "operators": offsets(tflite.SubGraphStartOperatorsVector, op_offsets)})]
    graphs += [table("SubGraph", {}) for _ in range(subgraphs - 1)]
    model = {"version": 3}
    if min_runtime is not None:
        buffers.append(buffer(min_runtime.encode().ljust(16, b"\0")))
        md = table("Metadata", {"name": b.CreateString("min_runtime_version"), "buffer": len(buffers) - 1})
        model["metadata"] = offsets(tflite.ModelStartMetadataVector, [md])
    if signature_outputs is not None:
        maps = [table("TensorMap", {"name": b.CreateString(k), "tensorIndex": v}) for k, v in signature_outputs.items()]
        sig = table("SignatureDef", {"outputs": offsets(tflite.SignatureDefStartOutputsVector, maps),
                                     "signatureKey": b.CreateString("serving_default"), "subgraphIndex": 0})
        model["signatureDefs"] = offsets(tflite.ModelStartSignatureDefsVector, [sig])
    model["operatorCodes"] = offsets(tflite.ModelStartOperatorCodesVector, op_codes)
    model["subgraphs"] = offsets(tflite.ModelStartSubgraphsVector, graphs)
    model["buffers"] = offsets(tflite.ModelStartBuffersVector, buffers)
    b.Finish(table("Model", model), file_identifier=b"TFL3")
    return bytes(b.Output())


def conv_chain(act_op: str | None = None, *, conv_version: int = 3, dilation=(1, 1),
               batch: int = 1, signature_batch: int | None = None, act_dtype: str = "int8",
               custom_codes: dict[int, str] | None = None) -> bytes:
    """uint8 in -> QUANTIZE -> CONV_2D -> [act_op] -> QUANTIZE -> uint8 out (tf_keras-style names)."""
    sb = batch if signature_batch is None else signature_batch
    shp = lambda c: (batch, 4, 4, c)  # noqa: E731
    sig = lambda c: (sb, 4, 4, c)  # noqa: E731
    tensors = [
        {"name": "serving_default_input_1:0", "shape": shp(3), "signature": sig(3), "dtype": "uint8"},
        {"name": "tfl.quantize", "shape": shp(3), "signature": sig(3), "dtype": "int8"},
        {"name": "model/conv/Conv2D", "shape": (4, 3, 3, 3), "dtype": "int8", "data": np.ones((4, 3, 3, 3), np.int8)},
        {"name": "model/conv/BiasAdd/ReadVariableOp", "shape": (4,), "dtype": "int32", "data": np.zeros(4, np.int32), "quant": False},
        {"name": "model/conv/Relu;model/conv/Conv2D", "shape": shp(4), "signature": sig(4), "dtype": "int8"},
    ]
    conv_opts = ("Conv2DOptions", {"strideH": 1, "strideW": 1, "dilationHFactor": dilation[0],
                                   "dilationWFactor": dilation[1], "fusedActivationFunction": 1})
    ops = [
        {"op": "QUANTIZE", "in": [0], "out": [1]},
        {"op": "CONV_2D", "in": [1, 2, 3], "out": [4], "version": conv_version, "options": conv_opts},
    ]
    last = 4
    if act_op is not None:
        tensors.append({"name": f"model/act/{act_op.title()}", "shape": shp(4), "signature": sig(4), "dtype": act_dtype})
        ops.append({"op": act_op, "in": [last], "out": [len(tensors) - 1]})
        last = len(tensors) - 1
    tensors.append({"name": "StatefulPartitionedCall:0", "shape": shp(4), "signature": sig(4), "dtype": "uint8"})
    ops.append({"op": "QUANTIZE", "in": [last], "out": [len(tensors) - 1]})
    return build_tflite(tensors, ops, [0], [len(tensors) - 1], custom_codes=custom_codes)


def xnnpack_delegated(data: bytes) -> set[int]:
    """Indices of the ops the real LiteRT interpreter hands to XNNPACK.

    After allocate_tensors(), `_get_ops_details()` lists the original nodes plus one DELEGATE
    node per partition; an original node is delegated when it lies on a path from a DELEGATE
    node's inputs to its outputs (shared/research/targets.md section 5).
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    details = interp._get_ops_details()
    nodes = [d for d in details if d["op_name"] != "DELEGATE"]
    delegated: set[int] = set()
    for part in (d for d in details if d["op_name"] == "DELEGATE"):
        reached, inside = set(part["inputs"]), []
        for n in nodes:
            if any(i in reached for i in n["inputs"]):
                inside.append(n)
                reached |= set(n["outputs"])
        needed = set(part["outputs"])
        for n in reversed(inside):
            if set(n["outputs"]) & needed:
                delegated.add(n["index"])
                needed |= set(n["inputs"])
    return delegated
