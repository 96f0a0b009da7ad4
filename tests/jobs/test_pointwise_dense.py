"""QF311 end to end (issue 9, the fleet's ConvNeXt on the Edge TPU): a Dense over the channels of a
4-D feature map or of a token sequence converts to a FULLY_CONNECTED with an N-D output, which
the Edge TPU does not map, so the graph was cut at the first such layer. The fix writes it as the
1×1 convolution it is: same outputs (float diff 0), and the model runs fully on the Edge TPU.
Both dialects, a functional feature map and a Sequential over tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf


def feature_map(K):
    i = K.Input((4, 4, 8))
    x = K.layers.Conv2D(8, 1, name="stem")(i)
    x = K.layers.Dense(16, activation="relu", name="pw1")(x)
    return K.Model(i, K.layers.Dense(4, name="pw2")(x))


def tokens(K):
    return K.Sequential([K.Input((6, 8)), K.layers.Dense(16, name="mlp")])


def qfix(*args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "qfix", *args, "--target", "edgetpu", "--samples", "4",
                           "--format", "json"], capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
@pytest.mark.parametrize(("build", "layers", "conv"), [(feature_map, ["pw1", "pw2"], "Conv2D"), (tokens, ["mlp"], "Conv1D")])
def test_pointwise_dense_becomes_a_1x1_conv(tmp_path, dialect, build, layers, conv):
    path = save_with(dialect, build, tmp_path / f"{build.__name__}_{dialect}.keras")
    code, report = qfix(str(path), "--check")
    assert code == 1
    assert sorted(f["location"]["layer"] for f in report["findings"] if f["code"] == "QF311") == layers
    assert report["verification"]["first_unsupported"]["op"] == "FULLY_CONNECTED"

    code, report = qfix(str(path))
    assert code == 0
    kept = [f for f in report["fixes"] if f["code"] == "QF311"]
    assert [f["layer"] for f in kept] == layers and all(f["state"] == "kept" and conv in f["note"] for f in kept)
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-6
    before, after = report["before"], report["verification"]
    assert after["fully_on_target"] and after["ops_on_target"] > before["ops_on_target"]
    assert "FULLY_CONNECTED" not in [o["op"] for o in after["ops"]]
