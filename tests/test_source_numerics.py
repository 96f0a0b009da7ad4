"""Proof for the source fixes marked safe that rewrite model-building code: build the model
from the original and from the fixed source, and compare outputs (max abs diff <= 1e-5).
Needs TensorFlow + Keras 3 (marked `tf`)."""

from __future__ import annotations

import textwrap

import pytest

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
    fixed = fix_source(src).code
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
    fixed = fix_source(src).code
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
