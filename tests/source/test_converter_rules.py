"""QF406 / QF407 fixes proven on the scripts they fix: each tiny export script fails (or makes
a float model) as written, `qfix FILE --write` fixes it through the installed console script,
and the fixed script converts to an integer model with the I/O types it asks for.

All scripts of one state run in one Python process (`_run_all`: one TensorFlow start-up),
each as `__main__` with `runpy`, so the TF set stays fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
QFIX = Path(sys.executable).parent / "qfix"

ONE = """\
import pathlib

import numpy as np
import tensorflow as tf
import keras

inp = keras.Input((4, 4, 3), batch_size=1)
x = keras.layers.Conv2D(2, 3, activation="relu")(inp)
model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
"""
TWO = """\
import pathlib

import numpy as np
import tensorflow as tf
import keras

img = keras.Input((4, 4, 3), batch_size=1, name="img")
feat = keras.Input((2,), batch_size=1, name="feat")
x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(img))
model = keras.Model([img, feat], keras.layers.Dense(2)(keras.layers.Concatenate()([x, feat])))
"""
CONVERT = """\
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = {data}
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.{io}
converter.inference_output_type = tf.{io}
pathlib.Path(__file__).with_suffix(".tflite").write_bytes(converter.convert())
"""


def _gen(body: str) -> str:
    return "\n\ndef representative_dataset():\n" + textwrap.indent(textwrap.dedent(body), "    ") + "\n\n"


# name -> (script, qfix options, what the original does, I/O dtype of the fixed model; None: no fix)
SCRIPTS = {
    # QF407, the smallest input: int8 I/O, INT8 op set, a dataset, no optimizations
    "qf407_int8_io": (
        ONE + _gen("for _ in range(4):\n    yield [np.random.rand(1, 4, 4, 3).astype(np.float32)]")
        + CONVERT.format(data="representative_dataset", io="int8").replace("converter.optimizations = [tf.lite.Optimize.DEFAULT]\n", ""),
        ["--target", "int8"], "must be tf.float32", "int8",
    ),
    # QF407: uint8 I/O without the op set, a tf_keras model, for the Edge TPU (QF402 adds the op set)
    "qf407_uint8_io_edgetpu": (
        ONE.replace("import keras\n", "import tf_keras as keras\n")
        + _gen("for _ in range(4):\n    yield [tf.random.normal((1, 4, 4, 3))]")
        + CONVERT.format(data="representative_dataset", io="uint8")
        .replace("converter.optimizations = [tf.lite.Optimize.DEFAULT]\n", "")
        .replace("converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n", ""),
        ["--target", "edgetpu"], "must be tf.float32", "uint8",
    ),
    # QF407: accepted, but a float model (INT8 op set + dataset, no optimizations)
    "qf407_float_model": (
        ONE + _gen("for _ in range(4):\n    yield [tf.random.normal((1, 4, 4, 3))]")
        + CONVERT.format(data="representative_dataset", io="float32")
        .replace("converter.optimizations = [tf.lite.Optimize.DEFAULT]\n", "")
        .replace("converter.inference_input_type = tf.float32\nconverter.inference_output_type = tf.float32\n", ""),
        ["--unsafe-fixes"], "float model", "float32",
    ),
    # QF407: the float16 recipe for an integer target (unsafe: supported_types removed)
    "qf407_float16_recipe": (
        ONE + _gen("for _ in range(4):\n    yield [tf.random.normal((1, 4, 4, 3))]")
        + CONVERT.format(data="representative_dataset", io="float32")
        .replace("converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n", "converter.target_spec.supported_types = [tf.float16]\n")
        .replace("converter.inference_input_type = tf.float32\nconverter.inference_output_type = tf.float32\n", ""),
        ["--target", "int8", "--unsafe-fixes"], "float model", "float32",
    ),
    # QF407 (issue 11 (b)): settings through setattr and `from tensorflow import lite`
    "qf407_setattr_lite_alias": (
        "import pathlib\n\nimport numpy as np\nimport tensorflow as tf2\nfrom tensorflow import lite\n\n"
        "model = tf2.keras.Sequential([tf2.keras.Input((4,), batch_size=1), tf2.keras.layers.Dense(2)])\n"
        + _gen("for _ in range(4):\n    yield [np.random.rand(1, 4).astype(np.float32)]")
        + "conv = lite.TFLiteConverter.from_keras_model(model)\n"
        'setattr(conv, "representative_dataset", representative_dataset)\n'
        "conv.target_spec.supported_ops = [lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
        'setattr(conv, "inference_input_type", tf2.uint8)\nconv.inference_output_type = tf2.uint8\n'
        "pathlib.Path(__file__).with_suffix(\".tflite\").write_bytes(conv.convert())\n",
        ["--target", "int8"], "must be tf.float32", "uint8",
    ),
    # QF407 (issue 11 (c)): the helper sets the dataset, the caller the op set and (through a name) the I/O types
    "qf407_helper_returns_converter": (
        ONE + _gen("for _ in range(4):\n    yield [np.random.rand(1, 4, 4, 3).astype(np.float32)]")
        + "def make(model):\n    c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
        "    c.representative_dataset = representative_dataset\n    return c\n\n\n"
        "converter = make(model)\nconverter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
        "io = tf.int8\nconverter.inference_input_type = io\nconverter.inference_output_type = io\n"
        "pathlib.Path(__file__).with_suffix(\".tflite\").write_bytes(converter.convert())\n",
        ["--target", "int8"], "must be tf.float32", "int8",
    ),
    # QF407 (issue 11 (d)): `optimizations = None`
    "qf407_optimizations_none": (
        ONE + _gen("for _ in range(4):\n    yield [np.random.rand(1, 4, 4, 3).astype(np.float32)]")
        + CONVERT.format(data="representative_dataset", io="int8").replace("optimizations = [tf.lite.Optimize.DEFAULT]", "optimizations = None"),
        ["--target", "int8"], "TypeError: argument of type 'NoneType' is not iterable", "int8",
    ),
    # QF104 (issue 11 (g)): calibration data from the file's own function "quantized" by np.asarray(..., dtype=np.uint8)
    "qf104_asarray_uint8_calibration": (
        ONE + "\n\ndef preprocess(img):\n    return (img / 255.0).astype(np.float32)\n"
        + _gen("for _ in range(4):\n    x = preprocess(np.random.rand(1, 4, 4, 3) * 255.0)\n    yield [np.asarray(x, dtype=np.uint8)]")
        + CONVERT.format(data="representative_dataset", io="int8"),
        ["--target", "int8", "--unsafe-fixes"], "expected type FLOAT32", "int8",
    ),
    # QF406: a generator expression where the converter wants a function
    "qf406_generator_expression": (
        ONE + "data = np.random.rand(4, 1, 4, 4, 3).astype(np.float32)\n"
        + CONVERT.format(data="([x] for x in data)", io="int8"),
        [], "not callable", "int8",
    ),
    # QF406: float64, no batch axis, through a name
    "qf406_no_batch_float64": (
        ONE + _gen("for _ in range(4):\n    x = np.random.random_sample((4, 4, 3)) * 2.0 - 1.0\n    yield [x]")
        + CONVERT.format(data="representative_dataset", io="int8"),
        [], "failed to prepare", "int8",
    ),
    # QF406: a bare float64 array
    "qf406_bare_array": (
        ONE + _gen("for _ in range(4):\n    yield np.random.rand(1, 4, 4, 3)")
        + CONVERT.format(data="representative_dataset", io="int8"),
        [], "You need to provide either a dictionary", "int8",
    ),
    # QF406: tuples from a lambda over a generator expression
    "qf406_tuple_lambda": (
        ONE + "data = np.random.rand(4, 1, 4, 4, 3).astype(np.float32)\n"
        + CONVERT.format(data="lambda: ((x,) for x in data)", io="uint8"),
        [], "IndexError", "uint8",
    ),
    # QF406: the generator object instead of the function; float64 through tf.data
    "qf406_generator_object": (
        ONE + _gen("for x in tf.data.Dataset.from_tensor_slices(np.random.rand(4, 1, 4, 4, 3)).take(4):\n    yield [x]")
        + CONVERT.format(data="representative_dataset()", io="int8"),
        [], "not callable", "int8",
    ),
    # QF406, the smallest input: `input` is Python's builtin; nothing to rewrite (display-only)
    "qf406_builtin_input": (
        ONE + _gen("for _ in range(4):\n    yield [input]")
        + CONVERT.format(data="representative_dataset", io="uint8"),
        [], "'builtin_function_or_method' object has no attribute 'shape'", None,
    ),
    # QF406: two tf_keras inputs fed in the Keras order
    "qf406_two_inputs_tf_keras": (
        TWO.replace("import keras\n", "import tf_keras as keras\n")
        + _gen("for _ in range(4):\n    yield [np.random.rand(1, 4, 4, 3).astype(np.float32), np.random.rand(1, 2).astype(np.float32)]")
        + CONVERT.format(data="representative_dataset", io="int8"),
        [], "failed to prepare", "int8",
    ),
    # QF406 (issue 11 (a)): names already sorted (`a`, `b`), shapes that differ, a dynamic batch:
    # TF 2.21 feeds `b` first (with `batch_size=1` it happens to keep the order)
    "qf406_two_inputs_sorted_names": (
        "import pathlib\n\nimport numpy as np\nimport tensorflow as tf\n\n"
        "a = tf.keras.Input((4,), name=\"a\")\nb = tf.keras.Input((3,), name=\"b\")\n"
        "model = tf.keras.Model([a, b], tf.keras.layers.Dense(2)(tf.keras.layers.Concatenate()([a, b])))\n"
        + _gen("for _ in range(4):\n    yield [np.random.rand(1, 4).astype(np.float32), np.random.rand(1, 3).astype(np.float32)]")
        + CONVERT.format(data="representative_dataset", io="int8"),
        ["--target", "int8"], "Attempting to resize dimension", "int8",
    ),
    # QF406: two inputs fed in the Keras order; the converted model orders them otherwise
    "qf406_two_inputs": (
        TWO + _gen("for _ in range(4):\n    yield [tf.random.normal((1, 4, 4, 3)), tf.random.normal((1, 2))]")
        + CONVERT.format(data="representative_dataset", io="uint8"),
        [], "failed to prepare", "uint8",
    ),
}

HARNESS = """\
import json, os, runpy, sys
out = {}
for path in sys.argv[1:]:
    try:
        runpy.run_path(path, run_name="__main__")
        out[path] = "ok"
    except BaseException as exc:  # the script's own failure is the result
        out[path] = type(exc).__name__ + ": " + str(exc)[:300]
print("RESULTS " + json.dumps(out))
"""


def _run_all(paths: list[Path]) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-c", HARNESS, *map(str, paths)], capture_output=True, text=True, env=env, timeout=900)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line is not None, p.stderr[-3000:]
    return {Path(k).stem: v for k, v in json.loads(line[len("RESULTS "):]).items()}


def _qfix(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(QFIX), *args], capture_output=True, text=True, env=env, timeout=300)


def _model(path: Path):
    from qfix.targets.tflite import read_tflite

    m = read_tflite(path.with_suffix(".tflite").read_bytes())
    io = (m.tensors[m.inputs[0]].dtype, m.tensors[m.outputs[0]].dtype)
    weights = [m.tensors[op.inputs[1]].dtype for op in m.ops if op.name in ("CONV_2D", "FULLY_CONNECTED")]
    return io, weights


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    d = tmp_path_factory.mktemp("scripts")
    paths = []
    for name, (src, *_rest) in SCRIPTS.items():
        p = d / f"{name}.py"
        p.write_text(src)
        paths.append(p)
    before = _run_all(paths)
    floats = {p.stem: _model(p) for p in paths if before[p.stem] == "ok"}
    fixes = {}
    for p in paths:
        opts = SCRIPTS[p.stem][1]
        fixes[p.stem] = _qfix(str(p), "--write", *opts)
        for ext in (".tflite",):
            p.with_suffix(ext).unlink(missing_ok=True)
    after = _run_all(paths)
    return d, before, floats, fixes, after


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_fixed_script_converts_to_an_integer_model(scripts, name):
    d, before, floats, fixes, after = scripts
    _src, opts, fails, io = SCRIPTS[name]
    if fails == "float model":  # the original converts, to a float model
        assert before[name] == "ok", before[name]
        assert floats[name][1] and set(floats[name][1]) == {"float32"}, floats[name]
    else:
        assert fails in before[name], before[name]
    f = fixes[name]
    assert f.returncode in (0, 1), f.stderr
    path = d / f"{name}.py"
    left = _qfix(str(path), *opts, "--format", "concise")
    if io is None:  # display-only: reported, left as it is
        assert path.read_text() == _src and "QF406" in left.stdout and left.returncode == 1, left.stdout
        assert fails in after[name]
        return
    assert "QF406" not in left.stdout and "QF407" not in left.stdout, left.stdout
    assert after[name] == "ok", f"{after[name]}\n--- fixed script ---\n{path.read_text()}"
    got_io, weights = _model(path)
    assert got_io == (io, io)
    assert weights and set(weights) == {"int8"}, weights  # integer kernels: a full integer conversion
