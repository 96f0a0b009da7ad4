"""Fixtures of the target-check tests: tiny real Keras models converted to full-int8 TFLite.

Conversions are cached by content: the key hashes the model builders' source, the shared
converter's (fixtures/int8.py) and the installed TensorFlow, Keras and tf_keras versions, so a
changed builder, converter or library converts again. The
cache is pytest's cache dir when it is on (a rerun neither converts nor imports TensorFlow);
with `-p no:cacheprovider` (as `make test` runs) it is the run's temp dir, shared by the
xdist workers under a lock (the pattern of xdist's docs), so one worker converts and the
other reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from importlib.metadata import version
from pathlib import Path

import pytest

from fixtures.int8 import convert_int8
from tflite_models import _builders


def _cache_dir(request, tmp_path_factory) -> Path:
    store = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    if store is not None:
        return Path(store.mkdir("qfix-tflite-models"))
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # <run>/popen-gwN -> <run>, common to the run's workers
    path = base / "qfix-tflite-models"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tflite_models(request, tmp_path_factory) -> dict[str, tuple[bytes, list[str]]]:
    """name -> (flatbuffer bytes, Keras layer names)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    here = Path(__file__).parent
    source = (here / "tflite_models.py").read_bytes() + (here.parents[1] / "fixtures" / "int8.py").read_bytes()
    versions = " ".join(version(p) for p in ("tensorflow", "keras", "tf_keras"))
    key = hashlib.sha256(source + versions.encode()).hexdigest()[:12]
    cache = _cache_dir(request, tmp_path_factory)
    manifest = cache / f"{key}.json"  # name -> Keras layer names; written after every .tflite
    with _locked(cache / f"{key}.lock"):
        if not manifest.exists():
            names = {}
            for name, (build, io_dtype) in _builders().items():
                model = build()
                names[name] = [layer.name for layer in model.layers]
                (cache / f"{name}-{key}.tflite").write_bytes(convert_int8(model, io_dtype))
            manifest.write_text(json.dumps(names))
        names = json.loads(manifest.read_text())
    return {name: ((cache / f"{name}-{key}.tflite").read_bytes(), layers) for name, layers in names.items()}
