"""A rewrite rolled back as "no effect" says where the rewritten model is cut when that is the
rewrite's own op (review of issue 9: UpSampling2D(4) from 64 to 256 as Resizing is one
RESIZE_NEAREST_NEIGHBOR, which the Edge TPU does not map at 256x256; the rollback read only
"2/4 ops on target ... as before" while the table still promised the rewrite)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.tf


def test_the_rollback_names_the_cut_the_rewrite_made(tmp_path):
    import keras

    x = keras.Input((64, 64, 3))
    y = keras.layers.UpSampling2D(4, interpolation="nearest", name="up")(keras.layers.Conv2D(4, 3, padding="same")(x))
    keras.Model(x, y).save(tmp_path / "up.keras")
    proc = subprocess.run([sys.executable, "-m", "qfix", str(tmp_path / "up.keras"), "--format", "json",
                           "--samples", "4", "--out-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    assert proc.returncode == report["exit_code"] == 1, proc.stderr
    (fix,) = [f for f in report["fixes"] if f["code"] == "QF308"]
    assert fix["state"] == "no effect"
    assert "rewritten, the model is cut at RESIZE_NEAREST_NEIGHBOR (up): " in fix["reason"]
    assert "256x256" in fix["reason"]
