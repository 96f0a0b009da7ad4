"""Vet every reference a `.keras` archive holds before anything loads it.

A `.keras` file can point outside itself in two places, and both are checked here, with no
TensorFlow and independent of `--select/--ignore` (a filtered finding must never open a door):

* **config.json** — every serialized object carries `module` (and `class_name`,
  `registered_name`). Keras resolves a class it does not have registered by importing `module`,
  which runs that module's top-level code: tf_keras imports the top-level `"module"` of the
  model itself. Only Keras' own packages are allowed (`keras`, `keras.*`, `tf_keras`,
  `tf_keras.*`: a prefix test on the dotted name, so `kerasevil.layers` is foreign), and a few
  exact classes of TensorFlow and tfmot (`TRUSTED`: TensorFlow's initializers, which tf_keras
  writes with their TensorFlow module).
  Anything else is foreign: `foreign_references` lists it; the loader refuses it unless the
  user opted in (`--custom-objects` registering that class, `--trust-lambdas` for functions).
* **model.weights.h5** — HDF5 can store a dataset's bytes in another file (external storage),
  assemble it from other files (virtual datasets), link to objects in other files (external
  links), and run filter plugins found on the machine. `check_hdf5` walks the file's links and
  dataset creation properties (metadata only: no dataset is read) and refuses all of these.
  Keras writes plain contiguous or compact datasets, so nothing legitimate is refused.
  Sources: HDF5 User Guide, "Datasets" (external storage, H5Pset_external) and "Virtual
  Dataset" chapters; h5py docs, "Groups: Soft links / External links".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from qfix.errors import error

BUILTIN_PACKAGES = ("keras", "tf_keras")
# HDF5 filters Keras or h5py may use that are built into libhdf5 (no plugin is loaded for
# them): deflate (1), shuffle (2), fletcher32 (3), szip (4), nbit (5), scaleoffset (6).
BUILTIN_FILTERS = frozenset({1, 2, 3, 4, 5, 6})
MAX_HDF5_OBJECTS = 1_000_000  # links walked before giving up (a real model has < 10^5)


def is_builtin_module(module: str) -> bool:
    """Whether `module` is one of Keras' own packages (`keras.layers`, `tf_keras.src...`)."""
    return any(module == p or module.startswith(p + ".") for p in BUILTIN_PACKAGES)


@dataclass(frozen=True)
class Reference:
    """A serialized object that names a Python module. `pointer` is its JSON pointer."""

    pointer: str
    module: str
    class_name: str | None
    registered_name: str | None
    is_function: bool  # a Lambda's function (bytecode or a named function), not a class

    def describe(self) -> str:
        what = self.registered_name or ".".join(x for x in (self.module, self.class_name) if x)
        return f"{what!r} (module {self.module!r}) at {self.pointer}"


def references(config: Any) -> Iterator[Reference]:
    """Every object in the config that names a module, depth-first, iteratively (a crafted
    config may nest deeper than Python's recursion limit)."""
    stack: list[tuple[str, Any]] = [("", config)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str):
                cls = node.get("class_name")
                reg = node.get("registered_name")
                yield Reference(
                    pointer or "/",
                    module,
                    cls if isinstance(cls, str) else None,
                    reg if isinstance(reg, str) else None,
                    "function_type" in node or cls == "function",
                )
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        for key, value in items:
            if isinstance(value, (dict, list)):
                stack.append((f"{pointer}/{_escape(str(key))}", value))


# TensorFlow's own initializers (`tf.constant_initializer(0)`, `tf.zeros_initializer()`): tf_keras
# writes them with their TensorFlow module (its EfficientNetV2 head's `bias_initializer` does) and
# resolves them by importing it: TensorFlow's code, loaded already by the Keras that opens the
# file. The classes of tensorflow/python/ops/init_ops_v2.py (TF 2.x), by exact name.
TF_INITIALIZERS = frozenset(("tensorflow.python.ops.init_ops_v2", c) for c in (
    "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal", "VarianceScaling",
    "Orthogonal", "Identity", "GlorotUniform", "GlorotNormal"))
# Classes outside Keras that are allowed, as exact (module, class) pairs of installed packages,
# never code from the model file: TensorFlow's initializers, and the annotation wrapper of tfmot
# that qfix itself writes into a model (`--mode qat` annotates the layers tfmot rejects;
# qfix.model.rewrites.annotate_quantize).
TRUSTED = frozenset({("tensorflow_model_optimization.python.core.quantization.keras.quantize_annotate",
                      "QuantizeAnnotate")}) | TF_INITIALIZERS


def foreign_references(config: Any) -> list[Reference]:
    """References to modules outside Keras (and TRUSTED), in document order."""
    found = [r for r in references(config)
             if not is_builtin_module(r.module) and (r.module, r.class_name) not in TRUSTED]
    return sorted(found, key=lambda r: r.pointer)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def check_hdf5(h5file: Any) -> None:
    """Refuse an open h5py File that reaches outside itself (external links, external storage,
    virtual datasets) or needs a filter plugin. Reads metadata only, through h5py's low-level
    API (the high-level one costs a lookup per name: seconds on a 20,000-layer model).
    Raises QF902, or QF903 past MAX_HDF5_OBJECTS links."""
    from h5py import h5d, h5l, h5o

    links: list[tuple[bytes, int]] = []

    def on_link(name: bytes, info: Any) -> int | None:
        links.append((name, info.type))
        return 1 if len(links) > MAX_HDF5_OBJECTS else None  # non-None stops the walk

    h5file.id.links.visit(on_link, info=True)  # every link of every group; soft/external ones not followed
    if len(links) > MAX_HDF5_OBJECTS:
        raise error("QF903", f"model.weights.h5 has more than {MAX_HDF5_OBJECTS} objects")
    for raw, kind in links:
        name = raw.decode("utf-8", "replace")
        if kind == h5l.TYPE_EXTERNAL:
            target = h5file.id.links.get_val(raw)[0].decode("utf-8", "replace")
            raise error("QF902", f"model.weights.h5: {name!r} is an external link to {target!r}")
        if kind != h5l.TYPE_HARD:
            raise error("QF902", f"model.weights.h5: {name!r} is a soft or user-defined link (Keras writes none)")
    datasets: list[bytes] = []

    def on_object(name: bytes, info: Any) -> None:
        if info.type == h5o.TYPE_DATASET:
            datasets.append(name)

    h5o.visit(h5file.id, on_object, info=True)
    for raw in datasets:
        name = raw.decode("utf-8", "replace")
        dcpl = h5d.open(h5file.id, raw).get_create_plist()
        if dcpl.get_layout() == h5d.VIRTUAL:
            raise error("QF902", f"model.weights.h5: dataset {name!r} is virtual (assembled from other files)")
        if dcpl.get_external_count() > 0:
            target = dcpl.get_external(0)[0].decode("utf-8", "replace")
            raise error("QF902", f"model.weights.h5: dataset {name!r} stores its data in an external file {target!r}")
        for i in range(dcpl.get_nfilters()):
            code = dcpl.get_filter(i)[0]
            if code not in BUILTIN_FILTERS:
                raise error("QF902", f"model.weights.h5: dataset {name!r} needs HDF5 filter plugin {code}")
