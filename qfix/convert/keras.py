"""Load a `.keras` file with the dialect that wrote it, running no code from the file.

`safe_mode=True` makes both Keras 3 and tf_keras refuse to deserialise Lambda bytecode; only
`trust_lambdas=True` (the CLI's --trust-lambdas) lifts it. Custom classes load only when the
user names the module that registers them (--custom-objects MODULE), which is imported here
and nowhere else. Before Keras sees the file, `vet_before_load` re-reads and vets it whatever
the caller decided from its (possibly `--select`-filtered) findings: every module the config
names must be Keras' own or resolve to a class the user's module registered, and the weights
must reference nothing outside the archive. TensorFlow/Keras are imported inside the
functions, never at module load, with KERAS_HOME pointed at a private folder so that loading
never writes `~/.keras/keras.json`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from qfix.convert.calibration import InputSpec
from qfix.errors import error, first_line

Dialect = Literal["keras3", "tf_keras"]


def load_model(
    path: str | Path,
    dialect: Dialect,
    custom_objects_module: str | None = None,
    trust_lambdas: bool = False,
) -> Any:
    """Return the loaded (uncompiled) model; bad input raises QfixError, never a traceback."""
    p = Path(path)
    if not p.is_file():
        raise error("QF907", f"model not found: {p}")
    if dialect not in ("keras3", "tf_keras"):
        raise error("QF914", f"unknown Keras dialect {dialect!r} (keras3 or tf_keras)")
    if custom_objects_module:
        import_custom_objects(custom_objects_module)
    import_tf()
    from qfix.model.archive import read_archive

    archive = read_archive(p)  # read once: the hub handles, the vet and the quantize scope use it
    objects: dict[str, Any] = {}  # classes qfix supplies itself (hub.KerasLayer, tf_keras only)
    if dialect == "keras3":
        import keras

        loader, registered = keras.saving.load_model, keras.saving.get_registered_object
    else:
        import tf_keras

        from qfix.convert.hub import hub_objects

        objects = hub_objects(archive.config, p)
        loader, known = tf_keras.models.load_model, tf_keras.saving.get_registered_object
        registered = lambda name: objects.get(name) or known(name)  # noqa: E731
    vet_before_load(archive, trust_lambdas, registered, custom_objects_module, dialect)
    try:
        with _quantize_scope(archive.config, dialect):
            return loader(str(p), compile=False, safe_mode=not trust_lambdas, custom_objects=objects or None)
    except Exception as e:  # Keras raises ValueError/TypeError/KeyError/OSError for bad files
        if isinstance(e, MemoryError) or "Unable to allocate" in str(e):
            # numpy's MemoryError, which Keras wraps ("A total of 2 objects could not be loaded;
            # Unable to allocate 256. MiB ..."): out of memory, not a file Keras cannot load
            raise MemoryError(str(e)) from e
        mismatch = _weights_mismatch(str(e))
        if mismatch:
            raise error("QF905", f"{p.name}: the weights do not match the model's config: {mismatch}")
        raise error("QF906", f"{p.name}: {dialect} cannot load this model: {_load_failure(e)}")


# Keras's words when model.weights.h5 does not fit config.json (Keras 3.15 saving_lib, tf_keras
# 2.21 saving_lib / variables): a layer given fewer or more arrays than it has variables, or an
# array of another shape.
_COUNT = re.compile(r"Layer '([^']+)' expected (\d+) variables, but received (\d+) variables")
_SHAPE_K3 = re.compile(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))\. "
                       r"Target variable: <Variable path=([^,]+),")
_SHAPE_TFK = re.compile(r"Cannot assign value to variable ' ?([^']+)': Shape mismatch\.\s*The variable shape "
                        r"(\([^)]*\)), and the assigned value shape (\([^)]*\))")


def _weights_mismatch(text: str) -> str | None:
    """The layer and the arrays, when Keras failed because the weights file does not fit the
    config (QF905), else None."""
    if m := _COUNT.search(text):
        return f"layer '{m[1]}' has {m[2]} weight arrays, the file holds {m[3]} for it"
    if m := _SHAPE_K3.search(text):
        return f"variable '{m[3]}' has shape {m[1]}, the file holds {m[2]}"
    if m := _SHAPE_TFK.search(text):
        return f"variable '{m[1].removesuffix(':0')}' has shape {m[2]}, the file holds {m[3]}"
    return None


def vet_before_load(archive: Any, trust_lambdas: bool, registered: Any, module: str | None = None,
                    dialect: str = "") -> None:
    """Refuse a file whose config names a module outside Keras that Keras would import (a class
    not registered by the user's --custom-objects module; a Lambda function without
    --trust-lambdas), or whose weights reach outside the archive. `archive`: the
    qfix.model.archive.KerasArchive of the file Keras will open; `module`: the --custom-objects
    module already imported (its name goes into the message); `dialect`: the Keras that loads
    the file ("keras3" / "tf_keras"), whose registry `registered` reads. Raises QF917 / QF90x."""
    from qfix.model.vet import foreign_references

    path = archive.path
    for ref in foreign_references(archive.config):
        if ref.is_function:
            if trust_lambdas:
                continue
            raise error("QF917", f"{path.name}: a Lambda function from {ref.describe()} would run code "
                                 "from the file (--trust-lambdas)")
        name = ref.registered_name or ref.class_name
        if name and registered(name) is not None:
            continue  # Keras takes a registered class from the registry, without importing `module`
        if module:  # the user passed the option: say what their module lacks, in which Keras
            raise error("QF917", f"{path.name}: config.json names {ref.describe()}, which --custom-objects "
                                 f"{module} does not register with {_KERAS_NAMES.get(dialect, dialect)} (the Keras "
                                 f"loading it here; {_REGISTER.get(dialect, 'register the class')})")
        raise error("QF917", f"{path.name}: config.json names {ref.describe()}, which is not Keras; qfix "
                             "never imports a module named by a model file (pass --custom-objects MODULE "
                             "that registers the class)")
    archive.weights_bytes  # noqa: B018  CRC-checked and vetted before Keras opens the file


_KERAS_NAMES = {"keras3": "Keras 3", "tf_keras": "tf_keras"}
_REGISTER = {  # what the module must do for each Keras, said in QF917
    "keras3": "decorate a keras.layers.Layer subclass with keras.saving.register_keras_serializable, "
              "with the package and name the config shows",
    "tf_keras": "decorate a tf_keras.layers.Layer subclass with tf_keras.saving.register_keras_serializable, "
                "with the package and name the config shows",
}


def _quantize_scope(config: dict[str, Any], dialect: str) -> Any:
    """tfmot's quantize scope with qfix's QuantizeConfigs when a tf_keras model holds tfmot
    annotations (what `--mode qat` writes), else nothing: tf_keras needs the scope to rebuild
    `QuantizeAnnotate` and the configs it names."""
    import json

    if dialect != "tf_keras" or '"QuantizeAnnotate"' not in json.dumps(config):
        return contextlib.nullcontext()
    import tensorflow_model_optimization as tfmot

    from qfix.convert.qat_configs import custom_objects

    return tfmot.quantization.keras.quantize_scope(custom_objects())


def _load_failure(e: BaseException) -> str:
    """Keras' load errors are paragraphs, and the useful one is often a chained cause: name
    the cause and the qfix option that addresses it."""
    chain, cur = [], e
    while cur is not None and len(chain) < 8:
        chain.append(str(cur))
        cur = cur.__cause__ or cur.__context__
    text = "\n".join(chain)
    if "safe_mode" in text and "ambda" in text:
        return "a Lambda layer holds Python bytecode, which qfix does not run (--trust-lambdas)"
    missing = re.findall(r"Could not (?:locate|deserialize) class '(\w+)'", text)
    if missing and missing[0] in ("Functional", "Sequential", "Model"):
        return f"class '{missing[0]}' not found: the file was written by the other Keras dialect"
    if missing:
        return f"unknown class '{missing[-1]}' (pass --custom-objects MODULE that registers it)"
    # Keras 3: "A total of N objects could not be loaded. Example error message for object
    # <...>:" then a blank line and the reason: quote the reason, not the preamble
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("A total of") and lines[0].endswith(":"):
        return f"{lines[0].split('. Example')[0]}; {lines[1]}"[:300]
    return first_line(e)


def import_custom_objects(module: str) -> None:
    """Import the user's module so its `register_keras_serializable` classes are registered."""
    from qfix.convert.user_code import import_user_module

    try:
        import_user_module(module)
    except Exception as e:  # any failure inside the user's module, not only ImportError
        raise error(
            "QF911", f"--custom-objects {module}: import failed: {type(e).__name__}: {first_line(e)}"
        )


def input_names(model: Any) -> list[str]:
    """Model input names as the config spells them: the InputLayer names.

    Keras 3 names an unnamed `Input`'s tensor "keras_tensor_N" but its InputLayer
    "input_layer_N"; the config (and so the user's .npz keys) knows only the latter.
    """
    names = []
    for t in model.inputs:
        hist = getattr(t, "_keras_history", None)
        owner = getattr(hist, "operation", None) or getattr(hist, "layer", None)
        names.append(owner.name if owner is not None else t.name.split(":")[0])
    return names


def input_specs(model: Any) -> list[InputSpec]:
    """InputSpecs read off a loaded model (the model side builds them from the graph instead;
    this is for callers that hold only a live model: tests, benches)."""
    specs = []
    for name, t in zip(input_names(model), model.inputs):
        dtype = t.dtype if isinstance(t.dtype, str) else t.dtype.name
        specs.append(InputSpec(name, tuple(t.shape), dtype))
    return specs


def output_names(model: Any) -> list[str]:
    """Output names, in the order `call_model` returns outputs. A tf_keras Sequential has no
    `output_names`: its outputs are named after the layers that produce them."""
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [t.name.split("/")[0].split(":")[0] for t in getattr(model, "outputs", None) or []] or ["output_0"]


def call_model(model: Any, by_name: dict[str, Any]) -> list[Any]:
    """Call `model` (training=False) on inputs keyed by InputLayer name, passed in the model's
    own input structure (single tensor, list, or dict for `Model({"a": ...})`), and return the
    outputs as a flat list in `output_names` order (nest flattening sorts dict outputs by key,
    as Keras does when it lists `model.outputs`)."""
    import tensorflow as tf

    names = input_names(model)
    by_id = {id(t): by_name[n] for n, t in zip(names, model.inputs)}
    struct = getattr(model, "_inputs_struct", None)  # Keras 3
    if struct is None:
        struct = getattr(model, "_nested_inputs", None)  # tf_keras
    try:
        args = tf.nest.map_structure(lambda t: by_id[id(t)], struct)
    except (KeyError, TypeError, ValueError):  # unknown structure: Keras' positional order
        flat = [by_name[n] for n in names]
        args = flat if len(flat) > 1 else flat[0]
    return tf.nest.flatten(model(args, training=False))


def sniff_dialect(path: str | Path) -> Dialect:
    """Which Keras wrote a `.keras` archive, from its metadata.json (no TF import)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("metadata.json")
            if info.file_size > 1 << 20:
                raise ValueError("metadata.json is implausibly large")
            version = str(json.loads(z.read(info)).get("keras_version", ""))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise error("QF901", f"{Path(path).name}: not a readable .keras archive ({first_line(e)})")
    return "keras3" if version.startswith("3.") else "tf_keras"


# --- TensorFlow import and its noise ---------------------------------------------------------


def import_tf():
    """Import TensorFlow once, quietly (the one place qfix triggers the import)."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # only read at the first import
        _private_keras_home()
        with captured_output():  # absl/CUDA-probe chatter that the env var does not silence
            import tensorflow  # noqa: F401
    import tensorflow as tf

    return tf


def _private_keras_home() -> None:
    """Keras 3 and tf_keras write `$KERAS_HOME/keras.json` (default `~/.keras`) on first import;
    a run of qfix writes nothing but its outputs, so point them at a folder removed at exit."""
    if "KERAS_HOME" in os.environ:
        return
    import atexit
    import shutil

    home = tempfile.mkdtemp(prefix="qfix-keras-home-")
    os.environ["KERAS_HOME"] = home
    atexit.register(shutil.rmtree, home, ignore_errors=True)


class _Log:
    text = ""


@contextlib.contextmanager
def captured_output() -> Iterator[_Log]:
    """Send fd 1/2 (TF's and the converter's C++ logging) and Python warnings to a buffer."""
    log = _Log()
    with tempfile.TemporaryFile(mode="w+b") as buf, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for stream in (sys.stdout, sys.stderr):  # keep earlier buffered text out of the log
            with contextlib.suppress(Exception):
                stream.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(buf.fileno(), 1)
            os.dup2(buf.fileno(), 2)
            yield log
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            buf.seek(0)
            text = buf.read().decode("utf-8", "replace")
            text += "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
            log.text = text
