"""Issue 11 kinds 4, 5 and 7, run for real (TensorFlow: marked `tf`).

* QF105's table of what each random draw accepts is what the installed TensorFlow, Keras and
  NumPy do: every entry is called with every probe dtype.
* Every fix qfix offers for these kinds is proven on the smallest script: the script fails as
  the issue says, `qfix FILE --write --unsafe-fixes` (the installed console script) fixes it,
  and the fixed script converts to an integer model with the requested I/O types.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qfix.rules.invalid_dtype_call import TABLE
from qfix.targets.tflite import read_tflite

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
QFIX = Path(sys.executable).with_name("qfix")
PROBE_DTYPES = ("uint8", "int8", "int16", "int32", "int64", "uint32", "float16", "bfloat16", "float32", "float64")


# --- QF105: the table against the libraries ------------------------------------------------
def _draw(canon: str, dtype: str, maxval: bool):
    import keras
    import numpy as np
    import tensorflow as tf

    kw: dict = {"maxval": 10} if maxval else {}
    if canon.startswith("numpy.random.Generator."):
        if dtype == "bfloat16":
            return None  # NumPy has no bfloat16
        return getattr(np.random.default_rng(0), canon.rsplit(".", 1)[-1])((1, 4), dtype=np.dtype(dtype))
    if canon.startswith("numpy.random."):  # the legacy draws: no dtype argument at all
        return getattr(np.random, canon.rsplit(".", 1)[-1])(2, dtype=np.dtype(dtype))
    if canon.startswith("keras."):
        return getattr(keras.random, canon.rsplit(".", 1)[-1])((1, 4), dtype=dtype, **kw)
    fn = getattr(tf.random, canon.rsplit(".", 1)[-1])
    if "stateless" in canon:
        kw["seed"] = (1, 2)
    return fn((1, 4), dtype=tf.as_dtype(dtype), **kw)


def _raised(canon: str, dtype: str, maxval: bool) -> str | None:
    try:
        _draw(canon, dtype, maxval)
    except Exception as exc:  # noqa: BLE001 - the error is the fact under test
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}".strip()
    return None


@pytest.mark.parametrize("canon", sorted(TABLE))
def test_dtype_table_matches_the_libraries(canon):
    pytest.importorskip("tensorflow")
    accepts = TABLE[canon]
    wrong = []
    for dtype in PROBE_DTYPES:
        if canon.startswith("numpy.") and dtype == "bfloat16" or dtype in accepts.unjudged:
            continue
        got = _raised(canon, dtype, maxval=False)
        if dtype not in accepts.dtypes:
            want = accepts.error.format(dtype=dtype)
        elif dtype in accepts.needs_maxval:
            want = accepts.maxval_error.format(dtype=dtype)
            if _raised(canon, dtype, maxval=True) is not None:
                wrong.append((dtype, "with maxval", _raised(canon, dtype, maxval=True)))
        else:
            want = None
        if want is None and got is not None or want is not None and (got is None or not got.startswith(want)):
            wrong.append((dtype, want, got))
    assert wrong == []


# --- each offered fix, run -------------------------------------------------------------------
def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


def _run(script: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script.name], cwd=script.parent, env=_env(), capture_output=True, text=True, timeout=300)


def _qfix(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(QFIX), script.name, "--write", *args], cwd=script.parent, env=_env(), capture_output=True, text=True, timeout=300)


def _io_dtypes(path: Path) -> tuple[list[str], list[str], list[tuple[int, ...]]]:
    m = read_tflite(path.read_bytes())
    return [m.tensors[i].dtype for i in m.inputs], [m.tensors[i].dtype for i in m.outputs], [m.tensors[i].shape_signature for i in m.inputs]


MODEL = """\
import tensorflow as tf

inputs = tf.keras.Input((4, 4, 1), batch_size=1)
outputs = tf.keras.layers.Conv2D(2, 3)(inputs)
model = tf.keras.Model(inputs, outputs)
"""
CONVERT = """\
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.uint8
converter.inference_output_type = tf.uint8
open("model.tflite", "wb").write(converter.convert())
"""


def _script(tmp_path: Path, text: str) -> Path:
    script = tmp_path / "export.py"
    script.write_text(textwrap.dedent(text))
    return script


def _assert_fails_then_fixed(script: Path, error: str, *qfix_args: str, io: str = "uint8") -> str:
    before = _run(script)
    assert before.returncode != 0 and error in before.stderr, before.stderr[-2000:]
    fixed = _qfix(script, "--unsafe-fixes", *qfix_args)
    assert fixed.returncode in (0, 1) and "Traceback" not in fixed.stderr, fixed.stdout + fixed.stderr
    after = _run(script)
    assert after.returncode == 0, script.read_text() + after.stderr[-2000:]
    ins, outs, _ = _io_dtypes(script.parent / "model.tflite")
    assert ins == [io] and outs == [io], (ins, outs)
    return script.read_text()


QF105_DRAWS = {  # the draw in the generator, what it raises, what the fix makes of it
    "tf-normal-uint8": ("tf.random.normal((1, 4, 4, 1), dtype=tf.uint8)", "Cannot convert 0.0 to EagerTensor of dtype uint8",
                        "tf.random.normal((1, 4, 4, 1))"),
    "np-rand-float32": ("np.random.rand(1, 4, 4, 1, dtype=np.float32)", "rand() got an unexpected keyword argument 'dtype'",
                        "np.random.rand(1, 4, 4, 1).astype(np.float32)"),
}


@pytest.mark.parametrize("name", list(QF105_DRAWS))
def test_qf105_draw_in_the_generator(tmp_path, name):
    """A draw asked for a dtype it cannot produce, in the representative dataset: the script
    raises; fixed, the generator yields float32 and the conversion succeeds."""
    draw, error, fixed = QF105_DRAWS[name]
    script = _script(tmp_path, "import numpy as np\n" + MODEL + f"""\

def representative_dataset():
    for _ in range(4):
        yield [{draw}]

""" + CONVERT)
    text = _assert_fails_then_fixed(script, error, "--select", "QF105")
    assert f"yield [{fixed}]" in text


def test_qf104_cast_in_the_generator(tmp_path):
    """Calibration data "quantized" by a cast through a name: the converter is fed uint8 for a
    float input and fails; fixed by yielding the float data."""
    script = _script(tmp_path, MODEL + """\

def representative_dataset():
    for _ in range(4):
        x = tf.random.normal((1, 4, 4, 1))
        q = tf.cast(x * 255.0, tf.uint8)
        yield [q]

""" + CONVERT)
    text = _assert_fails_then_fixed(script, "UINT8", "--select", "QF104")
    assert "q = x * 255.0\n" in text


def test_qf104_model_output_cast(tmp_path):
    """An output cast to uint8 inside the model (Keras 3 refuses `tf.cast` on a KerasTensor;
    tf_keras would convert a truncating CAST): the converter owns the output type, the fix
    removes the cast and the converted model has the converter's uint8 I/O."""
    script = _script(tmp_path, MODEL.replace("outputs = tf.keras", "outputs = tf.cast(tf.keras").replace("(inputs)\n", "(inputs), tf.uint8)\n", 1) + """\

def representative_dataset():
    for _ in range(4):
        yield [tf.random.normal((1, 4, 4, 1))]

""" + CONVERT)
    text = _assert_fails_then_fixed(script, "A KerasTensor cannot be used as input to a TensorFlow function", "--select", "QF104")
    assert "outputs = tf.keras.layers.Conv2D(2, 3)(inputs)\n" in text
    m = read_tflite((tmp_path / "model.tflite").read_bytes())
    assert "CAST" not in {op.name for op in m.ops}


def test_qf401_inserted_dataset_is_imported(tmp_path):
    """Kind 5: `[tool.qfix] representative-dataset = "calib.representative_dataset"`: the fix
    inserts the assignment and `import calib`; without the import it was a NameError."""
    (tmp_path / "pyproject.toml").write_text('[tool.qfix]\ntarget = "int8"\nrepresentative-dataset = "calib.representative_dataset"\n')
    (tmp_path / "calib.py").write_text(textwrap.dedent("""\
        import numpy as np


        def representative_dataset():
            for _ in range(4):
                yield [np.random.rand(1, 4, 4, 1).astype("float32")]
        """))
    script = _script(tmp_path, MODEL + CONVERT.replace("converter.representative_dataset = representative_dataset\n", "").replace("uint8", "int8"))
    text = _assert_fails_then_fixed(script, "a `representative_dataset` must be specified", "--select", "QF401", io="int8")
    assert "import calib\n" in text and "converter.representative_dataset = calib.representative_dataset\n" in text


def test_qf301_multiline_input_fix_runs(tmp_path):
    """Kind 7: the batch fix of a multi-line `Input(...)` leaves clean lines and the script
    converts with a static batch of 1."""
    script = _script(tmp_path, MODEL.replace(
        "inputs = tf.keras.Input((4, 4, 1), batch_size=1)\n",
        "inputs = tf.keras.Input(\n    (4, 4, 1),\n    name=\"frame\",  # the camera frame\n)\n",
    ) + """\

def representative_dataset():
    for _ in range(4):
        yield [tf.random.normal((1, 4, 4, 1))]

""" + CONVERT)
    fixed = _qfix(script, "--unsafe-fixes", "--select", "QF301", "--target", "edgetpu")
    assert "Traceback" not in fixed.stderr, fixed.stderr
    text = script.read_text()
    assert 'name="frame",  # the camera frame\n    batch_size=1,\n)\n' in text
    assert [line for line in text.splitlines() if line != line.rstrip()] == []
    after = _run(script)
    assert after.returncode == 0, after.stderr[-2000:]
    _, _, shapes = _io_dtypes(tmp_path / "model.tflite")
    assert shapes == [(1, 4, 4, 1)]
