"""QF106 end to end (issue 9, kind 1: a failure inside TensorFlow that named no layer). Keras 3
saves `Input(dtype="uint8") → Conv2D`, but TensorFlow's conv kernels take float only: the check
and the main job ended with a bare QF909 "DataType uint8 not in list of allowed values". Now
the check names the layer and says the model does not convert; the main job makes the input
float32 (the TFLite input stays uint8) and the fixed model converts, fully on the Edge TPU. Other
members: through a max pooling (which Keras 3 records as float32 but TensorFlow keeps uint8),
and into a sigmoid."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf


def conv(K):
    i = K.Input((8, 8, 3), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Conv2D(4, 3, name="conv")(i))


def pooled(K):
    i = K.Input((8, 8, 3), dtype="uint8", name="frame")
    x = K.layers.MaxPooling2D(name="pool")(i)
    return K.Model(i, K.layers.Conv2D(4, 1, name="conv")(x))


def sigmoid(K):
    i = K.Input((8,), dtype="uint8", name="frame")
    x = K.layers.Activation("sigmoid", name="act")(i)
    return K.Model(i, K.layers.Dense(2, name="head")(x))


def qfix(*args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "qfix", *args, "--samples", "4", "--format", "json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize(("build", "layer"), [(conv, "conv"), (pooled, "conv"), (sigmoid, "act")])
def test_check_names_the_layer_and_the_main_job_makes_it_convert(tmp_path, build, layer):
    path = save_with("k3", build, tmp_path / f"{build.__name__}.keras")
    code, report = qfix(str(path), "--check", "--target", "edgetpu")
    assert code == 1
    found = [f for f in report["findings"] if f["code"] == "QF106"]
    assert [f["location"]["layer"] for f in found] == [layer] and found[0]["severity"] == "blocker"
    assert report["verification"] is None or not report["verification"]["converted"]

    code, report = qfix(str(path), "--target", "edgetpu")
    assert code == 0
    assert [(f["code"], f["state"]) for f in report["fixes"] if f["code"] == "QF106"] == [("QF106", "kept")]
    assert "DataType uint8" in report["before_failure"]
    assert report["float_reference_failure"]  # the original does not run in TensorFlow at all
    ver = report["verification"]
    assert ver["fully_on_target"] and ver["fidelity"]["sqnr_db"] > 10
    assert not any(f["code"] == "QF106" and not f.get("applied") for f in report["findings"])
    with zipfile.ZipFile(report["outputs"]["model"]) as z:
        frame = next(l for l in json.loads(z.read("config.json"))["config"]["layers"] if l["name"] == "frame")
    assert frame["config"]["dtype"] == "float32"
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=report["outputs"]["tflite"])
    assert interp.get_input_details()[0]["dtype"] == np.uint8  # the device still takes the raw frame


def test_fixed_model_computes_the_original_layer_on_the_same_values(tmp_path):
    """The original cannot run in TensorFlow; its Conv2D called on a float32 copy of the uint8
    frame is what it means, and the fixed model gives exactly that."""
    import keras

    path = save_with("k3", conv, tmp_path / "conv.keras")
    code, report = qfix(str(path), "--target", "int8")
    assert code == 0
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("uint8")
    want = np.asarray(original.get_layer("conv")(x.astype("float32")))
    np.testing.assert_array_equal(np.asarray(fixed(x.astype("float32"))), want)
