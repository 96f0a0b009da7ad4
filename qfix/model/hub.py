"""A `hub.KerasLayer`'s SavedModel, read without TensorFlow and without running anything in it.

tf_keras writes a hub layer into a `.keras` config as
`{"module": "tensorflow_hub.keras_layer", "class_name": "KerasLayer", "registered_name":
"KerasLayer", "config": {"name", "trainable", "dtype", "handle", ["arguments", "output_shape",
"signature", "output_key", ...]}}`, and its variables into `model.weights.h5` under the layer's
group (`layers/keras_layer/vars/0..n`): the ones the model actually computes with, fine-tuned
or not (they override the SavedModel's checkpoint when the `.keras` is loaded). Their order is
hub's (`tensorflow_hub/keras_layer.py` `_setup_layer`): the SavedModel's `trainable_variables`,
then the rest of its `variables`.

A SavedModel saved from tf_keras (`model.save(dir)`) also holds `keras_metadata.pb`, a
`SavedMetadata` proto (`tf_keras/protobuf/saved_metadata.proto`: `repeated SavedObject nodes = 1`,
each `node_id = 2, node_path = 3, identifier = 4, metadata = 5` (JSON)). The root node's JSON
holds the model's config (legacy `get_config` format: no `module` keys); each layer node's
`node_id` is its node in `saved_model.pb`'s object graph (`SavedModel.meta_graphs = 2` →
`MetaGraphDef.object_graph_def = 7` → `SavedObjectGraph.nodes = 1` → `SavedObject.children = 1`
(`ObjectReference{node_id = 1, local_name = 2}`)), where a layer's child `variables` lists its
variables in the order of its own weights (`_trainable_weights + _non_trainable_weights`, what
a `.keras` weights group stores). Both files are read here with a small wire-format reader: no
TensorFlow in the parent, and no graph, function or Python object in the SavedModel is executed.

Handles are never fetched: a URL (anything with a scheme) is refused, and a local handle is
resolved against the model file's folder, then the current directory (`resolve_handle`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from qfix.model.builtin_layers import BUILTIN_LAYERS

HUB_MODULE_PREFIX = "tensorflow_hub"
MAX_PROTO_BYTES = 1 << 30  # saved_model.pb holds the graphs' constants; a backbone is far smaller
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class HubError(ValueError):
    """A hub handle or SavedModel qfix cannot read or will not use; the message says why."""


def is_hub_layer(raw_or_layer: Any) -> bool:
    """A `hub.KerasLayer` entry (config dict or `qfix.model.graph.Layer`)."""
    if isinstance(raw_or_layer, dict):
        cls, module = raw_or_layer.get("class_name"), str(raw_or_layer.get("module") or "")
    else:
        cls, module = raw_or_layer.class_name, raw_or_layer.module or ""
    return cls == "KerasLayer" and (module == HUB_MODULE_PREFIX or module.startswith(HUB_MODULE_PREFIX + "."))


# --- handles ------------------------------------------------------------------------------


def resolve_handle(handle: Any, model_dir: str | Path | None) -> Path:
    """The SavedModel folder a hub handle names: relative to `model_dir` (the model file's
    folder) if it exists there, else to the current directory. Raises HubError for a URL or any
    `scheme://` (never fetched), a missing path, a file, or a folder without `saved_model.pb`."""
    if not isinstance(handle, str) or not handle:
        raise HubError(f"handle {handle!r} is not a path (a KerasLayer wrapping a Python callable is not saved)")
    if _SCHEME.match(handle):
        raise HubError(f"handle {handle!r} is remote; qfix downloads nothing (download the SavedModel "
                       "and point the handle at its folder)")
    raw = Path(handle).expanduser()
    candidates = [raw] if raw.is_absolute() else [Path(model_dir) / raw] if model_dir else []
    if not raw.is_absolute():
        candidates.append(Path.cwd() / raw)
    for path in candidates:
        if path.is_dir():
            if not (path / "saved_model.pb").is_file():
                raise HubError(f"handle {handle!r}: {path} has no saved_model.pb (not a SavedModel)")
            return path.resolve()
        if path.exists():
            raise HubError(f"handle {handle!r}: {path} is a file, not a SavedModel folder")
    where = " or ".join(str(p) for p in candidates)
    raise HubError(f"handle {handle!r}: no SavedModel folder at {where}")


def absolute_handles(config: dict[str, Any], model_dir: str | Path) -> dict[str, Any]:
    """A copy of a `.keras` config whose hub layers' local handles (nested models included)
    are absolute, resolved against `model_dir` (the model file's folder), then the cwd. For a
    copy of the model written elsewhere (`--mode qat`'s candidate in its run folder), whose own
    folder would otherwise be searched. Raises HubError as `resolve_handle`."""
    from qfix.model.config import is_model

    out = json.loads(json.dumps(config))
    stack = [out]
    while stack:
        model = stack.pop()
        for raw in (model.get("config") or {}).get("layers") or []:
            if not isinstance(raw, dict):
                continue
            if is_hub_layer(raw):
                cfg = raw.setdefault("config", {})
                cfg["handle"] = str(resolve_handle(cfg.get("handle"), model_dir))
            elif is_model(raw):
                stack.append(raw)
    return out


# --- protobuf wire format -----------------------------------------------------------------


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise HubError("truncated or malformed protobuf")
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of a serialized message: an int for varints, a memoryview for
    length-delimited and fixed-width fields. Groups (wire types 3/4) are refused."""
    buf = memoryview(buf)
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, value
            continue
        if wire == 2:
            size, i = _varint(buf, i)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise HubError(f"unsupported protobuf wire type {wire}")
        if i + size > len(buf):
            raise HubError("truncated protobuf")
        yield number, buf[i:i + size]
        i += size


def _field(buf: memoryview, number: int) -> memoryview | None:
    return next((v for n, v in fields(buf) if n == number and isinstance(v, memoryview)), None)


def _read(path: Path) -> bytes:
    if path.stat().st_size > MAX_PROTO_BYTES:
        raise HubError(f"{path.name} is larger than {MAX_PROTO_BYTES >> 20} MiB")
    return path.read_bytes()


# --- the SavedModel -----------------------------------------------------------------------


@dataclass(frozen=True)
class Backbone:
    """What qfix knows of a hub layer's SavedModel. `config` is the Keras model's config
    (`{"class_name": "Functional"|"Sequential", "config": {...}}`, legacy tf_keras format) or
    None for a SavedModel not saved from Keras. `layer_vars`: layer name → the object-graph ids
    of its variables in its weights order; `hub_vars`: the ids in `hub.KerasLayer`'s order."""

    folder: Path
    config: dict[str, Any] | None
    layer_vars: dict[str, list[int]] = field(default_factory=dict)
    build_shapes: dict[str, Any] = field(default_factory=dict)  # layer name → its build input shape
    hub_vars: list[int] = field(default_factory=list)

    @property
    def is_keras(self) -> bool:
        return self.config is not None


def read_backbone(folder: Path) -> Backbone:
    """Read a SavedModel folder (see the module docstring). Raises HubError for unreadable or
    malformed files; a plain TF SavedModel (no `keras_metadata.pb`) is a Backbone with no config."""
    try:
        graph = _object_graph(_read(folder / "saved_model.pb"))
        meta_path = folder / "keras_metadata.pb"
        if not meta_path.is_file():
            return Backbone(folder, None)
        metadata = _keras_metadata(_read(meta_path))
    except OSError as exc:
        raise HubError(f"{folder}: {exc.strerror or exc}") from None
    root = metadata.get("root")
    if root is None or not isinstance(root[1].get("config"), dict):
        return Backbone(folder, None)  # Keras metadata without a model config: a subclassed model
    config = {"class_name": root[1].get("class_name"), "config": root[1]["config"]}
    layer_vars: dict[str, list[int]] = {}
    shapes: dict[str, Any] = {}
    for path, (node_id, meta) in metadata.items():
        if path.count(".") != 1 or not isinstance(meta.get("name"), str):
            continue  # only the model's own layers (root.layer-N / root.layer_with_weights-N)
        layer_vars[meta["name"]] = _variables(graph, node_id)
        if meta.get("build_input_shape") is not None:
            shapes[meta["name"]] = _shape(meta["build_input_shape"])
    trainable = _variables(graph, root[0], "trainable_variables")
    rest = [v for v in _variables(graph, root[0]) if v not in trainable]
    return Backbone(folder, config, layer_vars, shapes, trainable + rest)


def _object_graph(saved_model: bytes) -> list[memoryview]:
    meta_graph = _field(memoryview(saved_model), 2)
    objects = _field(meta_graph, 7) if meta_graph is not None else None
    if objects is None:
        raise HubError("saved_model.pb has no object graph (a TF1 SavedModel)")
    return [v for n, v in fields(objects) if n == 1]


def _children(node: memoryview) -> dict[str, int]:
    out: dict[str, int] = {}
    for n, ref in fields(node):
        if n == 1:
            parts = dict(fields(ref))
            name = parts.get(2)
            out[bytes(name).decode("utf-8", "replace") if isinstance(name, memoryview) else ""] = int(parts.get(1, 0))
    return out


def _variables(graph: list[memoryview], node_id: int, attr: str = "variables") -> list[int]:
    """The ids of the variables listed under the node's child `attr` (a tracked list whose
    children are named "0", "1", …)."""
    if not 0 <= node_id < len(graph):
        raise HubError(f"keras_metadata.pb names object {node_id}, which saved_model.pb does not have")
    lst = _children(graph[node_id]).get(attr)
    if lst is None or not 0 <= lst < len(graph):
        return []
    items = _children(graph[lst])
    return [items[k] for k in sorted(items, key=lambda k: int(k) if k.isdigit() else -1) if k.isdigit()]


def _keras_metadata(raw: bytes) -> dict[str, tuple[int, dict[str, Any]]]:
    """node_path → (node_id, metadata JSON) of every node with JSON metadata."""
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    for n, node in fields(raw):
        if n != 1 or not isinstance(node, memoryview):
            continue
        parts = dict(fields(node))
        path, text = parts.get(3), parts.get(5)
        if not isinstance(path, memoryview) or not isinstance(text, memoryview):
            continue
        try:
            meta = json.loads(bytes(text).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise HubError("keras_metadata.pb holds metadata that is not JSON") from None
        if isinstance(meta, dict):
            out[bytes(path).decode("utf-8", "replace")] = (int(parts.get(2, 0)), meta)
    return out


def _shape(value: Any) -> Any:
    """A build shape as metadata records it: a list, or tf_keras's `{"class_name":
    "TensorShape", "items": [...]}`."""
    if isinstance(value, dict) and isinstance(value.get("items"), list):
        return value["items"]
    return value


# --- vetting ------------------------------------------------------------------------------


def backbone_layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    layers = (config.get("config") or {}).get("layers")
    return layers if isinstance(layers, list) else []


def refusal(backbone: Backbone, trust_lambdas: bool, layer_config: dict[str, Any] | None = None) -> str | None:
    """Why the backbone's layers cannot be inlined in the place of the hub layer whose config is
    `layer_config`, or None. The hub layer must call the SavedModel plainly (no `arguments`, no
    signature); every backbone layer must be a built-in Keras layer (a custom class would need
    its code); a Lambda holds bytecode, allowed only with --trust-lambdas; a model nested in the
    backbone is not inlined."""
    layer_config = layer_config or {}
    if layer_config.get("arguments"):
        return f"the hub layer passes `arguments` {sorted(layer_config['arguments'])} to the SavedModel"
    if layer_config.get("signature") or layer_config.get("output_key"):
        return "the hub layer calls a SavedModel signature, not its Keras model"
    if backbone.config is None:
        return "its SavedModel was not saved from Keras (no keras_metadata.pb)"
    if backbone.config.get("class_name") not in ("Functional", "Sequential", "Model"):
        return f"its Keras model is a {backbone.config.get('class_name')!r}, not a Functional or Sequential"
    for raw in backbone_layers(backbone.config):
        cls = raw.get("class_name") if isinstance(raw, dict) else None
        name = (raw.get("config") or {}).get("name") if isinstance(raw, dict) else None
        if cls == "Lambda" and not trust_lambdas:
            return f"its layer {name!r} is a Lambda whose bytecode qfix does not run (--trust-lambdas)"
        if cls in ("Functional", "Sequential", "Model"):
            return f"its layer {name!r} is a nested model"
        if cls not in BUILTIN_LAYERS:
            return f"its layer {name!r} has class {cls!r}, which is not a built-in Keras layer"
    return None
