"""tf_keras's GlobalAveragePooling on an integer model input (second review: uint8 got no finding
and an int8 model with no usable signal, int8 a bare QF909). tf_keras takes that mean in the
integer type, truncated; TFLite keeps no integer MEAN in the integer model. QF106 names the
pooling with the input fold, unsafe (the float mean is up to 1 from the truncated one): without
--unsafe-fixes the run says so and ends with blockers, with it the model runs fully on the Edge
TPU, the report states the float delta, and the fixed model takes the exact float mean."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.build import save_with
from tests.jobs.test_integer_input_layers import RANGES, load, qfix

pytestmark = pytest.mark.tf

# name: (layer class, input shape, dtype, what the plain conversion of the original gives)
MEMBERS = {
    "gap2d_uint8": ("GlobalAveragePooling2D", (8, 8, 3), "uint8", "cast"),  # a uint8 MEAN, then a CAST
    "gap1d_int8": ("GlobalAveragePooling1D", (8, 3), "int8", "refused"),  # 'tf.Mean' ... neither a custom op
}


def build(name):
    cls, shape, dtype, _ = MEMBERS[name]

    def make(K):
        i = K.Input(shape, dtype=dtype, name="frame")
        return K.Model(i, K.layers.Dense(2, name="head")(getattr(K.layers, cls)(name="layer")(i)))

    return make


@pytest.fixture(scope="module", params=list(MEMBERS))
def member(request, tmp_path_factory):
    name = request.param
    return name, save_with("tfk", build(name), tmp_path_factory.mktemp(name) / f"{name}.keras")


def test_named_unsafe_and_not_applied_without_the_flag(member, tmp_path):
    name, path = member
    code, report = qfix(str(path), "--target", "edgetpu", "--samples", "4", "--out-dir", str(tmp_path))
    assert code == 1
    # a blocker even where every op of the pooling runs on the target (uint8): the MEAN gives zeros
    assert [(f["location"]["layer"], f["severity"], f["fix"]["applicability"], bool(f.get("applied")))
            for f in report["findings"] if f["code"] == "QF106"] == [("layer", "blocker", "unsafe", False)]
    assert "truncated" in next(f["message"] for f in report["findings"] if f["code"] == "QF106")
    assert report["unsafe_fixes_available"]
    if MEMBERS[name][3] == "refused":
        assert report["verification"]["converted"] is False
        assert "'tf.Mean' op is neither a custom op nor a flex op" in report["verification"]["reason"]
    else:
        assert report["verification"]["converted"] and not report["verification"]["fully_on_target"]


def test_unsafe_fold_runs_fully_and_takes_the_float_mean(member, tmp_path):
    name, path = member
    _, shape, dtype, before = MEMBERS[name]
    code, report = qfix(str(path), "--target", "edgetpu", "--samples", "4", "--unsafe-fixes",
                        "--out-dir", str(tmp_path))
    assert code == 0 and report["verification"]["fully_on_target"], report["verification"]
    assert [s["state"] for s in report["fixes"] if s["code"] == "QF106"] == ["kept"]
    if before == "refused":
        assert "'tf.Mean' op is neither a custom op nor a flex op" in report["before_failure"]
    else:
        assert report["before"]["first_unsupported"]["op"] == "CAST" and not report["before"]["fully_on_target"]
    delta = report["float_equivalence"]["max_abs_diff"]

    original, fixed = load(path, "tfk"), load(report["outputs"]["model"], "tfk")
    lo, hi = RANGES[dtype]
    x = np.random.default_rng(0).integers(lo, hi, (8, *shape)).astype(dtype)
    axes = tuple(range(1, len(shape)))
    kernel, bias = original.get_layer("head").get_weights()
    exact = x.astype("float64").mean(axis=axes) @ kernel + bias  # the float mean, through the head
    assert np.max(np.abs(np.asarray(fixed(x.astype("float32")), "float64") - exact)) <= 1e-4
    truncated = np.asarray(original(x), "float64")  # tf_keras's own model: the truncated mean
    assert np.max(np.abs(truncated - exact)) > 1e-3  # the fold does change the numbers...
    assert np.max(np.abs(truncated - exact)) <= np.abs(kernel).sum(axis=0).max()  # ...by less than 1 per mean
    assert 0 < delta <= np.abs(kernel).sum(axis=0).max()  # and the report says by how much
