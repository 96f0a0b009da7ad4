"""QF102 end to end for a uint8 input that a layer casts itself (issue: no fix was offered).
Keras 3 and tf_keras both save `Input((4,), dtype="uint8") → Dense(2)`; Dense casts the uint8
input to float32 inside the layer, so the converted model began with a CAST from layer 'dense':
0 of 4 ops on the Edge TPU, QF304/QF405 blockers, no fix, exit 1. QF102 (an integer input cast
to float inside the graph) now names the Dense and folds the cast into the input: the float
model computes the same outputs, the TFLite input stays uint8, and the model runs fully on the
Edge TPU. Other members: Flatten then Dense, BatchNormalization; a Rescaling(1/255), which QF102
folded before, still does."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf


def dense(K):
    i = K.Input((4,), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Dense(2, name="dense")(i))


def flattened(K):
    i = K.Input((4, 4), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Dense(2, name="dense")(K.layers.Flatten(name="flat")(i)))


def batchnorm(K):
    i = K.Input((4,), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Dense(2, name="dense")(K.layers.BatchNormalization(name="bn")(i)))


def rescaled(K):
    i = K.Input((4,), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Dense(2, name="dense")(K.layers.Rescaling(1 / 255, name="rescaling")(i)))


def qfix(*args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "qfix", *args, "--format", "json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


CASES = [("k3", dense, "dense"), ("tfk", dense, "dense"), ("k3", flattened, "dense"), ("tfk", flattened, "dense"),
         ("k3", batchnorm, "bn"), ("k3", rescaled, "rescaling")]


@pytest.mark.parametrize(("dialect", "build", "layer"), CASES,
                         ids=[f"{b.__name__}-{d}" for d, b, _ in CASES])
def test_the_implicit_cast_is_named_and_folded_into_the_input(tmp_path, dialect, build, layer):
    path = save_with(dialect, build, tmp_path / f"{build.__name__}_{dialect}.keras")
    code, report = qfix(str(path), "--static", "--target", "edgetpu")
    assert [f["location"]["layer"] for f in report["findings"] if f["code"] == "QF102"] == [layer]

    code, report = qfix(str(path), "--target", "edgetpu", "--samples", "4", "--out-dir", str(tmp_path / "out"))
    assert code == 0
    assert [(f["code"], f["state"]) for f in report["fixes"] if f["code"] == "QF102"] == [("QF102", "kept")]
    before, after = report["before"], report["verification"]
    assert before["first_unsupported"]["op"] == "CAST" and not before["fully_on_target"]  # the CAST cut the graph
    assert before["ops_on_target"] <= 1 and after["fully_on_target"]
    assert after["ops_on_target"] > before["ops_on_target"] and "CAST" not in [o["op"] for o in after["ops"]]
    assert report["float_equivalence"]["max_abs_diff"] == 0  # float32 holds every uint8 exactly
    with zipfile.ZipFile(report["outputs"]["model"]) as z:
        layers = json.loads(z.read("config.json"))["config"]["layers"]
    assert [l["config"]["dtype"] for l in layers if l["class_name"] == "InputLayer"] == ["float32"]
    from ai_edge_litert.interpreter import Interpreter

    assert Interpreter(model_path=report["outputs"]["tflite"]).get_input_details()[0]["dtype"] == np.uint8
    code, again = qfix(report["outputs"]["model"], "--static", "--target", "edgetpu")
    assert not [f for f in again["findings"] if f["code"] == "QF102"]


def test_the_fixed_dense_computes_the_same_on_random_uint8(tmp_path):
    """The float equivalence above uses qfix's synthetic samples; here random uint8 frames,
    through the original (which runs: Dense casts) and the fixed model."""
    import keras

    path = save_with("k3", flattened, tmp_path / "flattened.keras")
    code, report = qfix(str(path), "--target", "int8", "--samples", "4")
    assert code == 0
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    x = np.random.default_rng(0).integers(0, 256, (8, 4, 4)).astype("uint8")
    np.testing.assert_array_equal(np.asarray(fixed(x.astype("float32"))), np.asarray(original(x)))
