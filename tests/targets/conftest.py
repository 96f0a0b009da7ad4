"""Fixtures of the target-check tests: tiny real Keras models converted to full-int8 TFLite.

Conversions are cached in pytest's cache dir, keyed by the model builders' text and the TF
version, so reruns skip the converter.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tflite_models import _builders, convert_int8


@pytest.fixture(scope="session")
def tflite_models(request, tmp_path_factory) -> dict[str, tuple[bytes, list[str]]]:
    """name -> (flatbuffer bytes, Keras layer names)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    key = hashlib.sha256((Path(__file__).parent / "tflite_models.py").read_bytes() + tf.__version__.encode()).hexdigest()[:12]
    store = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    cache = Path(store.mkdir("qfix-tflite-models")) if store else tmp_path_factory.mktemp("tflite")
    out = {}
    for name, (build, io_dtype) in _builders().items():
        model = build()
        names = [layer.name for layer in model.layers]
        path = cache / f"{name}-{key}.tflite"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # xdist workers may race
            tmp.write_bytes(convert_int8(model, io_dtype))
            tmp.replace(path)
        out[name] = (path.read_bytes(), names)
    return out


