"""Issue 9, end to end: the verdict of the check run on the smallest input of each fault kind
(2: op versions the Edge TPU compiler cannot parse; 3: integer kernels called float; 4: ops
charged to the wrong layer, output order; 5: size limits that only warned) and on another
member of the kind, in both dialects where the kind exists. Real conversions of tiny models
built here; each model is checked once per module."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qfix.jobs.check import Options, run_check

pytestmark = pytest.mark.tf
SAMPLES = 4


def _keras3():
    import keras
    from keras import layers as L

    def heads(blocker_head):
        i = keras.Input((32, 32, 3))
        x = L.Conv2D(8, 3, padding="same", name="trunk")(i)
        a = blocker_head(x)
        b = L.GlobalAveragePooling2D(name="head_gap")(x)
        c = L.Conv2D(2, 1, name="head_c")(x)
        return keras.Model(i, [a, b, c])

    def upsample(size, interpolation):
        i = keras.Input((size, size, 3))
        x = L.Conv2D(8, 3, strides=2, padding="same")(i)
        x = L.UpSampling2D(2, interpolation=interpolation, name="up")(x)
        return keras.Model(i, L.Conv2D(1, 1)(x))

    def seq(*layers, shape):
        i = keras.Input(shape)
        x = i
        for layer in layers:
            x = layer(x)
        return keras.Model(i, x)

    return {
        # fault 2
        "gconv_k3": lambda: seq(L.Conv2D(16, 3, name="stem"), L.Conv2D(32, 3, groups=4, name="grouped"),
                                shape=(16, 16, 8)),
        "gconv1d_k3": lambda: seq(L.Conv1D(8, 3, name="stem"), L.Conv1D(8, 3, groups=2, name="grouped"),
                                  shape=(16, 8)),
        # a Sequential whose grouped conv writes the output through a fused ReLU layer: the op's
        # names are generic ('convolution', 'StatefulPartitionedCall:0'), its weights are the conv's
        "gconv_seq_relu_k3": lambda: keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(8, 3, groups=2, name="grouped"),
                                                       L.ReLU(name="relu")]),
        "tconv_k3": lambda: seq(L.Conv2DTranspose(8, 2, strides=2, activation="relu", bias_initializer="ones",
                                                  name="up"), shape=(8, 8, 16)),
        "tconv_relu6_k3": lambda: seq(L.Conv2D(8, 1, name="stem"),
                                      L.Conv2DTranspose(8, 2, strides=2, activation="relu6", bias_initializer="ones",
                                                        name="up"), shape=(8, 8, 16)),
        # fault 4
        "heads_k3": lambda: heads(lambda x: L.Conv2D(4, 3, padding="same", dilation_rate=(2, 1), name="head_dil")(x)),
        "heads_leaky_k3": lambda: heads(lambda x: L.LeakyReLU(0.1, name="head_leaky")(x)),
        # fault 5
        "up512_k3": lambda: upsample(512, "bilinear"),
        "up128_k3": lambda: upsample(128, "bilinear"),
        "up256_k3": lambda: upsample(256, "bilinear"),  # a 256x256 output: between known to map and known not to
        "near256_k3": lambda: seq(L.Resizing(256, 256, "nearest", name="up"), shape=(64, 64, 3)),
        "near128_k3": lambda: seq(L.Resizing(128, 128, "nearest", name="up"), shape=(64, 64, 3)),
    }


def _tf_keras():
    import tf_keras
    from tf_keras import layers as L

    def seq(*layers, shape):
        i = tf_keras.Input(shape)
        x = i
        for layer in layers:
            x = layer(x)
        return tf_keras.Model(i, x)

    def heads():
        i = tf_keras.Input((16, 16, 3))
        x = L.Conv2D(8, 3, padding="same", name="trunk")(i)
        a = L.Conv2D(4, 3, padding="same", dilation_rate=(2, 1), name="z_dil")(x)
        b = L.GlobalAveragePooling2D(name="m_gap")(x)
        c = L.Conv2D(2, 1, name="a_conv")(x)
        return tf_keras.Model(i, [a, b, c])

    return {
        "gconv_tfk": lambda: seq(L.Conv2D(16, 3, name="stem"), L.Conv2D(32, 3, groups=4, name="grouped"),
                                 shape=(16, 16, 8)),
        "tconv_relu6_tfk": lambda: seq(L.Conv2DTranspose(8, 2, strides=2, activation="relu6",
                                                         bias_initializer="ones", name="up"), shape=(8, 8, 16)),
        "lstm_tfk": lambda: seq(L.LSTM(8, name="lstm"), L.Dense(2, name="dense"), shape=(5, 16)),
        "lstm2_tfk": lambda: seq(L.LSTM(8, return_sequences=True, name="lstm_a"), L.LSTM(4, name="lstm_b"),
                                 L.Dense(2, name="dense"), shape=(5, 16)),
        "heads_tfk": heads,
        "near256_tfk": lambda: seq(L.UpSampling2D(4, name="up"), shape=(64, 64, 3)),
    }


@pytest.fixture(scope="module")
def verdict(tmp_path_factory):
    """(model name, target) -> the check run's Result, each model built and checked once."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    root = tmp_path_factory.mktemp("verdicts")
    builders = {**_keras3(), **_tf_keras()}
    done: dict[tuple[str, str], object] = {}

    def get(name: str, target: str = "edgetpu"):
        if (name, target) not in done:
            path = root / f"{name}.keras"
            if not path.exists():
                builders[name]().save(path)
            done[name, target] = run_check(path, Options(target=target, samples=SAMPLES))
        return done[name, target]

    return get


def test_main_job_text_shows_the_fixed_models_placement_warnings(tmp_path):
    """A 256x256 bilinear output is past what is known to map (128x128) and not yet what is known
    not to (512x512): a warning. The main job's before/after table has no row for it, so it is
    printed under the table; it was only in the JSON while the text said "runs fully"."""
    import subprocess
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    path = tmp_path / "up256.keras"
    _keras3()["up256_k3"]().save(path)
    qfix = Path(sys.executable).with_name("qfix")
    r = subprocess.run([str(qfix), str(path), "--target", "edgetpu", "--samples", "4", "--out-dir", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "400"})
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stdout.splitlines() if line.strip().startswith("warning:")]
    assert any("RESIZE_BILINEAR" in w and "not known to map" in w and "256x256" in w for w in warnings), r.stdout
    assert "runs fully on Coral Edge TPU" in r.stdout


def _qf304(result):
    return [f for f in result.findings if f.code == "QF304"]


# ---- fault 2: an op version the compiler cannot parse fails the whole model ------------------


@pytest.mark.parametrize("name, op, hint", [
    ("gconv_k3", "CONV_2D", "QF306"),  # the smallest input
    ("gconv1d_k3", "CONV_2D", "QF306"),  # a grouped Conv1D lowers to the same grouped CONV_2D
    ("gconv_tfk", "CONV_2D", "QF306"),
    ("gconv_seq_relu_k3", "CONV_2D", "QF306"),
    ("tconv_k3", "TRANSPOSE_CONV", "QF307"),  # the smallest input
    ("tconv_relu6_k3", "TRANSPOSE_CONV", "QF307"),
    ("tconv_relu6_tfk", "TRANSPOSE_CONV", "QF307"),
])
def test_unparsable_op_version_fails_the_whole_model_and_blames_its_layer(verdict, name, op, hint):
    r = verdict(name)
    pl = r.verification.placement
    assert pl.ops_on_target == 0 and pl.fully_on_target is False
    assert "Model could not be parsed" in pl.model_failure
    first = pl.first_unsupported
    layer = "grouped" if op == "CONV_2D" else "up"
    assert (first["op"], first["layer"]) == (op, layer)
    assert hint in first["fix_hint"] and "experimental_new_converter" not in first["fix_hint"]
    [finding] = _qf304(r)
    assert finding.location.layer == layer and "cut here" not in finding.message
    assert r.exit_code() == 1


def test_the_same_file_is_fine_on_int8(verdict):
    """Other targets are unaffected: the int8 CPU has no version ceiling."""
    pl = verdict("gconv_k3", "int8").verification.placement
    assert pl.model_failure is None and pl.fully_on_target


# ---- fault 3: integer kernels are not float islands ------------------------------------------


@pytest.mark.parametrize("name, layers", [("lstm_tfk", ["lstm"]), ("lstm2_tfk", ["lstm_a", "lstm_b"])])
def test_integer_lstm_is_on_int8_target_and_named(verdict, name, layers):
    r = verdict(name, "int8")
    pl = r.verification.placement
    lstm = [o for o in pl.ops if o.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert [o.layer for o in lstm] == layers
    # the op warnings name the layer the op was finally charged to (review of issue 9)
    slow = [w for w in pl.warnings if "UNIDIRECTIONAL_SEQUENCE_LSTM" in w]
    assert [w.split(":")[0] for w in slow] == [f"op {o.index} UNIDIRECTIONAL_SEQUENCE_LSTM (layer {o.layer})"
                                              for o in lstm]
    assert all(o.on_target for o in lstm) and "float" not in " ".join(o.status for o in lstm).lower()
    assert pl.float_tensors == [] and pl.fully_on_target
    assert not [f for f in r.findings if f.code in ("QF304", "QF405")]
    # The placement passes; the fused integer LSTM's int8 error on random weights sits around
    # QF408's 13.8 dB floor, so the numbers alone may fail the run — and then only they do.
    low = [f for f in r.findings if f.code == "QF408" and f.severity.value == "blocker"]
    assert [f.code for f in r.blockers] == [f.code for f in low]
    assert r.exit_code() == (1 if low else 0)


def test_integer_lstm_on_edgetpu_names_the_layer_and_no_float(verdict):
    pl = verdict("lstm_tfk").verification.placement
    first = pl.first_unsupported
    assert first["layer"] == "lstm" and "int16" in first["reason"] and "integer" in first["reason"]
    assert pl.float_tensors == []


# ---- fault 4: blockers on output heads, output order ------------------------------------------


@pytest.mark.parametrize("name, head, words", [
    ("heads_k3", "head_dil", "dilation"),  # the smallest input
    ("heads_leaky_k3", "head_leaky", "LEAKY_RELU"),  # another head, another blocker
    ("heads_tfk", "z_dil", "dilation"),
])
def test_output_head_blocker_is_charged_to_the_head(verdict, name, head, words):
    r = verdict(name)
    first = r.verification.placement.first_unsupported
    assert first["layer"] == head and words in first["reason"] + first["op"]
    assert [f.location.layer for f in _qf304(r)] == [head]


@pytest.mark.parametrize("name", ["heads_k3", "heads_tfk"])
def test_tflite_outputs_in_model_order_and_compared_by_name(verdict, name):
    r = verdict(name)
    ver = r.verification
    model_order = [t.layer for t in r.graph.outputs]
    assert [o["layer"] for o in ver.outputs] == model_order
    assert ver.outputs_in_model_order and ver.to_json()["outputs"] == ver.outputs
    # fidelity pairs each Keras output with the .tflite output of the same name
    assert [o.name for o in ver.fidelity.per_output] == model_order
    assert all(o.sqnr_db > 15 for o in ver.fidelity.per_output)
    assert [o["layer"] for o in ver.to_json()["fidelity"]["per_output"]] == model_order


def test_sequential_output_numbers_name_their_layer(verdict):
    """A Keras 3 Sequential's output is named `keras_tensor_N` (its output_names): the JSON
    numbers per output also name the layer computing it."""
    ver = verdict("gconv_seq_relu_k3", "int8").verification
    (out,) = ver.to_json()["fidelity"]["per_output"]
    assert out["name"].startswith("keras_tensor") and out["layer"] == "relu"


# ---- fault 5: resize size limits -----------------------------------------------------------------


@pytest.mark.parametrize("name, op, fully", [
    ("up512_k3", "RESIZE_BILINEAR", False),  # the smallest input: unmapped in edgetpu #31
    ("up128_k3", "RESIZE_BILINEAR", True),  # 128x128 maps (#31)
    ("near256_k3", "RESIZE_NEAREST_NEIGHBOR", False),  # at the nearest limit (#187)
    ("near128_k3", "RESIZE_NEAREST_NEIGHBOR", True),
    ("near256_tfk", "RESIZE_NEAREST_NEIGHBOR", False),
])
def test_resize_size_limit_decides_the_verdict(verdict, name, op, fully):
    r = verdict(name)
    pl = r.verification.placement
    assert pl.fully_on_target is fully
    assert r.exit_code() == (0 if fully else 1)
    if not fully:
        first = pl.first_unsupported
        assert first["op"] == op and first["layer"] == "up" and "not mapped" in first["reason"]
