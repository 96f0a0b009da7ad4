"""qfix's table of tfmot support (qfix.model.tfmot_registry) against the installed tfmot, and
qfix's QuantizeConfigs (qfix.convert.qat_configs) through quantize, train, save, reload and
the QAT conversion.

The `tf` tests run this file as a child process (tfmot needs tf_keras, `TF_USE_LEGACY_KERAS=1`
before TensorFlow is imported; the test process must not get that setting): the child builds a
one-layer tf_keras model per class, calls the real `quantize_model` and writes what happened
as JSON; the tests assert the table's claims on it, so they fail when tfmot changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfix.model import tfmot_registry as reg
from qfix.model.graph import build_graph

ROOT = Path(__file__).resolve().parents[2]

# class → (constructor args for tf_keras.layers.<class>, input shape); merges take [x, Dense(x)].
SHAPES = {1: (8,), 2: (8, 3), 3: (8, 8, 3), 4: (4, 4, 4, 3)}
BUILD = {
    "Dense": ("(4)", 1), "Conv2D": ("(4, 3)", 3), "DepthwiseConv2D": ("(3)", 3), "Conv2DTranspose": ("(4, 3)", 3),
    "SeparableConv2D": ("(4, 3)", 3), "SeparableConv1D": ("(4, 3)", 2), "Conv1D": ("(4, 3)", 2),
    "Conv3D": ("(4, 3)", 4), "Conv1DTranspose": ("(4, 3)", 2), "DepthwiseConv1D": ("(3)", 2),
    "ReLU": ("()", 1), "LeakyReLU": ("()", 1), "PReLU": ("()", 1), "ELU": ("()", 1), "ThresholdedReLU": ("()", 1),
    "Softmax": ("()", 1), "Activation": ("('relu')", 1), "BatchNormalization": ("()", 1),
    "LayerNormalization": ("()", 1), "UnitNormalization": ("()", 1), "GroupNormalization": ("(3)", 2),
    "Rescaling": ("(1 / 255.0)", 1), "Normalization": ("(mean=0.5, variance=2.0)", 1), "Resizing": ("(4, 4)", 3),
    "CenterCrop": ("(4, 4)", 3), "Flatten": ("()", 2), "Reshape": ("((3, 8))", 2), "Permute": ("((2, 1))", 2),
    "RepeatVector": ("(2)", 1), "Dropout": ("(0.5)", 1), "SpatialDropout1D": ("(0.5)", 2),
    "SpatialDropout2D": ("(0.5)", 3), "SpatialDropout3D": ("(0.5)", 4), "GaussianNoise": ("(0.1)", 1),
    "GaussianDropout": ("(0.1)", 1), "ActivityRegularization": ("()", 1), "Masking": ("()", 2),
    "Cropping1D": ("(1)", 2), "Cropping2D": ("(1)", 3), "Cropping3D": ("(1)", 4), "ZeroPadding1D": ("(1)", 2),
    "ZeroPadding2D": ("(1)", 3), "ZeroPadding3D": ("(1)", 4), "UpSampling1D": ("(2)", 2), "UpSampling2D": ("(2)", 3),
    "UpSampling3D": ("(2)", 4), "MaxPooling1D": ("(2)", 2), "MaxPooling2D": ("(2)", 3), "MaxPooling3D": ("(2)", 4),
    "AveragePooling1D": ("(2)", 2), "AveragePooling2D": ("(2)", 3), "AveragePooling3D": ("(2)", 4),
    "GlobalAveragePooling1D": ("()", 2), "GlobalAveragePooling2D": ("()", 3), "GlobalAveragePooling3D": ("()", 4),
    "GlobalMaxPooling1D": ("()", 2), "GlobalMaxPooling2D": ("()", 3), "GlobalMaxPooling3D": ("()", 4),
    "Embedding": ("(10, 4)", 1),  # a float input: the registry's verdict, not the integer-input error (B15)
    "LSTM": ("(4)", 2), "GRU": ("(4)", 2), "SimpleRNN": ("(4)", 2), "Bidirectional": ("(L.LSTM(4))", 2),
    "TimeDistributed": ("(L.Dense(4))", 2), "EinsumDense": ("('ab,bc->ac', output_shape=4)", 1),
    "LocallyConnected1D": ("(4, 3)", 2), "LocallyConnected2D": ("(4, 3)", 3),
    "MultiHeadAttention": ("(2, 4)", 2), "Attention": ("()", 2), "Dot": ("(1)", 1),
    **{c: ("()", 1) for c in ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average", "Concatenate")},
}
MERGES = {"Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average", "Concatenate", "Attention", "Dot"}
ACTIVATIONS = ["linear", "relu", "relu6", "elu", "selu", "softplus", "softsign", "swish", "silu", "gelu",
               "hard_sigmoid", "sigmoid", "tanh", "softmax", "exponential", "leaky_relu", "mish"]


def test_every_layer_class_has_a_builder_and_every_rejected_row_a_remedy_or_a_reason():
    assert set(reg.LAYERS) == set(BUILD)
    for cls, e in reg.LAYERS.items():
        if e.rejected:
            assert e.error and e.why, cls
            assert (e.remedy == reg.REWRITE) == bool(e.rewrite), cls
            assert (e.remedy in (reg.ANNOTATE, reg.FLOAT)) == bool(e.qconfig), cls


def test_the_rewrites_the_table_names_exist():
    from qfix.model import rewrites

    for cls, e in reg.LAYERS.items():
        if e.rewrite:
            assert callable(getattr(rewrites, e.rewrite)), cls


def test_a_class_outside_the_table_is_rejected_without_remedy():
    e = reg.entry("MyLayer")
    assert e.rejected and e.remedy is None and "MyLayer" in e.advice


def test_batchnorm_folds_only_after_a_linear_conv_or_dense():
    assert reg.folds_batchnorm("Conv2D", "linear") and reg.folds_batchnorm("Dense", None)
    assert not reg.folds_batchnorm("Conv2D", "relu") and not reg.folds_batchnorm("Add", None)


def test_graph_unwraps_a_quantize_annotate():
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, 8], "dtype": "float32"},
         "name": "x", "inbound_nodes": []},
        {"module": "tensorflow_model_optimization.python.core.quantization.keras.quantize_annotate",
         "class_name": "QuantizeAnnotate", "registered_name": "QuantizeAnnotate", "name": "m",
         "config": {"name": "m", "layer": {"module": "keras.layers", "class_name": "PReLU",
                                           "config": {"name": "p", "shared_axes": None}},
                    "quantize_config": {"class_name": "qfix>OutputQuantizeConfig", "config": {}}},
         "inbound_nodes": [[["x", 0, 0, {}]]]}],
        "input_layers": [["x", 0, 0]], "output_layers": [["m", 0, 0]]}}
    layer = build_graph(config, "tf_keras").layers["m"]
    assert (layer.class_name, layer.module, layer.quantize_config) == ("PReLU", "keras.layers", "OutputQuantizeConfig")
    assert layer.config["name"] == "m" and layer.config["shared_axes"] is None


# ---- the child: real tf_keras + tfmot ----------------------------------------------------------


def _one_layer(K, cls):
    L = K.layers
    args, rank = BUILD[cls]
    layer = eval(f"L.{cls}{args}", {"L": L})  # args are literals of this file
    i = K.Input(SHAPES[rank])
    if cls in MERGES:
        return K.Model(i, layer([i, L.Dense(i.shape[-1])(i)]))
    if cls == "MultiHeadAttention":
        return K.Model(i, layer(i, i))
    return K.Model(i, layer(i))


def _quantize(K, tfmot, build):
    K.backend.clear_session()
    try:
        q = tfmot.quantization.keras.quantize_model(build())
    except Exception as exc:  # noqa: BLE001 - the error text is what we record
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    wrapped = {}
    for w in q.layers:
        c = getattr(w, "quantize_config", None)
        if c is None:
            continue
        wrapped[type(w.layer).__name__] = {
            "config": type(c).__name__, "weights": len(c.get_weights_and_quantizers(w.layer)),
            "activation": len(c.get_activations_and_quantizers(w.layer)),
            "output": bool(c.get_output_quantizers(w.layer))}
    return {"ok": True, "wrapped": wrapped}


def child_table(out: str) -> None:
    import tf_keras as K
    import tensorflow_model_optimization as tfmot

    L = K.layers
    res = {"layers": {}, "bn_after": {}, "dense_act": {}, "activation_layer": {}}
    for cls in BUILD:
        res["layers"][cls] = _quantize(K, tfmot, lambda cls=cls: _one_layer(K, cls))
    for prev, act in [("Conv2D", "linear"), ("DepthwiseConv2D", "linear"), ("Dense", "linear"), ("Conv2D", "relu"),
                      ("Dense", "relu"), ("Add", None)]:
        def bn(prev=prev, act=act):
            i = K.Input((8, 8, 3))
            x = {"Conv2D": lambda: L.Conv2D(3, 1, activation=act), "DepthwiseConv2D": lambda: L.DepthwiseConv2D(1, activation=act),
                 "Dense": lambda: L.Dense(3, activation=act), "Add": lambda: L.Add()}[prev]()
            x = x([i, i]) if prev == "Add" else x(i)
            return K.Model(i, L.BatchNormalization()(x))
        res["bn_after"][f"{prev}:{act}"] = _quantize(K, tfmot, bn)

    def shared():  # a linear conv read by the BN and by an Add: tfmot's fold pattern does not match
        i = K.Input((8, 8, 3))
        c = L.Conv2D(3, 1)(i)
        return K.Model(i, L.Add()([L.BatchNormalization()(c), c]))
    res["bn_shared_conv"] = _quantize(K, tfmot, shared)
    for act in ACTIVATIONS:
        res["dense_act"][act] = _quantize(K, tfmot, lambda act=act: K.Sequential([K.Input((8,)), L.Dense(4, activation=act)]))
        res["activation_layer"][act] = _quantize(K, tfmot, lambda act=act: K.Sequential([K.Input((8,)), L.Activation(act)]))
    Path(out).write_text(json.dumps(res))


# Each annotated class in a model: Input → layer → Dense (its reader), annotated with `config`.
def _annotated(K, tfmot, cls, config):
    L = K.layers
    Q = tfmot.quantization.keras
    args, rank = ("('leaky_relu')", 1) if cls == "Activation" else BUILD[cls]
    layer = Q.quantize_annotate_layer(eval(f"L.{cls}{args}", {"L": L}), config)
    i = K.Input((8, 8, 3) if cls in ("Rescaling", "PReLU", "Resizing", "BatchNormalization") else SHAPES[rank])
    x = layer([i, L.Dense(i.shape[-1])(i)]) if cls in MERGES else layer(i)
    x = L.Flatten()(x) if len(x.shape) > 2 else x
    return K.Model(i, L.Dense(4, name="reader")(x))


def child_configs(out: str) -> None:
    import numpy as np
    import tensorflow as tf
    import tf_keras as K
    import tensorflow_model_optimization as tfmot

    from qfix.convert import qat_configs
    from qfix.targets.tflite import read_tflite

    Q = tfmot.quantization.keras
    res = {}
    d = Path(out).parent
    cases = [(c, "OutputQuantizeConfig") for c, e in reg.LAYERS.items() if e.remedy in (reg.ANNOTATE, reg.FLOAT)]
    cases += [("Activation", "OutputQuantizeConfig"), ("Multiply", "NoOpQuantizeConfig")]
    cases += [("swish", "fused"), ("swish", "split")]
    for cls, cname in cases:
        key = f"{cls}:{cname}"
        K.backend.clear_session()
        try:
            if cls == "swish":  # tfmot accepts both; which converts to integer ops
                i = K.Input((8, 8, 3))
                x = K.layers.Conv2D(4, 3, activation="swish" if cname == "fused" else "linear")(i)
                x = x if cname == "fused" else K.layers.Activation("swish")(x)
                model = K.Model(i, K.layers.Dense(4, name="reader")(K.layers.Flatten()(x)))
            else:
                model = _annotated(K, tfmot, cls, getattr(qat_configs, cname)())
            with Q.quantize_scope(qat_configs.custom_objects()):
                q = Q.quantize_model(model)
            x = np.random.default_rng(0).uniform(0, 1, (2, *q.inputs[0].shape[1:])).astype("float32")
            q.compile("adam", "mse")
            q.train_on_batch(x, np.zeros((2, 4), "float32"))
            q.save(d / "q.h5")  # a QAT model round-trips as .h5 only (errors.md B16)
            with Q.quantize_scope(qat_configs.custom_objects()):
                q = K.models.load_model(d / "q.h5")
            conv = tf.lite.TFLiteConverter.from_keras_model(q)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.inference_input_type = conv.inference_output_type = tf.uint8
            tfl = read_tflite(conv.convert())
            ops = [(op.name, [tfl.tensors[j].dtype for j in op.outputs]) for op in tfl.ops]
            res[key] = {"ops": [n for n, _ in ops],
                        "float": [n for n, dts in ops if n not in ("QUANTIZE", "DEQUANTIZE")
                                  and any(dt not in ("int8", "uint8", "int32") for dt in dts)]}
        except Exception as exc:  # noqa: BLE001
            res[key] = {"error": f"{type(exc).__name__}: {exc}"}
    Path(out).write_text(json.dumps(res))


def _child(kind: str, tmp: Path) -> dict:
    out = tmp / f"{kind}.json"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, kind, str(out)], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return _child("table", tmp_path_factory.mktemp("tfmot_table"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return _child("configs", tmp_path_factory.mktemp("tfmot_configs"))


@pytest.mark.tf
@pytest.mark.parametrize("cls", sorted(reg.LAYERS))
def test_table_matches_installed_tfmot(table, cls):
    e, got = reg.LAYERS[cls], table["layers"][cls]
    if e.tfmot in (reg.QUANTIZED, reg.SUPPORTED):
        assert got["ok"], got
        w = got["wrapped"][cls]
        assert w["config"] == e.config
        assert (w["weights"], w["activation"], w["output"]) == (len(e.weights), int(e.activation), e.output)
        if e.tfmot == reg.SUPPORTED:
            assert (w["weights"], w["activation"], w["output"]) == (0, 0, False)
    elif cls == "SeparableConv2D":  # rebuilt as the two layers it stands for
        assert got["ok"] and {"DepthwiseConv2D", "Conv2D"} <= set(got["wrapped"]), got
    else:  # rejected (a standalone BatchNormalization too)
        assert not got["ok"] and e.error in got["error"], got


@pytest.mark.tf
def test_batchnorm_is_accepted_only_after_a_linear_conv_or_dense(table):
    for key, got in table["bn_after"].items():
        prev, act = key.split(":")
        assert got["ok"] == reg.folds_batchnorm(prev, None if act == "None" else act), (key, got)
        if not got["ok"]:
            assert reg.NOT_SUPPORTED in got["error"]


@pytest.mark.tf
def test_batchnorm_after_a_linear_conv_read_twice_is_rejected_and_qf502_says_so(table):
    from qfix.model.cases import functional_config
    from qfix.rules.base import Context
    from qfix.rules.tfmot_rejected_layer import TfmotRejectedLayer
    from qfix.targets import load_profile

    assert not table["bn_shared_conv"]["ok"] and reg.NOT_SUPPORTED in table["bn_shared_conv"]["error"]
    cfg = functional_config([("x", (None, 8, 8, 3), "float32")],
                            [("c", "Conv2D", {"filters": 3, "kernel_size": 1}, ["x"]), ("bn", "BatchNormalization", {}, ["c"]),
                             ("a", "Add", {"__module": "keras.layers"}, ["bn", "c"])], ["a"])
    found = list(TfmotRejectedLayer().check(build_graph(cfg, "keras3"), Context(load_profile("edgetpu"), mode="qat")))
    assert [v.location.layer for v in found] == ["bn"]


@pytest.mark.tf
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_sets_match_installed_tfmot(table, act):
    dense, layer = table["dense_act"][act], table["activation_layer"][act]
    assert dense["ok"] == reg.layer_activation_ok(act), dense
    assert layer["ok"] == reg.activation_layer_ok(act), layer
    if not dense["ok"]:
        assert reg.LAYER_ACTIVATION_ERROR in dense["error"]
    if not layer["ok"]:
        prefix, _, suffix = reg.ACTIVATION_LAYER_ERROR.format(name=act).partition(" at 0x...")
        assert prefix in layer["error"] and suffix in layer["error"], layer


ANNOTATED = sorted(c for c, e in reg.LAYERS.items() if e.remedy in (reg.ANNOTATE, reg.FLOAT))


@pytest.mark.tf
@pytest.mark.parametrize("cls", ANNOTATED)
def test_output_config_quantizes_trains_reloads_and_converts_as_the_table_says(converted, cls):
    got = converted[f"{cls}:OutputQuantizeConfig"]
    assert "error" not in got, got
    assert "FULLY_CONNECTED" in got["ops"] and "FULLY_CONNECTED" not in got["float"]  # its reader stays integer
    if reg.LAYERS[cls].remedy == reg.ANNOTATE:
        assert got["float"] == [], got
    else:
        assert got["float"], got


@pytest.mark.tf
def test_leaky_relu_activation_annotated_converts_to_integer(converted):
    got = converted["Activation:OutputQuantizeConfig"]
    assert "LEAKY_RELU" in got["ops"] and got["float"] == [], got
    assert "leaky_relu" in reg.INTEGER_WHEN_ANNOTATED


@pytest.mark.tf
def test_a_fused_swish_converts_to_float_and_split_off_to_integer(converted):
    fused, split = converted["swish:fused"], converted["swish:split"]
    assert "swish" in reg.FLOAT_WHEN_FUSED and reg.layer_activation_ok("swish")
    assert {"CONV_2D", "LOGISTIC", "MUL"} <= set(fused["float"]), fused
    assert {"CONV_2D", "LOGISTIC", "MUL"} <= set(split["ops"]) and split["float"] == [], split


@pytest.mark.tf
def test_noop_config_keeps_the_layer_and_its_reader_float(converted):
    got = converted["Multiply:NoOpQuantizeConfig"]
    assert "MUL" in got["float"] and "FULLY_CONNECTED" in got["float"], got


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    {"table": child_table, "configs": child_configs}[sys.argv[1]](sys.argv[2])
