"""Tiny real Keras models converted to full-int8 TFLite for the target-check tests.

Imported by test_targets.py / test_tflite_model.py (not a conftest: nothing here runs unless a
`tf`-marked test asks for `tflite_models`). Conversions are cached in pytest's cache dir,
keyed by this file's text and the TF version, so reruns skip the converter.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

SHAPE = (8, 8, 3)


def _keras3_models() -> dict[str, Callable]:
    import keras
    from keras import layers as L

    def inp(batch=1, shape=SHAPE):
        return keras.Input(shape, batch_size=batch, name="image")

    def friendly(batch=1):
        x = inp(batch)
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
        y = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
        y = L.ReLU(6.0, name="relu6")(y)
        y = L.GlobalAveragePooling2D(name="gap")(y)
        y = L.Dense(4, name="head")(y)
        y = L.Softmax(name="probs")(y)
        return keras.Model(x, y)

    def head(x):
        y = L.GlobalAveragePooling2D(name="gap")(x)
        return L.Dense(4, name="head")(y)

    def hard_swish():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", name="stem_conv")(x)
        y = L.Activation("hard_swish", name="hswish")(y)
        return keras.Model(x, head(y))

    def leaky_relu():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", name="stem_conv")(x)
        y = L.LeakyReLU(0.1, name="leaky")(y)
        return keras.Model(x, head(y))

    def cumsum():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
        y = L.Lambda(lambda t: keras.ops.cumsum(t, axis=1), name="running_sum")(y)
        return keras.Model(x, head(y))

    def five_d():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
        y = L.Reshape((2, 4, 8, 8), name="to_5d")(y)  # two dims > 1 outside the 3 innermost
        y = L.Lambda(lambda t: keras.ops.max(t, axis=1), name="pool_5d")(y)
        return keras.Model(x, head(y))

    def strided_slice():
        x = inp()
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
        y = L.Lambda(lambda t: t[:, ::2, ::2, :], name="subsample")(y)
        return keras.Model(x, head(y))

    return {
        "friendly": friendly,
        "dynamic_batch": lambda: friendly(batch=None),
        "hard_swish": hard_swish,
        "leaky_relu": leaky_relu,
        "cumsum": cumsum,
        "five_d": five_d,
        "strided_slice": strided_slice,
    }


def _tf_keras_friendly():
    import tf_keras
    from tf_keras import layers as L

    x = tf_keras.Input(SHAPE, batch_size=1, name="image")
    y = L.Conv2D(8, 3, padding="same", activation="relu", name="stem_conv")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = L.ReLU(6.0, name="relu6")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dense(4, name="head")(y)
    y = L.Softmax(name="probs")(y)
    return tf_keras.Model(x, y)


def convert_int8(model, io_dtype: str | None = "uint8") -> bytes:
    """Full-int8 post-training quantization, 8 random calibration samples."""
    import tensorflow as tf

    shape = tuple(d or 1 for d in model.inputs[0].shape)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.random(shape, dtype=np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_dtype is not None:
        conv.inference_input_type = getattr(tf, io_dtype)
        conv.inference_output_type = getattr(tf, io_dtype)
    return conv.convert()


# name -> (builder, io dtype)
def _builders() -> dict[str, tuple[Callable, str | None]]:
    k3 = _keras3_models()
    out = {name: (build, "uint8") for name, build in k3.items()}
    out["friendly_float_io"] = (k3["friendly"], None)
    out["friendly_int8_io"] = (k3["friendly"], "int8")
    out["friendly_tf_keras"] = (_tf_keras_friendly, "uint8")
    return out


@pytest.fixture(scope="session")
def tflite_models(request) -> dict[str, tuple[bytes, list[str]]]:
    """name -> (flatbuffer bytes, Keras layer names)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    key = hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()[:12]
    cache = Path(request.config.cache.mkdir("qfix-tflite-models"))
    out = {}
    for name, (build, io_dtype) in _builders().items():
        model = build()
        names = [layer.name for layer in model.layers]
        path = cache / f"{name}-{key}.tflite"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(convert_int8(model, io_dtype))
            tmp.replace(path)
        out[name] = (path.read_bytes(), names)
    return out
