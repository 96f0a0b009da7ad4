"""What a user hands qfix besides the model, found by a new user's review: a `.KERAS` suffix,
and modules named on the command line that live in the current folder (as `python -m` finds
them), through the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent)) or "qfix"


def qfix(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the checkout, not the current folder
    return subprocess.run([QFIX, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.tf
def test_upper_case_suffix_converts(tmp_path):
    model = tmp_path / "model.KERAS"
    shutil.copy(FIXTURES / "tiny_cnn_k3.keras", model)
    proc = qfix(str(model), "--check", "--samples", "4", cwd=tmp_path)
    assert proc.returncode == 0 and "runs fully on" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.tf
def test_custom_objects_and_calibration_modules_from_the_current_folder(tmp_path):
    shutil.copy(FIXTURES / "custom_layers.py", tmp_path / "mylayers.py")
    (tmp_path / "calib.py").write_text(
        "import numpy as np\n\ndef samples():\n"
        "    rng = np.random.default_rng(0)\n"
        "    return {'input_layer': rng.uniform(0, 1, (4, 32, 32, 3)).astype('float32')}\n")
    model = tmp_path / "m.keras"
    shutil.copy(FIXTURES / "custom_layer_k3.keras", model)
    proc = qfix("m.keras", "--check", "--custom-objects", "mylayers", "--calibration", "calib:samples",
                cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    assert "calib:samples" in proc.stdout and "QF9" not in proc.stderr, proc.stdout + proc.stderr


def test_a_module_that_is_nowhere_says_where_it_was_looked_for(tmp_path):
    model = tmp_path / "m.keras"
    shutil.copy(FIXTURES / "tiny_cnn_k3.keras", model)
    proc = qfix("m.keras", "--check", "--calibration", "nowhere_qfix:samples", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("QF908") and "current folder" in proc.stderr, proc.stderr


@pytest.mark.tf
def test_main_job_header_counts_the_input_layers(tmp_path):
    """The header names the input model's size, and the fixed model's when the fixes changed it."""
    import re

    model = tmp_path / "m.keras"
    shutil.copy(FIXTURES / "hard_swish_cnn_k3.keras", model)
    static = qfix("m.keras", "--static", cwd=tmp_path)
    before = int(re.search(r"· (\d+) layers$", static.stdout.splitlines()[0]).group(1))
    fixed = qfix("m.keras", "--samples", "4", "--out-dir", "out", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    m = re.search(r"· (\d+) layers \((\d+) after the fixes\)$", fixed.stdout.splitlines()[0])
    assert m and int(m.group(1)) == before and int(m.group(2)) > before, fixed.stdout.splitlines()[0]
