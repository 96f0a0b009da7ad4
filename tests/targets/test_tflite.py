"""The TF-free .tflite reader and the tensor-name -> Keras layer mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qfix.targets.tflite import layer_of, op_layer, read_tflite
from qfix.types import QfixError

from tflite_models import build_tflite, conv_chain


# ---- fast: hand-built flatbuffers --------------------------------------------------------


def test_reads_ops_tensors_and_metadata():
    m = read_tflite(conv_chain("LEAKY_RELU", dilation=(2, 1)))
    assert [op.name for op in m.ops] == ["QUANTIZE", "CONV_2D", "LEAKY_RELU", "QUANTIZE"]
    assert m.inputs == [0] and m.outputs == [len(m.tensors) - 1]
    assert m.min_runtime_version == "1.14.0" and m.subgraph_count == 1
    conv = m.ops[1]
    assert conv.inputs == [1, 2, 3] and conv.outputs == [4]
    assert conv.options["dilation_h_factor"] == 2 and conv.options["dilation_w_factor"] == 1
    assert conv.options["fused_activation_function"] == "RELU"
    assert conv.options["padding"] == "SAME"


def test_tensor_fields():
    m = read_tflite(conv_chain(signature_batch=-1))
    inp, weights, bias = m.tensors[0], m.tensors[2], m.tensors[3]
    assert inp.dtype == "uint8" and inp.quantized and inp.zero_point == [128]
    assert inp.shape == (1, 4, 4, 3) and inp.shape_signature == (-1, 4, 4, 3) and inp.is_dynamic
    assert not inp.is_const and inp.const_value() is None
    assert weights.is_const and weights.const_value().shape == (4, 3, 3, 3)
    assert bias.dtype == "int32" and not bias.quantized
    np.testing.assert_array_equal(bias.const_value(), np.zeros(4, np.int32))


def test_builtin_code_above_127_uses_builtin_code():
    # BATCH_MATMUL is 126, HARD_SWISH 117; codes >= 127 saturate deprecated_builtin_code.
    tensors = [{"name": f"t{i}", "shape": (1, 4), "dtype": "int8"} for i in range(3)]
    data = build_tflite(tensors, [{"op": "GELU", "in": [0], "out": [1]}, {"op": "HARD_SWISH", "in": [1], "out": [2]}],
                        [0], [2])
    assert [op.name for op in read_tflite(data).ops] == ["GELU", "HARD_SWISH"]


def test_custom_op_code():
    op = read_tflite(conv_chain(custom_codes={1: "edgetpu-custom-op"})).ops[1]
    assert op.name == "CUSTOM" and op.custom_code == "edgetpu-custom-op"


@pytest.mark.parametrize("data", [b"", b"not a model at all", conv_chain()[:200], b"\0\0\0\0TFL3" + b"\xff" * 64])
def test_corrupt_buffer_is_qf909(data):
    with pytest.raises(QfixError) as err:
        read_tflite(data)
    assert err.value.code == "QF909" and "\n" not in str(err.value)


def test_reader_does_not_import_tensorflow_or_litert():
    code = (
        "import sys; from qfix.targets.tflite import read_tflite; import qfix.targets.check, qfix.targets.compilers.edgetpu;"
        "sys.path.insert(0, 'tests/targets'); from tflite_models import conv_chain;"
        "from qfix.targets import load_profile; from qfix.targets.check import check;"
        "check(read_tflite(conv_chain('LEAKY_RELU')), load_profile('edgetpu'), ['conv']);"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'ai_edge_litert')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# ---- fast: layer_of on names taken from real conversions (TF 2.21) -------------------------

KERAS3_FRIENDLY = ["image", "stem_conv", "dw", "relu6", "gap", "head", "probs"]
KERAS3_NAMES = {
    "functional_1/stem_conv_1/Relu;functional_1/stem_conv_1/convolution": "stem_conv",
    "functional_1/relu6_1/Relu6;functional_1/dw_1/depthwise": "relu6",
    "functional_1/gap_1/Mean": "gap",
    "functional_1/gap_1/Mean/reduction_indices": "gap",
    "functional_1/head_1/MatMul2": "head",
    "functional_1_1/stem_conv_1/Relu;functional_1_1/stem_conv_1/convolution": "stem_conv",
    "functional_2_1/hswish_1/mul;functional_2_1/hswish_1/Const;functional_2_1/hswish_1/Relu6": None,
    "tfl.quantize": None,
    "StatefulPartitionedCall_1:0": None,
    "serving_default_keras_tensor:0": None,
}
TF_KERAS_NAMES = {
    "model/stem_conv/Relu;model/stem_conv/Conv2D": "stem_conv",
    "model/relu6/Relu6;model/dw/depthwise": "relu6",
    "model/gap/Mean": "gap",
    "model/head/MatMul2": "head",
    "StatefulPartitionedCall:0": None,
}
# A nested model (`backbone` inside the outer model) with Keras' default layer names.
NESTED_LAYERS = ["backbone", "conv2d", "bn", "act", "conv2d_3", "gap", "dense"]
NESTED_KERAS3 = {
    "functional_1/backbone_1/act_1/Relu;functional_1/backbone_1/conv2d_1/convolution": "act",
    "functional_1/backbone_1/conv2d_3_1/convolution1": "conv2d_3",
    "functional_1/backbone_1/conv2d_1/convolution": "conv2d",
    "functional_1/dense_1/MatMul1": "dense",
}
NESTED_TF_KERAS = {
    "model/backbone/act/Relu;model/backbone/conv2d/Conv2D": "act",
    "model/backbone/conv2d_3/Conv2D1": "conv2d_3",
    "model/backbone/conv2d/Conv2D": "conv2d",
    "model/dense/MatMul1": "dense",
}


@pytest.mark.parametrize("name,layer", list(KERAS3_NAMES.items()) + list(TF_KERAS_NAMES.items()))
def test_layer_of_real_names(name, layer):
    assert layer_of(name, KERAS3_FRIENDLY) == layer


def test_layer_of_fused_hard_swish_keras3():
    name = "functional_2_1/hswish_1/mul;functional_2_1/hswish_1/Const;functional_2_1/hswish_1/Relu6"
    assert layer_of(name, ["image", "stem_conv", "hswish", "gap", "head"]) == "hswish"


@pytest.mark.parametrize("names", [NESTED_KERAS3, NESTED_TF_KERAS])
def test_layer_of_nested_models_picks_innermost_layer(names):
    for tensor_name, layer in names.items():
        assert layer_of(tensor_name, NESTED_LAYERS) == layer, tensor_name


def test_layer_of_keras3_suffix_vs_tf_keras_exact_name():
    # Keras 3 scope `conv2d_1` is layer `conv2d`; in tf_keras `conv2d_1` is that layer itself.
    assert layer_of("functional_1/conv2d_1/convolution", ["conv2d", "conv2d_1"]) == "conv2d"
    assert layer_of("model/conv2d_1/Conv2D", ["conv2d", "conv2d_1"]) == "conv2d_1"
    assert layer_of("functional_1_1/conv2d_3_1/Relu", ["conv2d", "conv2d_3"]) == "conv2d_3"
    # component matching only: `conv` must not match inside `conv_block`
    assert layer_of("model/conv_block/Relu", ["conv"]) is None
    assert layer_of("anything", []) is None


# ---- TF: real conversions --------------------------------------------------------------------


@pytest.mark.tf
def test_real_friendly_model(tflite_models):
    data, names = tflite_models["friendly"]
    m = read_tflite(data)
    assert [op.name for op in m.ops] == [
        "QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"]
    assert m.min_runtime_version == "1.14.0"
    assert m.tensors[m.inputs[0]].dtype == "uint8" and m.tensors[m.outputs[0]].dtype == "uint8"
    mean = m.ops[3]
    assert m.tensors[mean.inputs[1]].const_value().tolist() == [1, 2]
    assert mean.options["keep_dims"] is False
    assert m.ops[2].options["fused_activation_function"] == "RELU6"
    conv = m.ops[1]
    assert m.tensors[conv.inputs[1]].is_const and m.tensors[conv.inputs[2]].dtype == "int32"
    layers = [op_layer(m, op, names) for op in m.ops]
    assert layers[1:5] == ["stem_conv", "relu6", "gap", "head"]


@pytest.mark.tf
@pytest.mark.parametrize("key", ["friendly", "friendly_tf_keras", "cumsum", "strided_slice", "five_d"])
def test_op_list_matches_litert_interpreter(tflite_models, key):
    """The reader's op list equals what the LiteRT interpreter (without delegates) sees."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    data, _ = tflite_models[key]
    interp = Interpreter(model_content=data,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    theirs = [d["op_name"] for d in interp._get_ops_details()]
    assert [op.name for op in read_tflite(data).ops] == theirs


@pytest.mark.tf
def test_tf_keras_layer_mapping(tflite_models):
    data, names = tflite_models["friendly_tf_keras"]
    m = read_tflite(data)
    assert not m.keras3_scopes(frozenset(names))
    assert [op_layer(m, op, names) for op in m.ops][1:5] == ["stem_conv", "relu6", "gap", "head"]


@pytest.mark.tf
def test_dynamic_batch_signature_and_strided_slice_options(tflite_models):
    m = read_tflite(tflite_models["dynamic_batch"][0])
    assert m.tensors[m.inputs[0]].shape_signature[0] == -1
    m = read_tflite(tflite_models["strided_slice"][0])
    ss = next(op for op in m.ops if op.name == "STRIDED_SLICE")
    assert m.tensors[ss.inputs[3]].const_value().tolist() == [1, 2, 2, 1]
    assert ss.options["ellipsis_mask"] == 0 and ss.options["new_axis_mask"] == 0


@pytest.mark.tf
def test_float_island_dtypes(tflite_models):
    m = read_tflite(tflite_models["cumsum"][0])
    dtypes = {op.name: m.tensors[op.outputs[0]].dtype for op in m.ops}
    assert dtypes["DEQUANTIZE"] == "float32" and dtypes["CUMSUM"] == "float32"
    assert m.min_runtime_version == "2.4.0"


def _litert_view(data: bytes) -> dict:
    """What the LiteRT schema bindings (the reader's former backend) decode from `data`."""
    import re

    from ai_edge_litert import schema_py_generated as s

    def flat(obj):
        if obj is None:
            return {}
        out = {}
        for key, value in vars(obj).items():
            key = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif hasattr(value, "__dict__"):
                value = flat(value)
            out[key] = value
        return out

    m = s.ModelT.InitFromPackedBuf(data, 0)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    g = m.subgraphs[0]
    ops = []
    for o in g.operators:
        oc = m.operatorCodes[o.opcodeIndex]
        opts = flat(o.builtinOptions)
        opts.update(flat(o.builtinOptions2))
        ops.append((names[max(oc.builtinCode, oc.deprecatedBuiltinCode)], oc.version, list(o.inputs),
                    list(o.outputs), opts))
    tensors = [(t.name.decode(), t.type, tuple(t.shape), tuple(t.shapeSignature) if t.shapeSignature is not None
                else tuple(t.shape), [float(x) for x in (t.quantization.scale if t.quantization and t.quantization.scale is not None else [])],
                [int(x) for x in (t.quantization.zeroPoint if t.quantization and t.quantization.zeroPoint is not None else [])])
               for t in g.tensors]
    return {"ops": ops, "tensors": tensors, "inputs": list(g.inputs), "outputs": list(g.outputs),
            "subgraphs": len(m.subgraphs)}


@pytest.mark.tf
@pytest.mark.parametrize("key", ["friendly", "friendly_tf_keras", "friendly_float_io", "cumsum", "strided_slice",
                                 "five_d", "dynamic_batch"])
def test_reader_agrees_with_litert_schema(tflite_models, key):
    """The pure-Python `tflite` bindings give the same ops (names, versions, tensors,
    options), tensors (names, dtypes, shapes, quantization) and I/O as LiteRT's schema."""
    from qfix.targets.tflite import _ACTIVATIONS, _DTYPES, _PADDING

    data, _ = tflite_models[key]
    ours, theirs = read_tflite(data), _litert_view(data)
    fused = {"fused_activation_function", "padding"}  # ours spell these enums by name
    assert [(op.name, op.version, op.inputs, op.outputs) for op in ours.ops] == [t[:4] for t in theirs["ops"]]
    for op, (_, _, _, _, opts) in zip(ours.ops, theirs["ops"]):
        assert set(op.options) <= set(opts), op.name
        assert {k: v for k, v in op.options.items() if k not in fused} == {
            k: v for k, v in opts.items() if k in op.options and k not in fused}, op.name
        for key, names in (("fused_activation_function", _ACTIVATIONS), ("padding", _PADDING)):
            if key in opts:
                assert op.options[key] == names[opts[key]], op.name
        # fields newer than the tflite 2.18 schema (FullyConnectedOptions.quant_spec) are unset
        assert all(opts[k] in (None, [], 0, False) for k in set(opts) - set(op.options)), op.name
    assert [(t.name, t.dtype, t.shape, t.shape_signature, t.scale, t.zero_point) for t in ours.tensors] == [
        (n, _DTYPES[ty], sh, sig, sc, zp) for n, ty, sh, sig, sc, zp in theirs["tensors"]]
    assert (ours.inputs, ours.outputs, ours.subgraph_count) == (theirs["inputs"], theirs["outputs"], theirs["subgraphs"])
