"""The recurrent layers as one family (review 9, F1 and F3/F6), on tiny real models of both
dialects and real conversions: each fault's smallest input and another member of its kind.

F1: a rolled ConvLSTM2D crashed the converter with no layer named and had no static finding.
F3/F6: a Bidirectional(LSTM) unrolled by QF305 still cut the Edge TPU's graph at UNPACK while
QF303 said "resolved by another fix", QF305 promised plain ops, and tf_keras's backward pass
(REVERSE_V2, no layer scope) was charged to no layer. Now the conversion reads the steps with
STRIDED_SLICE (exact), and "resolved" is checked against the verified placement."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qfix.convert.worker import WorkerFailure
from fixtures.build import save_all
from qfix.jobs.check import Options, context
from qfix.jobs.prove import crash_hint
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.rules.lint import lint
from qfix.targets import load_profile
from qfix.types import Applicability

from tests.jobs.test_isolation import CALIBRATING, leftovers, qfix

pytestmark = pytest.mark.tf


def _k3_convlstm2d(K):  # F1, smallest (review 9: m/convlstm.keras)
    x = K.Input((3, 8, 8, 2))
    return K.Model(x, K.layers.Flatten()(K.layers.ConvLSTM2D(2, 3, padding="same", name="clstm")(x)))


def _k3_convlstm1d(K):  # another member: ConvLSTM1D returning its sequence
    x = K.Input((3, 6, 2))
    y = K.layers.ConvLSTM1D(2, 3, padding="same", return_sequences=True, name="clstm")(x)
    return K.Model(x, K.layers.Flatten()(y))


def _tfk_convlstm1d(K):  # tf_keras: crashes too, and cannot be unrolled
    x = K.Input((3, 6, 2))
    return K.Model(x, K.layers.Flatten()(K.layers.ConvLSTM1D(2, 3, padding="same", name="clstm")(x)))


def _k3_bilstm(K):  # F3, smallest (review 9: m/bilstm.keras)
    x = K.Input((6, 4))
    return K.Model(x, K.layers.Dense(2)(K.layers.Bidirectional(K.layers.LSTM(4), name="bi")(x)))


def _k3_backward_gru(K):  # another member: a go_backwards GRU
    x = K.Input((5, 4))
    return K.Model(x, K.layers.Dense(2)(K.layers.GRU(4, go_backwards=True, name="rnn")(x)))


def _tfk_bilstm(K):  # F6, smallest (review 9: t/tfk_bilstm.keras)
    x = K.Input((6, 4))
    return K.Model(x, K.layers.Dense(2)(K.layers.Bidirectional(K.layers.LSTM(4), name="bi")(x)))


def _tfk_backward_lstm(K):  # another member: a go_backwards LSTM (fused, plus a REVERSE_V2)
    x = K.Input((5, 4))
    return K.Model(x, K.layers.Dense(2)(K.layers.LSTM(4, go_backwards=True, name="rnn")(x)))


MODELS = {
    "k3_convlstm2d": ("k3", _k3_convlstm2d), "k3_convlstm1d": ("k3", _k3_convlstm1d),
    "tfk_convlstm1d": ("tfk", _tfk_convlstm1d), "k3_bilstm": ("k3", _k3_bilstm),
    "k3_backward_gru": ("k3", _k3_backward_gru), "tfk_bilstm": ("tfk", _tfk_bilstm),
    "tfk_backward_lstm": ("tfk", _tfk_backward_lstm),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return save_all(tmp_path_factory.mktemp("rnn_family"), MODELS)


def findings(path: Path, code: str, target: str = "edgetpu"):
    a = read_archive(path)
    return [v for v in lint(build_graph(a.config, a.dialect), context(load_profile(target), Options()))
            if v.code == code]


def run(path: Path, tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = qfix(str(path), "--samples", "4", "--format", "json", *args, tmp=tmp)
    assert proc.stderr == "", proc.stderr
    return proc, json.loads(proc.stdout)


def by_code(report: dict, code: str) -> list[dict]:
    return [f for f in report["findings"] if f["code"] == code]


# --- F1: ConvLSTM ------------------------------------------------------------------------------


def test_rolled_conv_lstm_gets_qf305_and_the_crash_hint(models):
    for name in ("k3_convlstm2d", "k3_convlstm1d"):
        (v,) = findings(models[name], "QF305")
        assert v.location.layer == "clstm" and v.fix.applicability is Applicability.SAFE and v.fix.edits
        assert "STRIDED_SLICE" in v.fix.description  # how the Edge TPU reads the steps (no UNPACK)
        (on_int8,) = findings(models[name], "QF305", "int8")
        assert "STRIDED_SLICE" not in on_int8.fix.description  # int8 runs UNPACK: nothing to say
        a = read_archive(models[name])
        hint = crash_hint(build_graph(a.config, a.dialect), WorkerFailure("m", "crash", CALIBRATING))
        assert hint and "'clstm' (ConvLSTM" in hint and "unroll=True" in hint
    (v,) = findings(models["tfk_convlstm1d"], "QF305")  # tf_keras refuses unroll on a ConvLSTM
    assert v.location.layer == "clstm" and v.fix.applicability is Applicability.DISPLAY_ONLY and not v.fix.edits
    a = read_archive(models["tfk_convlstm1d"])
    hint = crash_hint(build_graph(a.config, a.dialect), WorkerFailure("m", "crash", CALIBRATING))
    assert "'clstm' (ConvLSTM1D)" in hint and "cannot unroll" in hint


def test_conv_lstm_main_job_unrolls_it_and_reports(models, tmp_path):
    """The smallest input (edgetpu): the original crashes, the unrolled model converts with the
    same float outputs; the Edge TPU still cuts at the layer (its 5-D input): a report,
    exit 1, the layer named everywhere. Another member (ConvLSTM1D, int8) converts whole."""
    proc, report = run(models["k3_convlstm2d"], tmp_path, "--out-dir", str(tmp_path / "o2"))
    assert proc.returncode == 1
    (qf305,) = by_code(report, "QF305")
    assert qf305["layer"] == "clstm" and qf305["applied"]
    assert report["verification"]["converted"] and report["float_equivalence"]["max_abs_diff"] <= 1e-5
    # The Edge TPU still cuts at the layer (its 5-D input): a cause of its own, QF304's. QF303's
    # cause (WHILE) is gone, so it is resolved, and no prediction claims QF304 proves it.
    assert report["verification"]["first_unsupported"]["layer"] == "clstm"
    assert {o["op"] for o in report["verification"]["ops"]}.isdisjoint({"WHILE", "UNPACK"})
    assert [(f["layer"], f["applied"]) for f in by_code(report, "QF303")] == [("clstm", True)]
    assert [(f["layer"], f["severity"]) for f in by_code(report, "QF304")] == [("clstm", "blocker")]
    assert not any("proves it" in f["message"] for f in report["findings"])

    proc, report = run(models["k3_convlstm1d"], tmp_path, "--target", "int8", "--out-dir", str(tmp_path / "o1"))
    assert proc.returncode in (0, 1)
    assert [(f["layer"], f["applied"]) for f in by_code(report, "QF305")] == [("clstm", True)]
    assert report["verification"]["converted"] and report["float_equivalence"]["max_abs_diff"] <= 1e-5
    assert "WHILE" not in {o["op"] for o in report["verification"]["ops"]}
    assert leftovers(tmp_path) == []


def test_conv_lstm_crash_without_the_fix_is_a_verdict_naming_the_layer(models, tmp_path):
    """Without QF305's rewrite the conversion crashes: a report (exit 1) whose reason names the
    stage and the layer, not a bare QF909 (exit 2); the batch fix alone is not 'the fixed model'."""
    out = tmp_path / "out"
    proc, report = run(models["k3_convlstm2d"], tmp_path, "--out-dir", str(out), "--ignore", "QF305")
    assert proc.returncode == 1
    reason = report["verification"]["reason"]
    assert "crashed (SIG" in reason and CALIBRATING in reason and "likely layer 'clstm' (ConvLSTM2D)" in reason
    assert "fixed model" not in reason, reason
    assert not out.exists() or list(out.iterdir()) == []
    proc, report = run(models["tfk_convlstm1d"], tmp_path, "--check")  # tf_keras: no fix avoids it
    assert proc.returncode == 1 and "likely layer 'clstm' (ConvLSTM1D)" in report["verification"]["reason"]
    assert leftovers(tmp_path) == []


# --- F3/F6: Bidirectional, go_backwards --------------------------------------------------------


@pytest.mark.parametrize("name,layer", [("k3_bilstm", "bi"), ("k3_backward_gru", "rnn")])
def test_unrolled_rnn_runs_on_the_edge_tpu_with_sliced_steps(models, name, layer, tmp_path):
    """QF305 unrolls the layer (same float outputs, no WHILE); the Edge TPU has no UNPACK, so
    qfix's conversion reads the steps with STRIDED_SLICE: the model runs fully on the target,
    and QF303's WHILE/REVERSE_V2 prediction is resolved (the placement agrees)."""
    (v,) = findings(models[name], "QF305")
    assert "STRIDED_SLICE" in v.fix.description
    proc, report = run(models[name], tmp_path, "--out-dir", str(tmp_path / "out"))
    assert [(f["layer"], f["applied"]) for f in by_code(report, "QF305")] == [(layer, True)]
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5
    ops = {o["op"] for o in report["verification"]["ops"]}
    assert "STRIDED_SLICE" in ops and ops.isdisjoint({"WHILE", "UNPACK", "REVERSE_V2"})
    assert report["verification"]["fully_on_target"], report["verification"]["first_unsupported"]
    assert all(f["applied"] for f in by_code(report, "QF303"))
    assert not [f for f in report["findings"] if f["code"] == "QF304"]
    assert leftovers(tmp_path) == []


def test_sliced_steps_are_bit_identical_to_unpack(models, tmp_path):
    """qfix.convert.unstack on a conversion that keeps its UNPACK (int8 runs it): the integer
    outputs are the same, bit for bit, on the smallest input (Bidirectional) and a ConvLSTM."""
    from ai_edge_litert.interpreter import Interpreter

    from qfix.convert.calibration import synthetic_calibration
    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.keras import input_specs, load_model
    from qfix.convert.unstack import slice_time_steps
    from qfix.jobs.fix import apply_fixes
    from qfix.model.writer import write_archive
    from qfix.targets.tflite import read_tflite

    def outputs(tflite: bytes, x: np.ndarray) -> np.ndarray:
        it = Interpreter(model_content=tflite)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    for name in ("k3_bilstm", "k3_convlstm1d"):
        a = read_archive(models[name])
        opts = Options(target="int8", select=["QF305"])
        config, weights, _, _ = apply_fixes(a.config, a.weights_bytes, a.dialect,
                                            context(load_profile("int8"), opts), opts, unsafe=False)
        fixed = load_model(write_archive(tmp_path / f"{name}.keras", config, a.metadata, weights), a.dialect)
        unpacked = convert(fixed, recipe_for("int8"), synthetic_calibration(input_specs(fixed), 4)).tflite
        sliced, n = slice_time_steps(unpacked)
        ops = [op.name for op in read_tflite(sliced).ops]
        assert n == 1 and "UNPACK" in {op.name for op in read_tflite(unpacked).ops} and "UNPACK" not in ops
        x = np.random.default_rng(0).integers(-128, 128, (8, *fixed.inputs[0].shape[1:]), dtype=np.int8)
        for sample in x:
            assert np.array_equal(outputs(unpacked, sample[None]), outputs(sliced, sample[None])), name


@pytest.mark.parametrize("name,layer", [("tfk_bilstm", "bi"), ("tfk_backward_lstm", "rnn")])
def test_tf_keras_backward_pass_is_charged_to_its_layer(models, name, layer, tmp_path):
    """tf_keras's fused LSTM reverses its input with a REVERSE_V2 whose tensors carry no layer
    scope: it is charged to the Bidirectional / go_backwards layer, in the finding and the table.
    (QF305 unrolls the fused LSTM on the Edge TPU, tests/jobs/test_tf_keras_lstm.py: ignored here.)"""
    proc = qfix(str(models[name]), "--samples", "4", "--out-dir", str(tmp_path / "out"), "--ignore", "QF305",
                tmp=tmp_path)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    assert "(None)" not in proc.stdout and "no Keras layer" not in proc.stdout
    _, report = run(models[name], tmp_path, "--check")
    first = report["verification"]["first_unsupported"]
    assert first["op"] == "REVERSE_V2" and first["layer"] == layer
    (qf304,) = by_code(report, "QF304")
    assert qf304["layer"] == layer and f"REVERSE_V2 (op {first['index']}) from layer '{layer}'" in qf304["message"]
    assert leftovers(tmp_path) == []


def test_unroll_is_exact_for_every_recurrent_class_that_takes_it(tmp_path):
    """Every RNN subclass of keras.layers / tf_keras.layers takes `unroll` in its config;
    unroll=True loads and computes the same outputs wherever the dialect accepts it (tf_keras
    refuses it on a ConvLSTM: UNROLLABLE)."""
    import inspect

    import keras
    import tf_keras

    from qfix.model.rewrites.unroll_rnn import RNN_CLASSES, UNROLLABLE

    for K, dialect in ((keras, "keras3"), (tf_keras, "tf_keras")):
        family = {n for n in dir(K.layers) if inspect.isclass(getattr(K.layers, n))
                  and issubclass(getattr(K.layers, n), K.layers.RNN)}
        assert family == set(RNN_CLASSES), (dialect, family)
        for cls in sorted(UNROLLABLE[dialect]):
            conv = cls.startswith("ConvLSTM")
            rank = int(cls[-2]) if conv else 0
            shape = (3, *([4] * rank), 2) if conv else (3, 2)
            args = (dict(filters=2, kernel_size=3, padding="same") if conv
                    else dict(cell=K.layers.SimpleRNNCell(2)) if cls == "RNN" else dict(units=2))
            K.utils.set_random_seed(0)
            x = K.Input(shape)
            rolled = K.Model(x, getattr(K.layers, cls)(**args, name="r")(x))
            config = rolled.get_config()
            layer = next(l for l in config["layers"] if l["config"]["name"] == "r")
            assert layer["config"].get("unroll") is False, (dialect, cls)
            layer["config"]["unroll"] = True
            unrolled = K.Model.from_config(config)
            unrolled.set_weights(rolled.get_weights())
            data = np.random.default_rng(0).uniform(-1, 1, (2, *shape)).astype("float32")
            assert np.max(np.abs(np.asarray(rolled(data)) - np.asarray(unrolled(data)))) <= 1e-5, (dialect, cls)
