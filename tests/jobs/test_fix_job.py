"""The main job end to end on real fixtures of both dialects: every fix is tested three ways —
the finding disappears, the float model computes the same (or the delta is reported), and the
converted model is better on the target than before. Real conversions, no mocks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qfix.model.graph import build_graph
from qfix.rules.lint import lint
from qfix.jobs.check import Options
from qfix.jobs.fix import run_fix
from qfix.rules.base import Context

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SAMPLES = 6

# fixture -> (codes whose findings must disappear, must the fixed model run fully on the Edge TPU)
CASES = {
    "leaky_relu_cnn_k3": ({"QF302", "QF301"}, True),
    "leaky_relu_cnn_tfk": ({"QF302", "QF301"}, True),
    "hard_swish_cnn_k3": ({"QF302", "QF301"}, True),
    # Flattening converts to the same .tflite: "no effect" under PTQ (test_fix_verdicts.py).
    "nested_k3": ({"QF301"}, True),
    "nested_tfk": ({"QF301"}, True),
    "two_input_k3": ({"QF101", "QF102", "QF301"}, True),
    "two_input_tfk": ({"QF102", "QF301"}, True),
    "int64_ids_k3": ({"QF103", "QF301"}, False),  # Embedding's GATHER stays off the Edge TPU
}


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.tf
@pytest.mark.parametrize("name", list(CASES))
def test_fix_three_ways(name, tmp_path):
    src = FIXTURES / f"{name}.keras"
    before_digest = digest(src)
    codes, fully = CASES[name]
    run = run_fix(src, Options(samples=SAMPLES), out_dir=tmp_path)

    # 1. the findings disappear from the written model
    fixed_graph = build_graph(json.loads(_member(Path(run.outputs["model"]), "config.json")), run.result.archive.dialect)
    left = {v.code for v in lint(fixed_graph, Context(run.result.profile))}
    assert not (codes & left), left
    assert {f.code for f in run.active} & codes
    assert all(v.applied for v in run.result.findings if v.code in codes)

    # 2. the float model computes the same (safe fixes)
    assert run.float_equivalence is not None and run.float_equivalence <= 1e-5

    # 3. the converted model is better on the target than before (or already was fully on it)
    b, a = run.before.placement, run.result.verification.placement
    assert a.fully_on_target is fully
    if not b.fully_on_target and fully:
        assert a.ops_on_target / a.ops_total > b.ops_on_target / b.ops_total
    assert run.result.verification.fidelity.sqnr_db >= run.before.fidelity.sqnr_db - 3.0

    # outputs beside each other, the input untouched
    assert Path(run.outputs["tflite"]).read_bytes() == run.result.verification.tflite
    assert digest(src) == before_digest
    assert not list(tmp_path.glob(".*.tmp"))


def _member(path: Path, name: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(name)


def qfix(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qfix", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.tf
def test_cli_main_job_writes_outputs_and_json(tmp_path):
    src = tmp_path / "two_input.keras"
    src.write_bytes((FIXTURES / "two_input_k3.keras").read_bytes())
    before = digest(src)
    proc = qfix(str(src), "--target", "edgetpu", "--samples", str(SAMPLES), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["outputs"]["model"].endswith("two_input.qfix.keras")
    assert report["outputs"]["tflite"].endswith("two_input.qfix.edgetpu.tflite")
    assert report["verification"]["fully_on_target"] and not report["before"]["fully_on_target"]
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5
    assert {f["code"] for f in report["fixes"]} >= {"QF102"}
    assert (tmp_path / "two_input.qfix.keras").exists() and (tmp_path / "two_input.qfix.edgetpu.tflite").exists()
    assert digest(src) == before
    # the fixed model passes the check as it is
    proc = qfix(str(tmp_path / "two_input.qfix.keras"), "--check", "--samples", str(SAMPLES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_diff_writes_nothing(tmp_path):
    src = tmp_path / "m.keras"
    src.write_bytes((FIXTURES / "leaky_relu_cnn_k3.keras").read_bytes())
    proc = qfix(str(src), "--diff")
    assert proc.returncode == 1, proc.stderr
    assert '"class_name": "PReLU"' in proc.stdout and "+++ b/m.keras/config.json" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_diff_of_a_clean_model_is_empty(tmp_path):
    src = tmp_path / "m.keras"
    src.write_bytes((FIXTURES / "tiny_cnn_k3.keras").read_bytes())
    proc = qfix(str(src), "--diff", "--target", "int8")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


@pytest.mark.tf
def test_failed_run_leaves_no_file(tmp_path):
    """Bad calibration data stops the run after the rewrite: no output, input untouched."""
    src = tmp_path / "m.keras"
    src.write_bytes((FIXTURES / "two_input_k3.keras").read_bytes())
    bad = tmp_path / "calib.npz"
    import numpy as np

    np.savez(bad, wrong_name=np.zeros((2, 8), np.float32))
    proc = qfix(str(src), "--calibration", str(bad))
    assert proc.returncode == 2 and proc.stderr.startswith("QF908"), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz", "m.keras"]


def test_lambda_model_is_not_rewritten(tmp_path):
    src = tmp_path / "m.keras"
    src.write_bytes((FIXTURES / "lambda_cnn_k3.keras").read_bytes())
    proc = qfix(str(src))
    assert proc.returncode == 1 and "--trust-lambdas" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


@pytest.mark.tf
def test_a_lambda_rewrite_is_kept_for_loading_without_trust_and_says_so(tmp_path):
    """Review of issue 9: Lambda(t * 2.0) → Rescaling(2.0) changes nothing on the target check
    (4/5 → 4/5) yet is kept: the written file holds no bytecode. The report says why."""
    src = tmp_path / "m.keras"
    src.write_bytes((FIXTURES / "lambda_cnn_k3.keras").read_bytes())
    proc = qfix(str(src), "--trust-lambdas", "--samples", "4")
    assert proc.returncode in (0, 1), proc.stderr
    text = " ".join(proc.stdout.split())  # the console wraps long lines
    assert "no bytecode [safe] — kept (the written model loads without --trust-lambdas)" in text, proc.stdout
    assert "batch dimension of every input to 1 [safe] — kept recipe:" in text  # no reason for the others


def test_rollback_decision():
    """`worse` is what decides a rollback: fewer ops on target, more float tensors, or an
    int8 SQNR drop beyond the tolerance (with more ops on target: only a drop to no signal)."""
    from types import SimpleNamespace as NS

    from qfix.jobs.fix import worse

    def ver(on, total, floats=0, sqnr=40.0, fully=False):
        return NS(placement=NS(ops_on_target=on, ops_total=total, float_tensors=["t"] * floats,
                               fully_on_target=fully), fidelity=NS(sqnr_db=sqnr))

    assert worse(ver(10, 10, fully=True), ver(9, 10)) is not None
    assert worse(ver(5, 10), ver(4, 10)) is not None
    assert worse(ver(5, 10), ver(5, 10, floats=1)) is not None
    assert worse(ver(5, 10, sqnr=40), ver(5, 10, sqnr=30)) is not None
    assert worse(ver(5, 10), ver(9, 12, sqnr=38.5)) is None
    assert worse(ver(1, 50), ver(1, 58)) is None  # a rewrite behind the cut does not move it
    # Fully on the target now, with fewer ops (a float island of 3 ops replaced by 2 int8 ops): kept.
    assert worse(ver(11, 14), ver(10, 10, fully=True)) is None
    # Onto the target at the cost of a few dB (a split grouped conv requantizes at its concat):
    # kept; a drop to no signal (below QF408's floor) is not.
    assert worse(ver(0, 3, sqnr=43.7), ver(6, 7, sqnr=39.3, fully=True)) is None
    assert worse(ver(2, 9, sqnr=36.3), ver(8, 9, sqnr=20.0)) is None
    assert worse(ver(2, 9, sqnr=36.3), ver(8, 9, sqnr=10.0, fully=True)) is not None


@pytest.mark.tf
@pytest.mark.parametrize("name", ["gelu_mlp_k3", "gelu_mlp_tfk"])
def test_unsafe_gelu_fix_only_with_flag_and_reports_delta(name, tmp_path):
    src = FIXTURES / f"{name}.keras"
    safe = run_fix(src, Options(samples=SAMPLES), out_dir=tmp_path)
    assert not any(f.code == "QF302" for f in safe.active)
    assert not safe.result.verification.placement.fully_on_target

    run = run_fix(src, Options(samples=SAMPLES), out_dir=tmp_path, unsafe=True)
    assert {f.applicability for f in run.active if f.code == "QF302"} == {"unsafe"}
    fixed_graph = build_graph(json.loads(_member(Path(run.outputs["model"]), "config.json")), run.result.archive.dialect)
    assert not any(v.code == "QF302" for v in lint(fixed_graph, Context(run.result.profile)))
    # unsafe: the numbers change, a little, and the report says by how much
    assert 0 < run.float_equivalence < 1e-3
    assert run.result.verification.placement.fully_on_target
    assert "GELU" not in {o.op for o in run.result.verification.placement.ops}
    assert run.before.placement.first_unsupported["op"] == "GELU"


@pytest.mark.tf
def test_transformer_block_gets_as_far_as_it_can(tmp_path):
    """MultiHeadAttention cannot be replaced: it stays a finding that names the layer, the
    target's reason and the cut; nothing gets worse, and the rewrites behind the cut (gelu,
    the per-token Dense as a 1×1 conv, QF311), which move no op onto the target, are rolled
    back as "no effect" (issue 9, fault 8)."""
    run = run_fix(FIXTURES / "transformer_block_k3.keras", Options(samples=SAMPLES), out_dir=tmp_path, unsafe=True)
    codes = {(v.code, v.location.layer) for v in run.result.findings}
    assert ("QF303", "multi_head_attention") in codes
    cut = [v for v in run.result.findings if v.code == "QF304"]
    assert cut and cut[0].location.layer == "multi_head_attention" and "run on the CPU" in cut[0].message
    assert all(f.no_effect for f in run.fixes if f.rolled_back)
    assert {f.code for f in run.fixes if f.no_effect} == {"QF302", "QF311"}
    assert run.result.verification.placement.ops_on_target >= run.before.placement.ops_on_target
    assert run.result.exit_code() == 1


@pytest.mark.tf
def test_in_place_overwrites_only_when_asked(tmp_path):
    src = tmp_path / "m.keras"
    src.write_bytes((FIXTURES / "leaky_relu_cnn_k3.keras").read_bytes())
    before = digest(src)
    run = run_fix(src, Options(samples=SAMPLES), in_place=True)
    assert run.outputs["model"] == str(src) and digest(src) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.qfix.edgetpu.tflite"]
    # the rewritten file is a valid model with nothing left to fix
    again = run_fix(src, Options(samples=SAMPLES), out_dir=tmp_path)
    assert not again.active and again.result.verification.placement.fully_on_target
