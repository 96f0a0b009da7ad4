"""Check the types of the parts of config.json qfix reads, once, where the file is read.

config.json comes from a stranger. Everything after `read_archive` (the graph, the rules, the
rewrites, calibration) trusts the types checked here, so a wrong type is one QF904 line naming
the JSON pointer instead of an AttributeError, OverflowError or TypeError deep inside a rule.

What is checked, at every level of nesting (iteratively):

* a model object: `class_name` a string, `config` an object; for Functional and Sequential a
  `layers` list, `input_layers` / `output_layers` built of `[name, node, index]` triples;
* a layer object: `class_name` a string; `name` (top level or in `config`) a string; `config`
  an object; `module` / `registered_name` strings when present; `dtype` a string, null or a
  DTypePolicy object whose `config.name` is a string; `activation` a string, null or object;
* `inbound_nodes`: a list of Keras 3 nodes (`{"args": [...], "kwargs": {...}}`, tensors as
  `__keras_tensor__` objects with a `keras_history` triple) or tf_keras nodes (lists of
  `[name, node, index(, kwargs)]` entries);
* every node and tensor index an integer in [0, 2^31) (a JSON number such as 1e400 is a float);
* an InputLayer's `batch_shape` / `batch_input_shape`: a list of at most MAX_RANK dimensions,
  each null or an integer in [0, MAX_DIM], holding at most MAX_SAMPLE_ELEMENTS values per
  sample (calibration allocates 32 such samples).
"""

from __future__ import annotations

from typing import Any

from qfix.errors import error
from qfix.model.config import MODEL_CLASSES

MAX_INDEX = 2**31 - 1
MAX_RANK = 8  # TFLite kernels handle rank <= 6; 8 leaves room, a million does not
MAX_DIM = 2**24
MAX_SAMPLE_ELEMENTS = 2**26  # 256 MiB of float32 per sample


def _bad(pointer: str, what: str) -> Exception:
    return error("QF904", f"config.json: {what} at {pointer or '/'}")


def _index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INDEX


def _triple(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str) \
        and _index(value[1]) and _index(value[2])


def validate(config: Any) -> None:
    """Raise QF904 (naming the JSON pointer) for the first wrong type in the parts qfix reads."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise _bad("/class_name", "the model's class_name is not a string")
    stack: list[tuple[str, Any, bool]] = [("", config, True)]  # (pointer, object, is the model itself)
    while stack:
        pointer, obj, top = stack.pop()
        _check_layer(pointer, obj, top)
        cfg = obj.get("config")
        if obj["class_name"] in MODEL_CLASSES and isinstance(cfg, dict) and "layers" in cfg:
            _check_model(pointer, cfg)
            stack.extend((f"{pointer}/config/layers/{i}", raw, False) for i, raw in enumerate(cfg["layers"]))


def _check_model(pointer: str, cfg: dict[str, Any]) -> None:
    if not isinstance(cfg["layers"], list):
        raise _bad(f"{pointer}/config/layers", "the layer list is not a list")
    for key in ("input_layers", "output_layers"):
        if key in cfg:
            _check_io(f"{pointer}/config/{key}", cfg[key])


def _check_io(pointer: str, value: Any) -> None:
    """A triple, or lists (Keras 3: also objects) of triples; null for an absent entry."""
    todo = [(pointer, value)]
    while todo:
        p, v = todo.pop()
        if v is None or _triple(v) and len(v) == 3:
            continue
        if isinstance(v, list) and v and isinstance(v[0], str):
            raise _bad(p, "a malformed [layer, node, index] reference")
        if isinstance(v, list):
            todo.extend((f"{p}/{i}", x) for i, x in enumerate(v))
        elif isinstance(v, dict):
            todo.extend((f"{p}/{k}", x) for k, x in v.items())
        else:
            raise _bad(p, f"a {type(v).__name__} where a [layer, node, index] reference belongs")


def _check_layer(pointer: str, raw: Any, top: bool) -> None:
    if not isinstance(raw, dict):
        raise _bad(pointer, "a layer entry that is not an object")
    if not isinstance(raw.get("class_name"), str):
        raise _bad(f"{pointer}/class_name", "a class_name that is not a string")
    cfg = raw.get("config")
    if not isinstance(cfg, dict):
        raise _bad(f"{pointer}/config", "a layer config that is not an object")
    name = raw.get("name", cfg.get("name"))
    if not top and not isinstance(name, str):
        raise _bad(f"{pointer}/name", "a layer name that is not a string")
    for key in ("module", "registered_name"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _bad(f"{pointer}/{key}", f"a {key} that is not a string")
    dtype = cfg.get("dtype")
    if dtype is not None and not isinstance(dtype, str):
        inner = dtype.get("config") if isinstance(dtype, dict) else None
        if not (isinstance(inner, dict) and isinstance(inner.get("name"), str)):
            raise _bad(f"{pointer}/config/dtype", "a dtype that is neither a name nor a DTypePolicy")
    act = cfg.get("activation")
    if act is not None and not isinstance(act, (str, dict)):
        raise _bad(f"{pointer}/config/activation", "an activation that is neither a name nor an object")
    if raw["class_name"] == "InputLayer":
        for key in ("batch_shape", "batch_input_shape"):
            if cfg.get(key) is not None:
                _check_shape(f"{pointer}/config/{key}", cfg[key])
    nodes = raw.get("inbound_nodes")
    if nodes is not None:
        if not isinstance(nodes, list):
            raise _bad(f"{pointer}/inbound_nodes", "inbound_nodes that are not a list")
        for i, node in enumerate(nodes):
            _check_node(f"{pointer}/inbound_nodes/{i}", node)


def _check_shape(pointer: str, shape: Any) -> None:
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        raise _bad(pointer, f"an input shape that is not a list of at most {MAX_RANK} dimensions")
    elements = 1
    for i, d in enumerate(shape):
        if d is None:
            continue
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= MAX_DIM:
            raise _bad(f"{pointer}/{i}", f"an input dimension that is not null or an integer in [0, {MAX_DIM}]")
        if i > 0:
            elements *= d
    if elements > MAX_SAMPLE_ELEMENTS:
        raise _bad(pointer, f"an input of {elements} values per sample (limit {MAX_SAMPLE_ELEMENTS})")


def _check_node(pointer: str, node: Any) -> None:
    if isinstance(node, dict):  # Keras 3
        if not isinstance(node.get("args", []), list) or not isinstance(node.get("kwargs") or {}, dict):
            raise _bad(pointer, "a call node whose args/kwargs are not a list/object")
        todo = [(pointer, node)]
        while todo:
            p, v = todo.pop()
            if isinstance(v, dict):
                if v.get("class_name") == "__keras_tensor__":
                    hist = v.get("config", {}).get("keras_history") if isinstance(v.get("config"), dict) else None
                    if not (_triple(hist) and len(hist) == 3):
                        raise _bad(p, "a tensor reference without a valid keras_history")
                    continue
                todo.extend((f"{p}/{k}", x) for k, x in v.items())
            elif isinstance(v, list):
                todo.extend((f"{p}/{i}", x) for i, x in enumerate(v))
    elif isinstance(node, list):  # tf_keras
        entries = [node] if node and isinstance(node[0], str) else node
        for i, e in enumerate(entries):
            if not _triple(e) or (len(e) > 3 and not isinstance(e[3], dict)) or len(e) > 4:
                raise _bad(f"{pointer}/{i}", "a malformed [layer, node, index, kwargs] entry")
    else:
        raise _bad(pointer, "a call node that is neither an object nor a list")
