"""Isolation and limits (issue 8, kind 7): whatever loads, converts or interprets a model runs
in the worker child. A native crash, the stage time limit or the memory limit ends the run with
one QF909 line naming the stage, exit 2, no process and no run folder left behind — through the
installed console script, on real models. A crash whose cause qfix knows (issue 9, fault 1: a
rolled Keras 3 RNN) is the model's verdict instead, and the main job fixes it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qfix.targets import load_profile

from qfix.convert.worker import WorkerFailure, memory_limit, stage_timeout
from qfix.jobs.prove import crash_hint
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.types import QfixError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent)) or "qfix"
CALIBRATING = "calibrating in the TFLite converter"


def qfix(*args: str, tmp: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the console script with a private TMPDIR (`tmp/tmp`), to find what a run leaves."""
    (tmp / "tmp").mkdir(exist_ok=True)
    environ = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp / "tmp"), **env)
    return subprocess.run([QFIX, *args], capture_output=True, text=True, env=environ, timeout=300)


def leftovers(tmp: Path) -> list[str]:
    """Processes that still carry this test's folder (the worker's TMPDIR is inside it), and
    files left in the private TMPDIR."""
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if str(tmp).encode() in environ and int(pid) != os.getpid():
            procs.append(f"pid {pid}")
    return procs + [p.name for p in (tmp / "tmp").iterdir()]


def one_qf909_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("QF909 "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


# --- the crash of issue 8: Keras 3 rolled GRU, int8 calibration --------------------------------


@pytest.mark.tf
def test_explained_converter_crash_is_the_check_runs_verdict(tmp_path):
    """A crash whose cause qfix knows (crash_hint names the layer) is reported with the static
    finding that explains it (QF305, with its fix): one 'not converted' line naming the stage
    and the layer, exit 1, nothing left behind."""
    proc = qfix(str(FIXTURES / "gru_k3.keras"), "--check", "--samples", "4", "--format", "json", tmp=tmp_path)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    report = json.loads(proc.stdout)
    reason = report["verification"]["reason"]
    assert report["verification"]["converted"] is False
    assert "converting for edgetpu crashed (SIG" in reason and CALIBRATING in reason, reason
    assert "likely layer 'gru' (GRU)" in reason, reason
    assert [(f["code"], f["layer"]) for f in report["findings"] if f["code"] == "QF305"] == [("QF305", "gru")]
    assert leftovers(tmp_path) == []


@pytest.mark.tf
def test_converter_crash_in_the_main_job_writes_nothing(tmp_path):
    """Without the fix that avoids it (--ignore QF305), the model's conversion crashes: the
    main job reports it as the check run does ('not converted', naming the stage and the
    layer), exit 1, the input untouched, nothing written, nothing left behind."""
    out = tmp_path / "out"
    model = tmp_path / "gru_k3.keras"
    shutil.copy(FIXTURES / "gru_k3.keras", model)
    before = model.read_bytes()
    proc = qfix(str(model), "--out-dir", str(out), "--samples", "4", "--ignore", "QF305", "--format", "json",
                tmp=tmp_path)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    reason = json.loads(proc.stdout)["verification"]["reason"]
    assert "crashed (SIG" in reason and CALIBRATING in reason and "'gru'" in reason, reason
    assert model.read_bytes() == before
    assert not out.exists() or list(out.iterdir()) == []
    assert leftovers(tmp_path) == []


@pytest.mark.tf
def test_main_job_fixes_the_model_whose_original_conversion_crashes(tmp_path):
    """Issue 9 fault 1: the original crashes the converter; the main job says so ("before"),
    applies QF305's unroll=True and proves the fixed model: converted, no WHILE, same float
    outputs, written."""
    out = tmp_path / "out"
    proc = qfix(str(FIXTURES / "gru_k3.keras"), "--target", "int8", "--out-dir", str(out), "--samples", "4",
                "--format", "json", tmp=tmp_path)
    assert proc.returncode in (0, 1) and proc.stderr == "", proc.stderr
    report = json.loads(proc.stdout)
    assert "crashed (SIG" in report["before_failure"] and "'gru'" in report["before_failure"]
    assert report["before"] is None
    assert [(f["code"], f["state"]) for f in report["fixes"] if f["code"] == "QF305"] == [("QF305", "kept")]
    ver = report["verification"]
    assert ver["converted"] and "WHILE" not in {o["op"] for o in ver["ops"]}
    # TF 2.21 leaves the first time step's SPLIT in float on some conversions (not every one
    # of the same model): the only float island the unrolled GRU may keep.
    island = {o["op"] for o in ver["ops"] if not o["on_target"]}
    assert island <= {"DEQUANTIZE", "SPLIT", "QUANTIZE"}, island
    assert ver["fully_on_target"] == (not island) and (proc.returncode == 0) == (not island)
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5
    assert sorted(p.name for p in out.iterdir()) == ["gru_k3.qfix.int8.tflite", "gru_k3.qfix.keras"]
    assert leftovers(tmp_path) == []


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.tf
def test_stage_time_limit_kills_the_worker(tmp_path):
    proc = qfix(str(FIXTURES / "tiny_cnn_k3.keras"), "--check", tmp=tmp_path, QFIX_STAGE_TIMEOUT="1")
    line = one_qf909_line(proc)
    assert "exceeded the time limit (1 s)" in line and "QFIX_STAGE_TIMEOUT" in line, line
    assert leftovers(tmp_path) == []


@pytest.mark.tf
def test_memory_limit_is_one_line(tmp_path):
    proc = qfix(str(FIXTURES / "tiny_cnn_k3.keras"), "--check", tmp=tmp_path, QFIX_MEMORY_LIMIT="300M")
    line = one_qf909_line(proc)
    assert "ran out of memory (limit 300 MiB)" in line and "QFIX_MEMORY_LIMIT" in line, line
    assert leftovers(tmp_path) == []


def test_bad_limit_values_are_usage_errors(tmp_path):
    model = str(FIXTURES / "tiny_cnn_k3.keras")
    for env in ({"QFIX_STAGE_TIMEOUT": "soon"}, {"QFIX_STAGE_TIMEOUT": "0"}, {"QFIX_MEMORY_LIMIT": "lots"}):
        proc = qfix(model, "--check", tmp=tmp_path, **env)
        assert proc.returncode == 2 and proc.stderr.startswith("QF914 "), proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and next(iter(env)) in proc.stderr
    assert leftovers(tmp_path) == []


def test_limit_parsing(monkeypatch):
    monkeypatch.setenv("QFIX_MEMORY_LIMIT", "1.5G")
    assert memory_limit() == 3 << 29
    monkeypatch.setenv("QFIX_MEMORY_LIMIT", "512MiB")
    assert memory_limit() == 512 << 20
    monkeypatch.setenv("QFIX_MEMORY_LIMIT", "0")
    assert memory_limit() is None
    monkeypatch.delenv("QFIX_MEMORY_LIMIT")
    assert memory_limit() >= 4 << 30  # the default never goes under what a real model needs
    monkeypatch.setenv("QFIX_STAGE_TIMEOUT", "2.5")
    assert stage_timeout() == 2.5
    monkeypatch.setenv("QFIX_STAGE_TIMEOUT", "-1")
    with pytest.raises(QfixError, match="QF914"):
        stage_timeout()


# --- the likely-layer table ----------------------------------------------------------------


def _graph(name: str):
    archive = read_archive(FIXTURES / name)
    return build_graph(archive.config, archive.dialect), archive.config


def test_crash_hint_names_a_rolled_keras3_rnn_only_in_the_converter():
    graph, _ = _graph("gru_k3.keras")
    assert "'gru' (GRU)" in crash_hint(graph, WorkerFailure("m", "crash", CALIBRATING))
    assert crash_hint(graph, WorkerFailure("m", "crash", "interpreting the converted model")) is None
    assert crash_hint(graph, WorkerFailure("m", "timeout", CALIBRATING)) is None
    unrolled, _ = _graph("gru_k3.keras")
    unrolled.layers["gru"].config["unroll"] = True
    assert crash_hint(unrolled, WorkerFailure("m", "crash", CALIBRATING)) is None
    cnn, _ = _graph("tiny_cnn_k3.keras")
    assert crash_hint(cnn, WorkerFailure("m", "crash", CALIBRATING)) is None


# --- the parent never imports TensorFlow -------------------------------------------------------

_PARENT = """
import json, sys
from qfix.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization"))
litert = sorted(m for m in sys.modules if m.startswith("ai_edge_litert"))
print(json.dumps({"code": code, "heavy": heavy, "litert": litert}), file=sys.stderr)
"""


@pytest.mark.tf
def test_the_parent_imports_no_tensorflow(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _PARENT, str(FIXTURES / "leaky_relu_cnn_k3.keras"), "--check",
                           "--samples", "4", "--format", "json"], capture_output=True, text=True, env=env, timeout=300)
    report = json.loads(proc.stdout)
    seen = json.loads(proc.stderr.splitlines()[-1])
    assert seen["code"] == 1 and report["verification"]["converted"], proc.stderr
    assert seen["heavy"] == []
    # targets.tflite reads the flatbuffer with the schema module alone (flatbuffers, no TF)
    assert set(seen["litert"]) <= {"ai_edge_litert", "ai_edge_litert.schema_py_generated"}


# --- the worker never outlives the run ---------------------------------------------------------


@pytest.mark.tf
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_the_worker_dies_with_the_parent(tmp_path, sig):
    """Killed outright, the parent cannot clean up: the child still dies (PR_SET_PDEATHSIG).
    Interrupted, the parent's `finally` kills the child and removes the run folder."""
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path / "tmp"))
    parent = subprocess.Popen([QFIX, str(FIXTURES / "tiny_cnn_k3.keras"), "--check"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "tmp").glob("qfix-run-*/keras-home")):  # the child is up
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        parent.send_signal(sig)
        parent.wait(30)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 2  # the child is still importing TF: only a kill ends it this soon
    while [p for p in leftovers(tmp_path) if p.startswith("pid")] and time.monotonic() < deadline:
        time.sleep(0.2)
    left = leftovers(tmp_path)
    assert [p for p in left if p.startswith("pid")] == []
    if sig == signal.SIGINT:
        assert left == []


@pytest.mark.tf
def test_worker_stages_round_trip_and_clean_up():
    """The parent's API on a real child: a model loads once and serves every stage; a dropped
    model is gone from the child; the run folder goes with the session."""
    from qfix.convert.calibration import load_calibration
    from qfix.model.inputs import input_specs
    from qfix.convert.worker import session

    graph, _ = _graph("tiny_cnn_k3.keras")
    calib = load_calibration(None, input_specs(graph), n=3)
    with session() as worker:
        model = worker.load(FIXTURES / "tiny_cnn_k3.keras", "keras3", None, False)
        converted = worker.convert(model, load_profile("edgetpu").recipe, calib, "converting")
        assert converted.tflite[4:8] == b"TFL3"
        fid = worker.fidelity(model, converted.tflite, calib, "comparing")
        assert fid.samples == 3 and fid.sqnr_db > 20
        assert worker.float_equivalence(model, model, calib, "comparing") == 0.0
        worker.drop(model)
        with pytest.raises(QfixError, match="QF909 converting failed: KeyError"):
            worker.convert(model, load_profile("edgetpu").recipe, calib, "converting")
        run_dir = worker.run_dir
    assert not run_dir.exists()


@pytest.mark.tf
def test_main_job_reports_an_explained_crash_no_fix_avoids(tmp_path):
    """A rolled RNN on a dynamic length cannot be unrolled (QF305 display-only): the main job
    gives the check run's verdict — the finding, 'not converted', exit 1 — and writes nothing."""
    import keras

    path = tmp_path / "dyn_rnn.keras"
    i = keras.Input((None, 8))
    keras.Model(i, keras.layers.Dense(3)(keras.layers.SimpleRNN(4, name="rnn")(i))).save(path)
    out = tmp_path / "out"
    proc = qfix(str(path), "--target", "int8", "--out-dir", str(out), "--samples", "4", "--format", "json",
                tmp=tmp_path)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    report = json.loads(proc.stdout)
    assert report["verification"]["converted"] is False and "likely layer 'rnn'" in report["verification"]["reason"]
    assert [f["layer"] for f in report["findings"] if f["code"] == "QF305"] == ["rnn"]
    assert report["outputs"] == {"model": None, "tflite": None} and not out.exists()
    assert leftovers(tmp_path) == []
