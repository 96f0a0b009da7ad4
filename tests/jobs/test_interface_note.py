"""What a fold of an integer input into float32 does to the .tflite's input, said per target
(review of issue 9). The note said "the converted model takes it as the recipe's integer input
type" on every target; on the GPU delegate (float32 I/O) the .tflite's input became float32
instead of uint8 and nothing said so. The fix job now writes the clause from the target's
recipe, and the .tflite agrees with it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf


def dense(K):
    i = K.Input((4,), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Dense(2, name="dense")(i))


@pytest.mark.parametrize(("target", "words", "tflite_dtype"), [
    ("gpu", "the deployed input 'frame' (uint8) becomes float32", np.float32),
    ("edgetpu", "takes it as uint8 (Coral Edge TPU's recipe), quantized from these values", np.uint8),
])
def test_the_fold_says_how_the_tflite_takes_the_input(tmp_path, target, words, tflite_dtype):
    from ai_edge_litert.interpreter import Interpreter

    path = save_with("k3", dense, tmp_path / "dense.keras")
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), "--target", target, "--format", "json",
                           "--out-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    (fix,) = [f for f in report["fixes"] if f["code"] == "QF102"]
    assert fix["state"] == "kept" and words in fix["note"], fix
    (inp,) = Interpreter(model_path=report["outputs"]["tflite"]).get_input_details()
    assert inp["dtype"] == tflite_dtype
    assert report["float_equivalence"]["max_abs_diff"] == 0
