"""A tf_keras model whose layers carry TensorFlow's own initializers (`tf.constant_initializer`,
as the head of tf_keras's EfficientNetV2 does) was refused before loading (QF917: "not Keras"):
every tf_keras EfficientNetV2 of the fleet ended with exit 2. It now checks, converts and gets
its fixed model written like any other, through the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf


def head(K):
    import tensorflow as tf

    i = K.Input((8, 8, 3))
    x = K.layers.Conv2D(4, 3, padding="same", bias_initializer=tf.zeros_initializer())(i)
    x = K.layers.GlobalAveragePooling2D()(x)
    return K.Model(i, K.layers.Dense(2, bias_initializer=tf.constant_initializer(0.5), name="predictions")(x))


def test_tensorflow_initializers_load_and_convert(tmp_path):
    path = save_with("tfk", head, tmp_path / "head.keras")
    with zipfile.ZipFile(path) as z:
        assert b"tensorflow.python.ops.init_ops_v2" in z.read("config.json")  # what the fleet met
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), "--target", "int8", "--samples", "4",
                           "--format", "json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verification"]["fully_on_target"]
    assert report["verification"]["fidelity"]["sqnr_db"] > 10
    assert "QF917" not in proc.stdout + proc.stderr
