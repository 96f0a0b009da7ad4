"""Proof for the source fixes marked safe that rewrite model-building code: build the model
from the original and from the fixed source, and compare outputs (max abs diff <= 1e-5).
Needs TensorFlow + Keras 3 (marked `tf`)."""

from __future__ import annotations

import textwrap

import pytest

from qfix.rules import select, source_rules
from qfix.source.engine import fix_source

pytestmark = pytest.mark.tf

CASES = {
    "rescale-offset": "x = keras.layers.Lambda(lambda t: t / 127.5 - 1.0)(inputs)",
    "scale": "x = keras.layers.Lambda(lambda t: 0.5 * t)(inputs)",
    "offset": "x = keras.layers.Lambda(lambda t: t - 3)(inputs)",
    "relu6": "x = keras.layers.Lambda(lambda t: tf.nn.relu6(t))(inputs * 10.0)",
    "clip": "x = keras.layers.Lambda(lambda t: tf.clip_by_value(t, 0.0, 6.0))(inputs * 10.0)",
    "relu-max": "x = keras.layers.Lambda(lambda t: keras.activations.relu(t, max_value=2.0))(inputs)",
    "resize-bilinear": "x = keras.layers.Lambda(lambda t: tf.image.resize(t, (12, 10)))(inputs)",
    "resize-nearest": "x = keras.layers.Lambda(lambda t: tf.image.resize(t, (16, 16), method='nearest'))(inputs)",
}


def _build(src: str):
    import numpy as np

    ns: dict = {}
    exec(src, ns)  # noqa: S102 - test-only, our own snippets
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(2, 8, 8, 3)).astype("float32")
    return ns, x


@pytest.mark.parametrize("flavor", ["import keras", "import tf_keras as keras"])
@pytest.mark.parametrize("name", list(CASES))
def test_lambda_rewrites_keep_outputs(name, flavor):
    pytest.importorskip("tensorflow")
    pytest.importorskip(flavor.split()[1])
    import numpy as np

    src = flavor + "\nimport tensorflow as tf\ninputs = keras.Input((8, 8, 3))\n" + CASES[name] + "\nmodel = keras.Model(inputs, x)\n"
    fixed = fix_source(src, rules=source_rules()).code
    assert "Lambda" not in fixed, fixed
    ns_a, x = _build(src)
    ns_b, _ = _build(fixed)
    a = np.asarray(ns_a["model"](x))
    b = np.asarray(ns_b["model"](x))
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= 1e-5
    assert not ns_b["model"].weights  # no weights before, none after


def test_mixed_dtype_cast_keeps_outputs():
    pytest.importorskip("tensorflow")
    import numpy as np

    src = textwrap.dedent(
        """\
        import keras
        a = keras.Input((4,), dtype="uint8")
        b = keras.Input((4,))
        x = keras.layers.Concatenate()([a, b])
        model = keras.Model([a, b], x)
        """
    )
    fixed = fix_source(src, rules=source_rules()).code
    assert 'keras.ops.cast(a, "float32")' in fixed
    ns_a, ns_b = {}, {}
    exec(src, ns_a)  # noqa: S102
    exec(fixed, ns_b)  # noqa: S102
    xa = np.arange(8, dtype="uint8").reshape(2, 4)
    xb = np.linspace(0, 1, 8, dtype="float32").reshape(2, 4)
    out_a = np.asarray(ns_a["model"]([xa, xb]))
    out_b = np.asarray(ns_b["model"]([xa, xb]))
    assert out_b.dtype == np.float32
    assert np.max(np.abs(out_a.astype("float32") - out_b)) <= 1e-5


def test_converter_recipe_fixes_give_a_full_integer_model(tmp_path):
    """QF402 + QF403 fixes on a typical Coral export script: the result converts, with int8
    ops only and uint8 I/O."""
    pytest.importorskip("tensorflow")
    tf_keras = pytest.importorskip("tf_keras")
    import numpy as np

    src = textwrap.dedent(
        """\
        import numpy as np
        import tensorflow as tf

        def representative_data_gen():
            for x in images[:8]:
                yield [np.expand_dims(x, 0).astype(np.float32)]

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_data_gen
        tflite_model = converter.convert()
        """
    )
    fixed = fix_source(src, rules=source_rules(), target="edgetpu", unsafe_fixes=True).code
    assert "TFLITE_BUILTINS_INT8" in fixed and "inference_input_type = tf.uint8" in fixed
    inputs = tf_keras.Input((8, 8, 3))
    x = tf_keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(x))
    ns = {"model": model, "images": np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 3)).astype("float32")}
    exec(fixed, ns)  # noqa: S102
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interp = Interpreter(model_content=ns["tflite_model"])
    assert interp.get_input_details()[0]["dtype"] == np.uint8
    assert interp.get_output_details()[0]["dtype"] == np.uint8


def test_qat_trap_fix_makes_conversion_work():
    """QF404: the original QAT export raises ValueError on TF 2.x; the fixed one converts."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorflow_model_optimization")
    pytest.importorskip("tf_keras")
    import subprocess
    import sys

    src = textwrap.dedent(
        """\
        import os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot
        import tf_keras as keras

        i = keras.Input((8, 8, 3))
        o = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(i)))
        q = tfmot.quantization.keras.quantize_model(keras.Model(i, o))
        converter = tf.lite.TFLiteConverter.from_keras_model(q)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        tflite_model = converter.convert()
        print("CONVERTED", len(tflite_model))
        """
    )
    fixed = fix_source(src, rules=select(source_rules(), ["QF404"])).code
    assert "supported_ops" not in fixed
    before = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=600)
    after = subprocess.run([sys.executable, "-c", fixed], capture_output=True, text=True, timeout=600)
    assert "CONVERTED" not in before.stdout and "representative_dataset" in before.stderr
    assert "CONVERTED" in after.stdout, after.stderr[-2000:]


def test_keras3_with_tfmot_fix_makes_quantize_model_work():
    """QF501: `import keras` (Keras 3) + tfmot fails; the fixed script quantizes."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorflow_model_optimization")
    pytest.importorskip("tf_keras")
    import subprocess
    import sys

    src = textwrap.dedent(
        """\
        import keras
        import tensorflow_model_optimization as tfmot

        m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
        q = tfmot.quantization.keras.quantize_model(m)
        print("QUANTIZED", len(q.layers))
        """
    )
    fixed = fix_source(src, rules=source_rules(), unsafe_fixes=True).code
    assert "import tf_keras as keras" in fixed
    before = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=600)
    after = subprocess.run([sys.executable, "-c", fixed], capture_output=True, text=True, timeout=600)
    assert "QUANTIZED" not in before.stdout
    assert "QUANTIZED" in after.stdout, after.stderr[-2000:]
