"""The Keras resolution table (`qfix.source.flavour.RESOLUTION`): the static reading of every
row agrees with the row (fast), and every row is what the installed TensorFlow, Keras, tf_keras
and tfmot really do, each script run in a fresh interpreter (`-m tf`)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import libcst as cst
import pytest

from qfix.source.flavour import KERAS3, RESOLUTION, TF_INTERNAL, TF_KERAS, VERSIONS, FileFlavours

_IDS = [f"{r.spelling} | {r.context}" for r in RESOLUTION]
# the top-level package of the layer's class -> flavour
_PACKAGE = {"keras": KERAS3, "tf_keras": TF_KERAS, "tensorflow": TF_INTERNAL}


def _layer_call(module: cst.Module) -> cst.BaseExpression:
    last = module.body[-1]
    assert isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[0], cst.Assign)
    call = last.body[0].value
    assert isinstance(call, cst.Call)
    return call.func


@pytest.mark.parametrize("row", RESOLUTION, ids=_IDS)
def test_static_reading_matches_row(row):
    module = cst.parse_module(row.code)
    assert FileFlavours(module).of(_layer_call(module)) == row.flavour


def test_table_covers_every_flavour_and_both_routes():
    assert {r.flavour for r in RESOLUTION} == {KERAS3, TF_KERAS, TF_INTERNAL}
    spellings = {r.spelling for r in RESOLUTION}
    for s in ("import keras", "import tf_keras", "tf.keras.X", "from tensorflow import keras",
              "import tensorflow.keras as K", "from tensorflow.keras import layers"):
        assert s in spellings


@pytest.mark.parametrize("dist", list(VERSIONS))
def test_versions_are_the_installed_ones(dist):
    # The table holds for these minor versions: a different install must re-establish it.
    name = {"tensorflow_model_optimization": "tensorflow-model-optimization", "tf_keras": "tf-keras"}.get(dist, dist)
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{name} not installed")
    assert installed == VERSIONS[dist] or installed.startswith(VERSIONS[dist] + "."), (name, installed)


@pytest.mark.tf
@pytest.mark.parametrize("row", RESOLUTION, ids=_IDS)
def test_row_holds_for_installed_packages(row):
    pytest.importorskip("tensorflow_model_optimization")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    script = row.code + "print('PACKAGE', type(layer).__module__.split('.')[0])\n"
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    package = [ln.split()[1] for ln in p.stdout.splitlines() if ln.startswith("PACKAGE ")][-1]
    assert _PACKAGE[package] == row.flavour, (row.code, package)


# --- QF501's fix makes the script train: quantize_model and one training step ---------------
_TRAIN = (
    "import numpy as np\n"
    "q = tfmot.quantization.keras.quantize_model(model)\n"
    "q.compile(optimizer='adam', loss='mse')\n"
    "h = q.fit(np.ones((4, 3), 'float32'), np.zeros((4, 2), 'float32'), epochs=1, verbose=0)\n"
    "assert np.isfinite(h.history['loss'][0])\n"
    "print('TRAINED', type(q).__module__.split('.')[0])\n"
)
QF501_SCRIPTS = {
    # issue 11's smallest input: the tensorflow.keras import comes after tfmot
    "from-tensorflow-keras-after-tfmot": (
        "import tensorflow_model_optimization as tfmot\n"
        "from tensorflow.keras import layers, models\n"
        "model = models.Sequential([layers.Dense(2, input_shape=(3,))])\n"
    ),
    "import-keras": (
        "import keras\n"
        "import tensorflow_model_optimization as tfmot\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
    ),
    "tf-keras-touched-before-tfmot": (
        "import os\n"
        "import tensorflow as tf\n"
        "Dense = tf.keras.layers.Dense\n"
        "import tensorflow_model_optimization as tfmot\n"
        "model = tf.keras.Sequential([tf.keras.Input((3,)), Dense(2)])\n"
    ),
}


def _run(path, env):
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.tf
@pytest.mark.parametrize("name", list(QF501_SCRIPTS))
def test_qf501_fix_makes_quantize_model_train(name, tmp_path):
    pytest.importorskip("tensorflow_model_optimization")
    import shutil
    from pathlib import Path

    qfix_bin = shutil.which("qfix", path=str(Path(sys.executable).parent))
    assert qfix_bin, "no qfix console script next to the interpreter"
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    script = tmp_path / "train.py"
    script.write_text(QF501_SCRIPTS[name] + _TRAIN)

    before = _run(script, env)
    assert before.returncode != 0 and "to_quantize" in before.stderr, before.stderr[-1500:]

    fixed = subprocess.run([qfix_bin, str(script), "--write", "--unsafe-fixes", "--select", "QF501"],
                           capture_output=True, text=True, env={**env, "PYTHONPATH": str(root)}, timeout=120)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert 'os.environ["TF_USE_LEGACY_KERAS"] = "1"' in script.read_text()

    after = _run(script, env)
    assert after.returncode == 0, script.read_text() + after.stderr[-1500:]
    assert "TRAINED tf_keras" in after.stdout


@pytest.mark.tf
def test_qf101_cast_for_tensorflow_keras_builds_under_keras3(tmp_path):
    # `from tensorflow.keras import layers` is Keras 3 (table above), which refuses tf.cast on a
    # KerasTensor ("A KerasTensor cannot be used as input to a TensorFlow function"): QF101's
    # cast must be keras.ops.cast there, and the fixed model must build and run.
    from qfix.rules import select, source_rules
    from qfix.source.engine import fix_source

    src = (
        "import numpy as np\nimport tensorflow as tf\nfrom tensorflow.keras import layers\n"
        "img = tf.keras.Input((2, 2, 1), dtype=tf.uint8)\nflat = layers.Flatten()(img)\nmeta = layers.Input((4,))\n"
        "x = layers.concatenate([flat, meta])\nmodel = tf.keras.Model([img, meta], x)\n"
        "out = model([np.full((1, 2, 2, 1), 3, 'uint8'), np.zeros((1, 4), 'float32')])\n"
        "print('BUILT', type(model).__module__.split('.')[0], float(np.asarray(out)[0, 0]))\n"
    )
    fixed = fix_source(src, rules=select(source_rules(), ["QF101"])).code
    assert "keras.ops.cast(flat" in fixed, fixed
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    script = tmp_path / "build.py"
    # the cast qfix offered before the table: tf.cast, which Keras 3 refuses
    script.write_text(src.replace("concatenate([flat,", "concatenate([tf.cast(flat, tf.float32),"))
    assert "KerasTensor cannot be used" in _run(script, env).stderr
    script.write_text(fixed)
    p = _run(script, env)
    assert p.returncode == 0, fixed + p.stderr[-1500:]
    assert "BUILT keras 3.0" in p.stdout
