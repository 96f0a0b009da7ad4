"""What a run writes: its outputs, byte-identical between runs, and nothing else — not even
Keras' `~/.keras/keras.json` (through the installed console script, with a private HOME)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent)) or "qfix"
MODEL = REPO / "fixtures" / "leaky_relu_cnn_k3.keras"  # a weighted rewrite: weights re-keyed


def qfix(*args: str, home: Path, seed: str = "0") -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(REPO), PYTHONHASHSEED=seed)
    env.pop("KERAS_HOME", None)
    return subprocess.run([QFIX, *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.tf
def test_check_writes_nothing_anywhere(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = qfix(str(MODEL), "--check", home=home)
    assert proc.returncode in (0, 1), proc.stderr
    assert list(home.rglob("*")) == []  # no ~/.keras/keras.json


@pytest.mark.tf
def test_outputs_are_byte_identical_between_runs(tmp_path):
    outs = []
    for seed in ("1", "2"):  # different set orders inside the process
        out = tmp_path / f"out{seed}"
        out.mkdir()
        proc = qfix(str(MODEL), "--out-dir", str(out), home=tmp_path, seed=seed)
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir()) and len(names) == 2
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
