"""Where each layer's variables live in `model.weights.h5`, and re-keying them after an edit.

Keras (3 and tf_keras alike) does not key weights by layer name. It walks `model.layers` in
order (the config's layer order) and names each layer's group after its class, snake_cased,
with a per-class counter: `layers/conv2d`, `layers/conv2d_1`, … A nested model gets
`layers/functional` (or `layers/sequential`) with its own `layers/…` container inside. Every
layer gets a group, weightless ones too (`<group>/vars` is then empty). Exceptions:

* Keras 3 `keras.ops` calls (module `keras.src.ops.*`) are operations, not layers: no group,
  and they do not advance any counter.
* A Sequential's InputLayer is not in `model.layers` (both dialects): no group.
* tf_keras snake_cases class names with its own regex (same result for every built-in class;
  it differs only on names that start with `_`).

So inserting, removing or re-classing a layer shifts the keys of every later layer of the
same class. `migrate` copies each surviving layer's group from its old key to its new key.
"""

from __future__ import annotations

import io
import re
from typing import Any, Iterable, Mapping

import numpy as np

from .graph import MODEL_CLASSES

LayerPath = tuple[str, ...]  # names of the enclosing models, then the layer's own name


def snake_case(class_name: str, dialect: str) -> str:
    """keras.src.utils.naming.to_snake_case / tf_keras generic_utils.to_snake_case."""
    if dialect == "keras3":
        name = re.sub(r"\W+", "", class_name)
        name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
        return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name if not name.startswith("_") else "private" + name


def layer_name(raw: dict[str, Any]) -> str:
    cfg = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    return str(raw.get("name") or cfg.get("name"))


def has_group(raw: dict[str, Any], container_class: str) -> bool:
    """Whether a config layer entry is in `model.layers` (and so has an h5 group)."""
    if str(raw.get("module", "")).startswith("keras.src.ops"):
        return False
    return not (container_class == "Sequential" and raw.get("class_name") == "InputLayer")


def group_keys(config: dict[str, Any], dialect: str) -> dict[LayerPath, str]:
    """Every layer (nested ones included) → its h5 group path, e.g.
    `("backbone", "conv2d") → "layers/functional/layers/conv2d"`."""
    keys: dict[LayerPath, str] = {}
    _collect(config, dialect, (), "", keys)
    return keys


def _collect(model: dict[str, Any], dialect: str, path: LayerPath, prefix: str, keys: dict[LayerPath, str]) -> None:
    used: dict[str, int] = {}
    for raw in (model.get("config") or {}).get("layers") or []:
        if not has_group(raw, str(model.get("class_name"))):
            continue
        base = snake_case(str(raw.get("class_name")), dialect)
        if base in used:
            used[base] += 1
            key = f"{base}_{used[base]}"
        else:
            used[base] = 0
            key = base
        group = f"{prefix}layers/{key}"
        name = layer_name(raw)
        keys[(*path, name)] = group
        if raw.get("class_name") in MODEL_CLASSES and isinstance((raw.get("config") or {}).get("layers"), list):
            _collect(raw, dialect, (*path, name), group + "/", keys)


def layer_paths(config: dict[str, Any]) -> list[LayerPath]:
    """Every layer of the config, nested ones included (with or without an h5 group)."""
    out: list[LayerPath] = []

    def walk(model: dict[str, Any], path: LayerPath) -> None:
        for raw in (model.get("config") or {}).get("layers") or []:
            name = layer_name(raw)
            out.append((*path, name))
            if raw.get("class_name") in MODEL_CLASSES and isinstance((raw.get("config") or {}).get("layers"), list):
                walk(raw, (*path, name))

    walk(config, ())
    return out


def read_vars(weights_bytes: bytes, group: str) -> list[np.ndarray]:
    """The variables `<group>/vars/0..n` as arrays, in index order."""
    import h5py

    with h5py.File(io.BytesIO(weights_bytes), "r") as f:
        if f"{group}/vars" not in f:
            return []
        g = f[f"{group}/vars"]
        return [np.asarray(g[k]) for k in sorted(g, key=int)]


def migrate(
    weights_bytes: bytes,
    old_config: dict[str, Any],
    new_config: dict[str, Any],
    dialect: str,
    origin: Mapping[LayerPath, LayerPath | None],
    new_vars: Mapping[LayerPath, Iterable[np.ndarray]] | None = None,
) -> bytes:
    """Rebuild `model.weights.h5` for `new_config`, in memory.

    `origin` maps each layer of the new config to the layer of the old config whose weights it
    carries (None: a new layer). A new layer's variables come from `new_vars` (else it gets an
    empty `vars` group, as Keras writes for weightless layers). Everything outside the layer
    tree except the model's own `vars` (the optimizer state, whose slots follow the old
    variable order) is dropped: it would not match the new model.
    """
    import h5py

    old_keys = group_keys(old_config, dialect)
    new_keys = group_keys(new_config, dialect)
    new_vars = new_vars or {}
    model_paths = _model_paths(new_config)
    out = io.BytesIO()
    with h5py.File(io.BytesIO(weights_bytes), "r") as src, h5py.File(out, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        if "vars" in src:
            src.copy(src["vars"], dst, name="vars")
        dst.require_group("layers")
        for path, group in new_keys.items():
            old = origin.get(path)
            old_group = old_keys.get(old) if old is not None else None
            if old_group is not None and old_group not in src:
                raise KeyError(f"weights of layer {'/'.join(old)} ({old_group}) are not in the file")
            if old_group is None:  # a new layer, or one that had no group (a Sequential's input)
                vars_group = dst.require_group(f"{group}/vars")
                for i, value in enumerate(new_vars.get(path, ())):
                    vars_group.create_dataset(str(i), data=np.asarray(value))
            elif path in model_paths:
                # A nested model's own state only: its layers are re-keyed one by one.
                _copy_own(src[old_group], dst.require_group(group), skip="layers")
            else:
                parent, _, leaf = group.rpartition("/")
                src.copy(src[old_group], dst.require_group(parent), name=leaf)
            if "name" in dst[f"{group}/vars"].attrs:
                dst[f"{group}/vars"].attrs["name"] = path[-1]  # Keras 3 records the layer name
            if path in model_paths:
                dst.require_group(f"{group}/layers")
    return out.getvalue()


def _model_paths(config: dict[str, Any]) -> set[LayerPath]:
    out: set[LayerPath] = set()

    def walk(model: dict[str, Any], path: LayerPath) -> None:
        for raw in (model.get("config") or {}).get("layers") or []:
            if raw.get("class_name") in MODEL_CLASSES and isinstance((raw.get("config") or {}).get("layers"), list):
                out.add((*path, layer_name(raw)))
                walk(raw, (*path, layer_name(raw)))

    walk(config, ())
    return out


def _copy_own(src_group: Any, dst_group: Any, skip: str) -> None:
    for k, v in src_group.attrs.items():
        dst_group.attrs[k] = v
    for name in src_group:
        if name != skip:
            src_group.copy(src_group[name], dst_group, name=name)
