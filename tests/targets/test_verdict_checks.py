"""Issue 9, flatbuffer level (no TensorFlow): op versions the Edge TPU compiler cannot parse fail
the whole model and blame the op whose own settings need the version (fault 2); integer
tensors are never called float (fault 3); ops writing model outputs are charged to the output's
layer (fault 4); resize size limits are blockers (fault 5). Hand-built .tflite files, judged by
the shipped profiles."""

from __future__ import annotations

import numpy as np
import pytest

from qfix.rules.float_island import FloatIsland
from qfix.rules.target_op_unsupported import TargetOpUnsupported
from qfix.targets import load_profile
from qfix.targets.check import check
from qfix.targets.op_version import own_version
from qfix.targets.tflite import read_tflite
from tflite_models import build_tflite

EDGETPU = load_profile("edgetpu")
INT8 = load_profile("int8")


def _act(name, shape, dtype="int8", **kw):
    return {"name": name, "shape": shape, "dtype": dtype, **kw}


def _const(name, data, dtype="int8"):
    return {"name": name, "shape": data.shape, "dtype": dtype, "data": data.astype(dtype), "quant": dtype != "int32"}


def _conv_opts(act=0, dil=(1, 1)):
    return ("Conv2DOptions", {"strideH": 1, "strideW": 1, "dilationHFactor": dil[0], "dilationWFactor": dil[1],
                              "fusedActivationFunction": act})


def grouped_conv_model(version: int = 6) -> bytes:
    """uint8 -> QUANTIZE -> stem CONV_2D (3 -> 4) -> grouped CONV_2D (4 -> 8, groups=2) -> QUANTIZE.
    Both convs carry the file's one CONV_2D version, as the converter writes it."""
    tensors = [
        _act("serving_default_image:0", (1, 6, 6, 3), "uint8"),
        _act("tfl.quantize", (1, 6, 6, 3)),
        _const("functional_1/stem_1/convolution", np.ones((4, 1, 1, 3))),
        _const("arith.constant", np.zeros(4), "int32"),
        _act("functional_1/stem_1/convolution1", (1, 6, 6, 4)),
        _const("functional_1/grouped_1/convolution", np.ones((8, 1, 1, 2))),  # in-channels 2 != 4
        _const("arith.constant1", np.zeros(8), "int32"),
        _act("StatefulPartitionedCall:01", (1, 6, 6, 8)),
        _act("StatefulPartitionedCall:0", (1, 6, 6, 8), "uint8"),
    ]
    ops = [
        {"op": "QUANTIZE", "in": [0], "out": [1]},
        {"op": "CONV_2D", "in": [1, 2, 3], "out": [4], "version": version, "options": _conv_opts()},
        {"op": "CONV_2D", "in": [4, 5, 6], "out": [7], "version": version, "options": _conv_opts()},
        {"op": "QUANTIZE", "in": [7], "out": [8]},
    ]
    return build_tflite(tensors, ops, [0], [8], signature_outputs={"grouped": 8})


def tconv_model(act: int) -> bytes:
    """QUANTIZE -> TRANSPOSE_CONV with a bias and a fused activation (RELU=1, RELU6=3) -> QUANTIZE."""
    version = 4 if act else 3
    tensors = [
        _act("serving_default_x:0", (1, 4, 4, 8), "uint8"),
        _act("tfl.quantize", (1, 4, 4, 8)),
        _const("arith.constant", np.array([1, 8, 8, 4])[None][0], "int32"),
        _const("functional_1/up_1/conv_transpose", np.ones((4, 2, 2, 8))),
        _act("StatefulPartitionedCall:01", (1, 8, 8, 4)),
        _const("arith.constant1", np.ones(4), "int32"),
        _act("StatefulPartitionedCall:0", (1, 8, 8, 4), "uint8"),
    ]
    ops = [
        {"op": "QUANTIZE", "in": [0], "out": [1]},
        {"op": "TRANSPOSE_CONV", "in": [2, 3, 1, 5], "out": [4], "version": version,
         "options": ("TransposeConvOptions", {"strideH": 2, "strideW": 2, "fusedActivationFunction": act})},
        {"op": "QUANTIZE", "in": [4], "out": [6]},
    ]
    return build_tflite(tensors, ops, [0], [6], signature_outputs={"up": 6})


LAYERS = ["image", "stem", "grouped", "x", "up", "trunk", "head_a", "head_b", "lstm", "dense"]


# ---- fault 2: op versions --------------------------------------------------------------------


def test_grouped_conv_version_fails_the_whole_model_and_blames_the_grouped_layer():
    pl = check(read_tflite(grouped_conv_model()), EDGETPU, LAYERS)
    assert pl.ops_on_target == 0 and not pl.fully_on_target
    assert pl.model_failure and "Model could not be parsed" in pl.model_failure
    first = pl.first_unsupported
    assert (first["op"], first["index"], first["layer"]) == ("CONV_2D", 2, "grouped")
    assert "needs v6" in first["reason"] and "groups=2" in first["reason"]
    assert "QF306" in first["fix_hint"] and "experimental_new_converter" not in first["fix_hint"]
    assert all(o.status == "Model could not be parsed" for o in pl.ops if o.index != 1)
    stem = pl.ops[1]
    assert stem.layer == "stem" and "op 2 (layer 'grouped') raises every CONV_2D to v6" in stem.reason
    [finding] = TargetOpUnsupported().check(pl, EDGETPU)
    assert finding.location.layer == "grouped" and "QF306" in finding.message
    assert "cut here" not in finding.message


def test_version_failure_is_per_profile():
    """int8 CPU has no version ceiling: the same file is judged op by op."""
    pl = check(read_tflite(grouped_conv_model()), INT8, LAYERS)
    assert pl.model_failure is None and pl.fully_on_target


@pytest.mark.parametrize("act, words", [(1, "fused activation"), (3, "fused activation")])
def test_transposed_conv_with_fused_activation_blames_the_activation(act, words):
    pl = check(read_tflite(tconv_model(act)), EDGETPU, LAYERS)
    assert pl.ops_on_target == 0 and pl.model_failure
    first = pl.first_unsupported
    assert first["layer"] == "up" and words in first["reason"] and "QF307" in first["fix_hint"]


def test_transposed_conv_without_activation_maps():
    pl = check(read_tflite(tconv_model(0)), EDGETPU, LAYERS)
    assert pl.model_failure is None and pl.fully_on_target


def test_own_version_follows_op_version_cc():
    m = read_tflite(grouped_conv_model())
    assert own_version(m, m.ops[1]).version == 3  # plain int8 conv
    assert own_version(m, m.ops[2]).version == 6  # grouped
    t = read_tflite(tconv_model(3))
    assert own_version(t, t.ops[1]).version == 4
    t = read_tflite(tconv_model(0))
    assert own_version(t, t.ops[1]).version == 3  # bias input
    assert own_version(t, t.ops[0]).version == 1  # QUANTIZE to int8


# ---- fault 3: integer tensors ----------------------------------------------------------------


def lstm_model(state_variable: bool = True) -> bytes:
    """An integer LSTM kernel: int8 activations, an int16 cell state (a variable tensor)."""
    tensors = [
        _act("serving_default_x:0", (1, 5, 4)),
        _const("arith.constant4", np.ones((2, 4))),
        _act("tfl.pseudo_qconst", (1, 2), variable=True),
        _act("tfl.pseudo_qconst1", (1, 2), "int16", variable=state_variable),
        _act("tfl.unidirectional_sequence_lstm", (1, 5, 2)),
    ]
    ops = [{"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "in": [0, 1, 2, 3], "out": [4]}]
    return build_tflite(tensors, ops, [0], [4])


def test_int16_cell_state_of_an_integer_lstm_is_on_int8_target():
    pl = check(read_tflite(lstm_model()), INT8, LAYERS)
    assert pl.fully_on_target and pl.float_tensors == []
    assert not [o for o in pl.ops if not o.on_target]


def test_int16_activation_is_integer_not_a_float_island():
    pl = check(read_tflite(lstm_model(state_variable=False)), INT8, LAYERS)
    op = pl.ops[0]
    assert not op.on_target and "float" not in op.status.lower() and "int16" in op.reason
    assert pl.float_tensors == [] and not list(FloatIsland().check(pl, INT8))


def test_edgetpu_calls_int16_state_integer_too():
    op = check(read_tflite(lstm_model()), EDGETPU, LAYERS).ops[0]
    assert not op.on_target and "integer" in op.reason and "int16 state" in op.reason


# ---- fault 4: attribution --------------------------------------------------------------------


def heads_model() -> bytes:
    """trunk conv -> head_a conv (dilation (2, 1)) and head_b conv; both write model outputs
    through generic `StatefulPartitionedCall:N` tensors. The signature lists head_b first."""
    tensors = [
        _act("serving_default_image:0", (1, 6, 6, 3), "uint8"),
        _act("tfl.quantize", (1, 6, 6, 3)),
        _const("functional_1/trunk_1/convolution", np.ones((4, 1, 1, 3))),
        _const("arith.constant", np.zeros(4), "int32"),
        _act("functional_1/trunk_1/convolution1", (1, 6, 6, 4)),
        _const("arith.constant1", np.ones((2, 3, 3, 4))),  # head_a's weights: a generic name
        _act("StatefulPartitionedCall:11", (1, 6, 6, 2)),
        _const("functional_1/head_b_1/convolution", np.ones((2, 1, 1, 4))),
        _act("StatefulPartitionedCall:01", (1, 6, 6, 2)),
        _act("StatefulPartitionedCall:1", (1, 6, 6, 2), "uint8"),
        _act("StatefulPartitionedCall:0", (1, 6, 6, 2), "uint8"),
    ]
    ops = [
        {"op": "QUANTIZE", "in": [0], "out": [1]},
        {"op": "CONV_2D", "in": [1, 2, 3], "out": [4], "version": 3, "options": _conv_opts()},
        {"op": "CONV_2D", "in": [4, 7, 3], "out": [8], "version": 3, "options": _conv_opts()},
        {"op": "CONV_2D", "in": [4, 5, 3], "out": [6], "version": 3, "options": _conv_opts(dil=(2, 1))},
        {"op": "QUANTIZE", "in": [6], "out": [9]},
        {"op": "QUANTIZE", "in": [8], "out": [10]},
    ]
    return build_tflite(tensors, ops, [0], [9, 10], signature_outputs={"head_a": 9, "head_b": 10})


def test_weights_name_the_layer_before_the_activation_input():
    m = read_tflite(heads_model())
    pl = check(m, EDGETPU, LAYERS)
    assert pl.ops[2].layer == "head_b"  # from its weights, not from the trunk it reads


def test_output_ops_are_charged_to_the_signature_output_layer():
    m = read_tflite(heads_model())
    assert m.signature_outputs == {"head_a": 9, "head_b": 10}
    pl = check(m, EDGETPU, LAYERS, {9: "head_a", 10: "head_b"})
    first = pl.first_unsupported
    assert (first["index"], first["layer"]) == (3, "head_a") and "dilation" in first["reason"]
    # without the signature the same op is charged to the trunk (its only named tensor)
    assert check(m, EDGETPU, LAYERS).first_unsupported["layer"] == "trunk"


# ---- fault 5: resize limits ------------------------------------------------------------------


def resize_model(op: str, size: int) -> bytes:
    half = size // 2
    tensors = [
        _act("serving_default_x:0", (1, half, half, 4), "uint8"),
        _act("tfl.quantize", (1, half, half, 4)),
        _const("functional_1/up_1/resize/size", np.array([size, size]), "int32"),
        _act("functional_1/up_1/resize", (1, size, size, 4)),
        _act("StatefulPartitionedCall:0", (1, size, size, 4), "uint8"),
    ]
    opts = "ResizeBilinearOptions" if op == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    ops = [
        {"op": "QUANTIZE", "in": [0], "out": [1]},
        {"op": op, "in": [1, 2], "out": [3], "version": 2, "options": (opts, {})},
        {"op": "QUANTIZE", "in": [3], "out": [4]},
    ]
    return build_tflite(tensors, ops, [0], [4])


@pytest.mark.parametrize("op, size, maps, warns", [
    ("RESIZE_BILINEAR", 512, False, False),  # unmapped in google-coral/edgetpu #31
    ("RESIZE_BILINEAR", 128, True, False),  # mapped in #31
    ("RESIZE_BILINEAR", 256, True, True),  # between the two: not known, a warning
    ("RESIZE_NEAREST_NEIGHBOR", 256, False, False),  # #187: 256x256 does not map
    ("RESIZE_NEAREST_NEIGHBOR", 128, True, False),  # #187: 128x128 maps
])
def test_resize_size_limits_are_blockers(op, size, maps, warns):
    pl = check(read_tflite(resize_model(op, size)), EDGETPU, LAYERS)
    assert pl.fully_on_target is maps
    assert bool([w for w in pl.warnings if "precision" in w]) is warns
    if not maps:
        first = pl.first_unsupported
        assert first["op"] == op and first["layer"] == "up" and f"{size}x{size}" in first["reason"]
        assert first["status"] == EDGETPU.status("hidden_limit")


def test_unknown_culprit_still_fails_the_model_with_a_usable_hint():
    """An op type without own-version rules: the first op of the type is named, the hint points
    at op_version.cc rather than at a converter flag TF 2.21 no longer has."""
    tensors = [_act("serving_default_x:0", (1, 4, 4, 2), "uint8"), _act("tfl.quantize", (1, 4, 4, 2)),
               _act("functional_1/sq_1/Square", (1, 4, 4, 2)), _act("StatefulPartitionedCall:0", (1, 4, 4, 2), "uint8")]
    ops = [{"op": "QUANTIZE", "in": [0], "out": [1]}, {"op": "SUB", "in": [1, 1], "out": [2], "version": 9},
           {"op": "QUANTIZE", "in": [2], "out": [3]}]
    pl = check(read_tflite(build_tflite(tensors, ops, [0], [3])), EDGETPU, ["sq"])
    assert pl.ops_on_target == 0 and pl.first_unsupported["layer"] == "sq"
    assert "op_version.cc" in pl.first_unsupported["fix_hint"]


def test_profile_rejects_an_unknown_version_failure(tmp_path):
    from qfix.types import QfixError

    text = (resources_text("edgetpu.toml").replace('version_failure = "model"', 'version_failure = "cut"'))
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(QfixError) as e:
        load_profile(str(path))
    assert e.value.code == "QF912" and "version_failure" in str(e.value)


def resources_text(name: str) -> str:
    from importlib import resources

    return resources.files("qfix.targets").joinpath(name).read_text(encoding="utf-8")


def test_outputs_are_put_in_model_order_through_the_signature():
    """converter.outputs_in_model_order permutes the subgraph's outputs to the model's order
    (the signature names each output's tensor); the interpreter then lists them that way."""
    from ai_edge_litert.interpreter import Interpreter

    from qfix.convert.converter import outputs_in_model_order

    data = heads_model()  # outputs [head_a, head_b]
    fixed = outputs_in_model_order(data, ["head_b", "head_a"])
    m = read_tflite(fixed)
    assert m.outputs == [10, 9] and m.signature_outputs == {"head_a": 9, "head_b": 10}
    assert len(fixed) == len(data) and read_tflite(data).outputs == [9, 10]
    assert [d["index"] for d in Interpreter(model_content=fixed).get_output_details()] == [10, 9]
    assert outputs_in_model_order(data, ["head_a", "head_b"]) is data  # already in order
    assert outputs_in_model_order(data, ["head_b", "other"]) is data  # not every output named


def test_own_version_of_shape_ops():
    """STRIDED_SLICE with a new-axis mask needs v6, a rank-5 TRANSPOSE v4 (op_version.cc)."""
    tensors = [_act("x", (1, 2, 3, 4, 5)), _const("perm", np.array([0, 2, 1, 3, 4]), "int32"),
               _act("y", (1, 3, 2, 4, 5)), _const("b", np.zeros(2), "int32"), _act("z", (1, 1, 2, 3, 4, 5))]
    ops = [{"op": "TRANSPOSE", "in": [0, 1], "out": [2], "version": 4},
           {"op": "STRIDED_SLICE", "in": [2, 3, 3, 3], "out": [4], "version": 6,
            "options": ("StridedSliceOptions", {"newAxisMask": 1})}]
    m = read_tflite(build_tflite(tensors, ops, [0], [4]))
    assert own_version(m, m.ops[0]).version == 4 and "rank 5" in own_version(m, m.ops[0]).why
    assert own_version(m, m.ops[1]).version == 6
