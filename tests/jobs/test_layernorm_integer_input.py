"""A uint8 input into LayerNormalization (review of issue 9). QF102 called the fold of its cast
safe in both dialects, and the main job rolled it back ("no effect", then "float delta 382"):
Keras 3's LayerNormalization takes the mean and variance of an integer input in that integer
type, so float32 inputs change its outputs. In Keras 3 the fold is now unsafe (named so, applied
with --unsafe-fixes, its delta reported); tf_keras's casts first, so there it stays safe and
exact."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf


def normalized(K):
    i = K.Input((8,), dtype="uint8", name="x")
    return K.Model(i, K.layers.Dense(2, name="head")(K.layers.LayerNormalization(name="ln")(i)))


def run(path, *extra):
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), "--format", "json", *extra],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, json.loads(proc.stdout)


def qf102(report):
    return [(f["location"]["layer"], f["fix"]["applicability"], bool(f.get("applied")))
            for f in report["findings"] if f["code"] == "QF102"]


def test_keras3_fold_is_unsafe_and_applied_only_when_asked(tmp_path):
    import keras

    path = save_with("k3", normalized, tmp_path / "ln_k3.keras")
    code, report = run(path, "--out-dir", str(tmp_path / "a"))
    assert code == 1 and qf102(report) == [("ln", "unsafe", False)]
    assert "QF102" in report["unsafe_fixes_available"]
    code, report = run(path, "--unsafe-fixes", "--out-dir", str(tmp_path / "b"))
    assert qf102(report) == [("ln", "unsafe", True)]
    assert report["verification"]["fully_on_target"] and code == 0
    # the delta is the integer moments' against the true ones: reported, not hidden
    x = np.random.default_rng(0).integers(0, 256, (4, 8)).astype("uint8")
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    delta = float(np.max(np.abs(np.asarray(original(x)) - np.asarray(fixed(x.astype("float32"))))))
    assert delta > 1e-3 and report["float_equivalence"]["max_abs_diff"] > 1e-3


def test_tf_keras_fold_is_safe_and_exact(tmp_path):
    path = save_with("tfk", normalized, tmp_path / "ln_tfk.keras")
    code, report = run(path, "--out-dir", str(tmp_path / "a"))
    assert qf102(report) == [("ln", "safe", True)]
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5
    # the CAST is gone; tf_keras's own LayerNormalization lowering (a MEAN over the batch axis)
    # is the next cut, a finding of its own
    ver = report["verification"]
    assert ver["first_unsupported"]["op"] != "CAST" and not ver["float_tensors"]
    assert [f["state"] for f in report["fixes"] if f["code"] == "QF102"] == ["kept"]
