"""A rolled tf_keras LSTM on the Edge TPU (user review: no fix), on tiny real models and real
conversions: the smallest input and other members of its kind.

tf_keras converts a rolled LSTM with its defaults to the fused UNIDIRECTIONAL_SEQUENCE_LSTM
(int8, int16 cell state), which the Edge TPU does not compute: the graph was cut at the LSTM,
QF304 the only blocker, no fix. QF305 now unrolls it (exact) where the target cannot run that
kernel, and only there (the int8 CPU runs it). Off its fused path (after a Masking layer) the
same LSTM is a WHILE loop whose calibration crashes: QF305's first reason, on every integer
target, and the crash line names it."""

from __future__ import annotations

import os

import pytest

from fixtures.build import save_all
from qfix.types import Applicability

from tests.jobs.test_isolation import leftovers
from tests.jobs.test_rnn_family import by_code, findings, run

pytestmark = pytest.mark.tf


def _tfk_lstm(K):  # the review's model
    i = K.Input((8, 4), name="seq")
    return K.Model(i, K.layers.Dense(2)(K.layers.LSTM(6, name="lstm")(i)))


def _tfk_stacked(K):  # another member: stacked, the first returning its sequence, the second backwards
    i = K.Input((8, 4), name="seq")
    x = K.layers.LSTM(6, return_sequences=True, name="lstm_a")(i)
    x = K.layers.LSTM(5, go_backwards=True, name="lstm_b")(x)
    return K.Model(i, K.layers.Dense(2)(x))


def _tfk_bilstm(K):  # another member: one fused LSTM per direction
    i = K.Input((8, 4), name="seq")
    return K.Model(i, K.layers.Dense(2)(K.layers.Bidirectional(K.layers.LSTM(6), name="bi")(i)))


def _tfk_masked(K):  # off the fused path: a mask makes it a WHILE loop
    i = K.Input((8, 4), name="seq")
    x = K.layers.Masking(0.0, name="mask")(i)
    return K.Model(i, K.layers.Dense(2)(K.layers.LSTM(6, name="lstm")(x)))


MODELS = {"tfk_lstm": ("tfk", _tfk_lstm), "tfk_stacked": ("tfk", _tfk_stacked),
          "tfk_bilstm": ("tfk", _tfk_bilstm), "tfk_masked": ("tfk", _tfk_masked)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return save_all(tmp_path_factory.mktemp("tfk_lstm"), MODELS)


@pytest.mark.parametrize("name,layers", [("tfk_lstm", ["lstm"]), ("tfk_stacked", ["lstm_a", "lstm_b"]),
                                         ("tfk_bilstm", ["bi"])])
def test_fused_lstm_gets_qf305_only_where_the_target_cannot_run_it(models, name, layers):
    found = findings(models[name], "QF305")
    assert [v.location.layer for v in found] == layers
    for v in found:
        assert v.fix.applicability is Applicability.SAFE and v.fix.edits
        assert "fused UNIDIRECTIONAL_SEQUENCE_LSTM" in v.message and "int16" in v.message
        assert "WHILE" not in v.message  # the crash is not this case's reason
    for target in ("int8", "tflm", "ethos-u55"):  # they run the fused kernel and its int16 state
        assert findings(models[name], "QF305", target) == [], target


@pytest.mark.parametrize("name,layers", [("tfk_lstm", ["lstm"]), ("tfk_stacked", ["lstm_a", "lstm_b"])])
def test_main_job_unrolls_it_and_runs_fully_on_the_edge_tpu(models, name, layers, tmp_path):
    proc, report = run(models[name], tmp_path, "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, report["verification"]["first_unsupported"]
    assert [(f["layer"], f["applied"]) for f in by_code(report, "QF305")] == [(l, True) for l in layers]
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5
    ver = report["verification"]
    assert ver["fully_on_target"], ver["first_unsupported"]
    assert {o["op"] for o in ver["ops"]}.isdisjoint({"UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE", "UNPACK"})
    assert not by_code(report, "QF304")
    assert leftovers(tmp_path) == []


def test_int8_keeps_the_fused_lstm(models, tmp_path):
    proc, report = run(models["tfk_lstm"], tmp_path, "--target", "int8", "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 0 and not by_code(report, "QF305") and not by_code(report, "QF304")
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in {o["op"] for o in report["verification"]["ops"]}
    assert report["verification"]["fully_on_target"]


def test_masked_lstm_is_the_crashing_loop_and_is_unrolled(models, tmp_path):
    """After a Masking layer tf_keras's LSTM is a WHILE loop, whose calibration crashed with a
    bare QF909 (exit 2) on every integer target: QF305's first reason, and the fix is proved."""
    (v,) = findings(models["tfk_masked"], "QF305", "int8")
    assert v.location.layer == "lstm" and "WHILE loop" in v.message and "no mask" in v.message
    assert v.fix.applicability is Applicability.SAFE and v.fix.edits
    proc, report = run(models["tfk_masked"], tmp_path, "--target", "int8", "--out-dir", str(tmp_path / "out"))
    assert [(f["layer"], f["applied"]) for f in by_code(report, "QF305")] == [("lstm", True)]
    assert "likely layer 'lstm' (LSTM)" in report["before_failure"]
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5
    ver = report["verification"]
    assert ver["converted"] and "WHILE" not in {o["op"] for o in ver["ops"]}
    # What still blocks is the Masking's own float NOT_EQUAL (QF304/QF405 on 'mask'), not the LSTM.
    assert proc.returncode == 1 and ver["first_unsupported"]["layer"] == "mask"
    assert not [o for o in ver["ops"] if o["layer"] == "lstm" and not o["on_target"]]
    assert leftovers(tmp_path) == []
