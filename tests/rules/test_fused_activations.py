"""QF302 reads a profile's fused-activation rules the way the op-by-op check does: an
activation the converter fuses into its layer's op (a CONV_2D with RELU) is no op of its own,
so a target that lists no RELU op but lets CONV_2D fuse RELU runs it (issue 13, item 1)."""

from __future__ import annotations

from pathlib import Path

from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.rules.base import Context
from qfix.rules.unsupported_activation import UnsupportedActivation, UnsupportedActivationModel
from qfix.source.engine import lint_source
from qfix.targets import load_profile

ROOT = Path(__file__).resolve().parents[2]
MY_NPU = ROOT / "examples" / "targets" / "my_npu.toml"  # CONV_2D fuses NONE/RELU/RELU6; no RELU op


def _found(layers, target=MY_NPU):
    config = functional_config([("x", (1, 8, 8, 3), "float32")], layers, [layers[-1][0]])
    return [v.message for v in UnsupportedActivationModel().check(build_graph(config, "keras3"),
                                                                    Context(load_profile(str(target))))]


def test_relu_fused_into_a_conv_is_on_target():
    profile = load_profile(str(MY_NPU))
    assert not profile.supports("RELU") and profile.fuses("CONV_2D", "RELU")
    assert _found([("c1", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu"}, ["x"])]) == []
    assert _found([("c1", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu6"}, ["x"])]) == []


def test_an_activation_the_host_op_does_not_fuse_is_still_flagged():
    # FULLY_CONNECTED has no fused_activation_in rule, so relu fuses; DEPTHWISE_CONV_2D likewise;
    # a relu on a layer that fuses nothing (an Activation layer) needs the RELU op.
    assert _found([("d", "Dense", {"units": 4, "activation": "relu"}, ["x"])]) == []
    found = _found([("a", "Activation", {"activation": "relu"}, ["x"])])
    assert len(found) == 1 and "uses relu (RELU), which My NPU (int8) does not run" in found[0]


def test_a_fused_activation_the_rule_refuses_is_flagged(tmp_path):
    text = MY_NPU.read_text(encoding="utf-8").replace('values = ["NONE", "RELU", "RELU6"]', 'values = ["NONE", "RELU"]')
    npu = tmp_path / "my_npu.toml"
    npu.write_text(text, encoding="utf-8")
    assert _found([("c1", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu"}, ["x"])], npu) == []
    found = _found([("c1", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu6"}, ["x"])], npu)
    assert len(found) == 1 and "relu6 (RELU6)" in found[0]


def test_source_side_reads_the_same_rules():
    code = ("import keras\nx = keras.layers.Conv2D(8, 3, activation='relu')(x)\n"
            "y = keras.layers.Activation('relu')(x)\nmodel.export('saved')\n")
    res = lint_source(code, rules=[UnsupportedActivation], target=str(MY_NPU))
    found = [v for v in res.violations if v.code == "QF302"]
    assert [v.location.line for v in found] == [3]
