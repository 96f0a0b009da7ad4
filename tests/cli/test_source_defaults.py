"""Source runs through the console entry: the default target (README: `edgetpu`) and the exit
status of `--diff` (issue 11 (h), (i))."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# converts to an integer model from a model with a dynamic batch: QF301 for the Edge TPU only
CONVERTS = (
    "import numpy as np\nimport tensorflow as tf\n"
    "inp = tf.keras.Input((4,))\n"
    "model = tf.keras.Model(inp, tf.keras.layers.Dense(2)(inp))\n"
    "def rep():\n    for _ in range(4):\n        yield [np.random.rand(1, 4).astype(np.float32)]\n"
    "c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
    "c.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    "c.representative_dataset = rep\n"
    'open("m.tflite", "wb").write(c.convert())\n'
)
# one display-only finding (QF406: the docs' placeholder `input` is Python's builtin), no diff
DISPLAY_ONLY = (
    "import tensorflow as tf\n"
    "def gen():\n    yield [input]\n"
    "c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
    "c.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    "c.representative_dataset = gen\n"
)


def qfix(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "qfix", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_source_runs_default_to_the_edgetpu_target(tmp_path: Path):
    (tmp_path / "export.py").write_text(CONVERTS)
    bare = qfix("export.py", "--format", "concise", cwd=tmp_path)
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert bare.stdout.startswith("export.py:3:7: QF301 ") and "target edgetpu needs static shapes" in bare.stdout
    assert qfix("export.py", "--format", "concise", "--target", "edgetpu", cwd=tmp_path).stdout == bare.stdout
    none = qfix("export.py", "--target", "none", cwd=tmp_path)  # opting out: the target-free rules only
    assert (none.returncode, none.stdout.strip()) == (0, "All checks passed (1 file).")
    (tmp_path / "pyproject.toml").write_text('[tool.qfix]\ntarget = "none"\n')
    assert qfix("export.py", cwd=tmp_path).returncode == 0  # [tool.qfix] target before the default


def test_diff_exits_1_while_display_only_findings_remain(tmp_path: Path):
    (tmp_path / "export.py").write_text(DISPLAY_ONLY)
    proc = qfix("export.py", "--diff", "--target", "none", cwd=tmp_path)  # (edgetpu would add QF402 and its diff)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""  # no fix to show: stdout stays an (empty) patch
    assert proc.stderr.strip() == "Found 1 issue in 1 file. 1 needs manual attention."
    plain = qfix("export.py", "--target", "none", cwd=tmp_path)
    assert plain.returncode == 1 and "QF406" in plain.stdout
    (tmp_path / "export.py").write_text("import tensorflow as tf\nx = 1\n")
    clean = qfix("export.py", "--diff", cwd=tmp_path)
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "", "")
