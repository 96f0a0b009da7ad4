"""`--target gpu` (the float16 recipe, the GPU delegate's own checks, CPU fallback, a
profile-only verdict) and a user's own profile (`examples/targets/my_npu.toml`, the README's
example) on fixture models, through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
EXAMPLE = ROOT / "examples" / "targets" / "my_npu.toml"
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent))


def qfix_run(*args) -> subprocess.CompletedProcess:
    assert QFIX, f"no qfix console script next to {sys.executable}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("QFIX_DEBUG", None)
    return subprocess.run([QFIX, *map(str, args)], capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def gru_on_gpu():
    """gru_k3 (Keras 3 GRU: a WHILE loop, which the GPU delegate lacks) checked for the GPU."""
    proc = qfix_run(FIXTURES / "gru_k3.keras", "--target", "gpu", "--check", "--format", "json")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    return json.loads(proc.stdout)


def test_gpu_converts_with_the_float16_recipe(gru_on_gpu):
    ver = gru_on_gpu["verification"]
    assert ver["converted"] and ver["recipe"].startswith("float16 weights")
    assert ver["float_tensors"] == []  # float activations are the GPU's own, not islands
    assert ver["fidelity"]["sqnr_db"] > 40  # float16 weights: close to the float model


def test_an_op_the_delegate_lacks_falls_back_to_the_cpu(gru_on_gpu):
    ver = gru_on_gpu["verification"]
    (loop,) = [f for f in ver["fallback"] if f["op"] == "WHILE"]
    assert loop["status"] == "falls back to the CPU" and loop["layer"] == "gru"
    assert 0 < ver["ops_on_target"] < ver["ops_total"]  # islands: the rest stays on the GPU
    qf304 = [f for f in gru_on_gpu["findings"] if f["code"] == "QF304" and "WHILE" in f["message"]]
    assert qf304 and "falls back to the CPU" in qf304[0]["message"]
    assert any("max_delegated_partitions = 1" in w for w in ver["warnings"])


def test_the_gpu_verdict_is_the_profile_s_and_says_so(gru_on_gpu):
    assert gru_on_gpu["verdict_source"].startswith("profile only (no GPU here")
    assert gru_on_gpu["verification"]["compiler"]["used"] == "profile"


def test_gpu_text_report():
    proc = qfix_run(FIXTURES / "gru_k3.keras", "--target", "gpu", "--check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "falls back to the CPU: WHILE" in proc.stdout
    words = " ".join(proc.stdout.split())  # the verdict line may wrap
    assert "blockers remain for TFLite GPU delegate (by the profile only: no GPU here:" in words, proc.stdout
    assert words.endswith("no-op since TF 2.18)")


def test_the_readme_example_profile_runs_a_fixture_model(tmp_path):
    proc = qfix_run(FIXTURES / "tiny_cnn_k3.keras", "--target", EXAMPLE, "--out-dir", tmp_path, "--format", "json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    report = json.loads(proc.stdout)
    ver = report["verification"]
    assert report["target"] == "my_npu" and ver["fully_on_target"]
    assert {o["status"] for o in ver["ops"]} == {"runs on the NPU"}
    assert (tmp_path / "tiny_cnn_k3.qfix.my_npu.tflite").is_file()
