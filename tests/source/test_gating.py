"""Source rules about the deployed model follow what the file does with it (`Activity`):
QF301 fires where the file converts or exports for a static-shape target, never in library
code, unit tests, float-only examples or training / QAT scripts, and its severities are the
model side's."""

from __future__ import annotations

import libcst as cst
import pytest

from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.rules import select, source_rules
from qfix.rules.base import Context
from qfix.rules.dynamic_shape import DynamicShapeModel
from qfix.source.engine import lint_source
from qfix.source.names import Names
from qfix.source.rule import Activity
from qfix.targets import load_profile
from qfix.types import Severity

QF301 = select(source_rules(), ["QF301"])
MODEL = "import keras\nimport tensorflow as tf\ni = keras.Input((8, 8, 3))\nmodel = keras.Model(i, keras.layers.Conv2D(4, 3)(i))\n"


def _activity(code: str, path: str | None = "script.py") -> Activity:
    module = cst.parse_module(code)
    return Activity.of(path, code, module, Names.from_module(module))


@pytest.mark.parametrize(
    "tail,expected",
    [
        ("converter = tf.lite.TFLiteConverter.from_keras_model(model)\n", dict(converts=True)),
        ("c = tf.lite.TFLiteConverter.from_keras_model(model)\nc.optimizations = [tf.lite.Optimize.DEFAULT]\n", dict(converts=True, quantizes=True)),
        ("c = tf.lite.TFLiteConverter.from_keras_model(model)\nc.optimizations = [tf.lite.Optimize.DEFAULT]\n"
         "c.target_spec.supported_types = [tf.float16]\n", dict(converts=True)),
        ("c = tf.lite.TFLiteConverter.from_keras_model(model)\nc.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n", dict(converts=True, quantizes=True)),
        ("c = tf.lite.TFLiteConverter.from_keras_model(model)\nc.inference_input_type = tf.uint8\n", dict(converts=True, quantizes=True)),
        ("c = tf.lite.TFLiteConverter.from_keras_model(model)\nc.representative_dataset = gen\n", dict(converts=True, quantizes=True)),
        ("c = tf.compat.v1.lite.TFLiteConverter.from_keras_model_file('m.h5')\nc.post_training_quantize = True\n", dict(converts=True, quantizes=True)),
        ("from tensorflow.lite import TFLiteConverter as C\nc = C.from_saved_model('d')\n", dict(converts=True)),
        ("model.export('saved_model')\n", dict(exports=True)),
        ("tf.saved_model.save(model, 'd')\n", dict(exports=True)),
        ("model.fit(x, y)\n", dict(trains=True)),
        ("with tf.GradientTape() as tape:\n    loss = model(x)\n", dict(trains=True)),
        ("import tensorflow_model_optimization as tfmot\nq = tfmot.quantization.keras.quantize_model(model)\n", dict(qat=True)),
        ("y = model.predict(x)\n", dict()),
        ("model.save('m.keras')\n", dict()),
        ("interp = tf.lite.Interpreter('m.tflite')\n", dict()),
    ],
)
def test_activity_reads_the_calls(tail, expected):
    act = _activity(MODEL + tail)
    got = {k: getattr(act, k) for k in ("converts", "quantizes", "exports", "trains", "qat", "test")}
    assert got == {**dict(converts=False, quantizes=False, exports=False, trains=False, qat=False, test=False), **expected}


@pytest.mark.parametrize(
    "path,code",
    [
        ("pkg/convert_test.py", MODEL),
        ("tests/test_convert.py", MODEL),
        ("x.py", "import unittest\n" + MODEL),
        ("x.py", "from absl.testing import parameterized\n" + MODEL),
        ("x.py", MODEL + "class T(tf.test.TestCase):\n    pass\n"),
    ],
)
def test_unit_tests_do_not_deploy(path, code):
    act = _activity(code + "c = tf.lite.TFLiteConverter.from_keras_model(model)\nc.optimizations = [tf.lite.Optimize.DEFAULT]\n", path)
    assert act.test and act.converts and act.quantizes and not act.deploys


@pytest.mark.parametrize(
    "tail",
    [
        "",  # library code / float-only example
        "model.compile('adam', 'mse')\nmodel.fit(x, y, epochs=3)\n",  # training script
        "import tensorflow_model_optimization as tfmot\nq = tfmot.quantization.keras.quantize_model(model)\n",  # QAT
        "print(model.predict(x))\n",  # float-only example
    ],
)
def test_qf301_silent_where_nothing_is_deployed(tail):
    assert lint_source(MODEL + tail, rules=QF301, target="edgetpu", path="script.py").violations == []


CONVERT = "c = tf.lite.TFLiteConverter.from_keras_model(model)\nc.optimizations = [tf.lite.Optimize.DEFAULT]\n"


def test_qf301_silent_for_a_float_conversion():
    code = MODEL + "c = tf.lite.TFLiteConverter.from_keras_model(model)\nc.target_spec.supported_ops = [tf.lite.OpsSet.SELECT_TF_OPS]\n"
    assert lint_source(code, rules=QF301, target="edgetpu").violations == []
    assert lint_source(code + "c.inference_input_type = tf.uint8\n", rules=QF301, target="edgetpu").violations


def test_qf301_silent_in_a_unit_test_that_converts():
    code = MODEL + CONVERT
    assert lint_source(code, rules=QF301, target="edgetpu", path="pkg/model_test.py").violations == []
    assert lint_source(code, rules=QF301, target="edgetpu", path="pkg/model.py").violations


def _model_severities() -> dict[str, Severity]:
    ctx = Context(load_profile("edgetpu"))
    batch = build_graph(functional_config([("x", (None, 8, 8, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]), "keras3")
    spatial = build_graph(functional_config([("x", (1, None, None, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]), "keras3")
    (b,) = DynamicShapeModel().check(batch, ctx)
    (s,) = DynamicShapeModel().check(spatial, ctx)
    return {"batch": b.severity, "spatial": s.severity}


def test_qf301_severity_is_the_model_sides():
    model = _model_severities()
    conv = CONVERT
    batch = lint_source(MODEL + conv, rules=QF301, target="edgetpu").violations
    assert [v.severity for v in batch] == [model["batch"]] == [Severity.WARNING]
    spatial = MODEL.replace("keras.Input((8, 8, 3))", "keras.Input((None, None, 3), batch_size=1)")
    found = lint_source(spatial + conv, rules=QF301, target="edgetpu").violations
    assert [v.severity for v in found] == [model["spatial"]] == [Severity.BLOCKER]


def test_qf301_training_and_converting_file_gets_a_display_only_fix():
    code = MODEL + "model.fit(x, y)\n" + CONVERT
    (v,) = lint_source(code, rules=QF301, target="edgetpu").violations
    assert v.fix is not None and not v.fix.edits and "at conversion" in v.fix.description


# --- QF301's fix, run: the converted model's batch becomes static --------------------------
CONVERT_SCRIPT = """\
import numpy as np
import tensorflow as tf
import keras

inputs = keras.Input(
    (4, 4, 1),
    name="image",
)
model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))


def representative_dataset():
    for _ in range(4):
        yield {"image": np.random.rand(1, 4, 4, 1).astype("float32")}


converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.uint8
converter.inference_output_type = tf.uint8
open("model.tflite", "wb").write(converter.convert())
"""


@pytest.mark.tf
def test_qf301_fix_gives_a_static_batch_integer_model(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from qfix.targets.tflite import read_tflite

    qfix_bin = shutil.which("qfix", path=str(Path(sys.executable).parent))
    assert qfix_bin
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = tmp_path / "convert.py"
    script.write_text(CONVERT_SCRIPT)

    def convert():
        p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert p.returncode == 0, p.stderr[-1500:]
        m = read_tflite((tmp_path / "model.tflite").read_bytes())
        return m, m.tensors[m.inputs[0]], m.tensors[m.outputs[0]]

    _, inp, _ = convert()
    assert inp.shape_signature[0] == -1  # what the Edge TPU compiler refuses (dynamic-sized tensors)

    fixed = subprocess.run([qfix_bin, str(script), "--target", "edgetpu", "--select", "QF301", "--write", "--unsafe-fixes"],
                           capture_output=True, text=True, env={**env, "PYTHONPATH": str(root)}, timeout=120)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    text = script.read_text()
    assert '    name="image",\n    batch_size=1,\n)' in text
    assert all(line == line.rstrip() for line in text.splitlines())

    m, inp, out = convert()
    assert inp.shape_signature == (1, 4, 4, 1) and inp.dtype == "uint8" and out.dtype == "uint8"
    assert all(t.shape_signature[0] != -1 for t in m.tensors if t.shape_signature)
