"""`qfix --mode qat` on a float→float cast (issue 10's review: k3_ops, cast_probe.py): Keras 3's
`ops.cast(x, "float32")` on a float32 tensor, translated to a tf_keras `tf.cast`, and tf_keras's
own `tf.cast(x, tf.float32)`, made tfmot's quantize_model fail ("expected ndim=4, found ndim=5")
and QF303 report a CAST. The cast is the identity: it is removed before tfmot runs, the model
trains, QF303's CAST is resolved and the written model has no cast. Through the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from tests.jobs.test_qat_job import ROOT, qat_json

BUILD = {
    "keras3": """
import sys, keras
from keras import ops
L = keras.layers
i = keras.Input((16, 16, 3)); x = L.Conv2D(8, 3)(i); x = ops.cast(x, "float32")
keras.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(x))).save(sys.argv[1])
""",
    "tf_keras": """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf, tf_keras as keras
L = keras.layers
i = keras.Input((16, 16, 3)); x = L.Conv2D(8, 3)(i); x = tf.cast(x, tf.float32)
keras.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(x))).save(sys.argv[1])
""",
}


@pytest.mark.tf
@pytest.mark.parametrize("dialect", sorted(BUILD))
def test_a_float_to_float_cast_is_removed_and_the_model_trains(dialect, tmp_path):
    src = tmp_path / f"cast_{dialect}.keras"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run([sys.executable, "-c", BUILD[dialect], str(src)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    code, report = qat_json(src, "--out-dir", out)
    qat = report["qat"]
    assert qat["tfmot_error"] is None and qat["trained"], qat["problems"]
    assert qat["problems"] == [] and code == 0, (qat["problems"], report["findings"])
    casts = [f for f in report["findings"] if f["code"] == "QF303"]
    assert casts and all(f["applied"] and "removed" in f["message"] for f in casts), casts
    assert any("cast" in n and "removed" in n for n in qat["translation_notes"]), qat["translation_notes"]
    assert report["float_equivalence"]["max_abs_diff"] == 0.0
    written = out / f"cast_{dialect}.qfix.qat.keras"
    config = json.loads(zipfile.ZipFile(written).read("config.json"))
    assert not [l for l in config["config"]["layers"] if l["config"].get("function") == "cast"]
