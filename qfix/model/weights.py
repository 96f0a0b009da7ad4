"""Where each layer's variables live in `model.weights.h5`, and re-keying them after an edit.

Keras (3 and tf_keras alike) does not key weights by layer name. It walks `model.layers` in
order (the config's layer order) and names each layer's group after its class, snake_cased,
with a per-class counter: `layers/conv2d`, `layers/conv2d_1`, … A nested model gets
`layers/functional` (or `layers/sequential`) with its own `layers/…` container inside. Every
layer gets a group, weightless ones too (`<group>/vars` is then empty). A layer wrapped in
tfmot's `QuantizeAnnotate` keeps its variables in `layers/quantize_annotate/layer/vars`. Exceptions:

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
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

# numpy is imported where used: source-side start-up (the LSP, `qfix script.py`) never needs it.
if TYPE_CHECKING:
    import numpy as np

from qfix.model.config import is_model, layer_name

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
        if raw.get("class_name") == "QuantizeAnnotate":  # tfmot's wrapper keeps the layer's variables in `layer`
            group += "/layer"
        name = layer_name(raw)
        keys[(*path, name)] = group
        if is_model(raw):
            _collect(raw, dialect, (*path, name), group + "/", keys)


def layer_paths(config: dict[str, Any]) -> list[LayerPath]:
    """Every layer of the config, nested ones included (with or without an h5 group)."""
    out: list[LayerPath] = []

    def walk(model: dict[str, Any], path: LayerPath) -> None:
        for raw in (model.get("config") or {}).get("layers") or []:
            name = layer_name(raw)
            out.append((*path, name))
            if is_model(raw):
                walk(raw, (*path, name))

    walk(config, ())
    return out


def read_vars(weights_bytes: bytes, group: str) -> list[np.ndarray]:
    """The variables `<group>/vars/0..n` as arrays, in index order."""
    import h5py
    import numpy as np

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
    new_vars: Mapping[LayerPath, Iterable[np.ndarray] | Callable[..., Iterable[np.ndarray]]] | None = None,
) -> bytes:
    """Re-key `model.weights.h5` for `new_config`, in memory; returns the new file.

    `origin` maps each layer of the new config to the layer of the old config whose weights it
    carries (None: a new layer). A new layer's variables come from `new_vars` (else it gets an
    empty `vars` group, as Keras writes for weightless layers). Groups are renamed in place,
    never copied, so the cost does not grow with the size of the weights. Everything at the
    top level except `layers` and the model's own `vars` (e.g. optimizer state, whose slots
    follow the old variable order) is dropped: it would not match the new model.

    A `new_vars` entry may also be a function of `read`, where `read(path)` gives the variables
    of the old config's layer at `path`: a new layer whose weights derive from an old one's (a
    slice of its kernel).
    """
    import h5py
    import numpy as np

    old_keys = group_keys(old_config, dialect)
    new_keys = group_keys(new_config, dialect)
    new_vars = {path: value(lambda src: read_vars(weights_bytes, old_keys[src])) if callable(value) else value
                for path, value in (new_vars or {}).items()}
    source = {group: old_keys.get(origin.get(path)) if origin.get(path) is not None else None
              for path, group in new_keys.items()}  # new group -> old group (None: create)
    moves = {old: new for new, old in source.items() if old is not None and old != new}
    kept = {old for new, old in source.items() if old is not None and old == new}
    buf = io.BytesIO(weights_bytes)
    with h5py.File(buf, "r+") as f:
        for old in moves.keys() | kept:
            if old not in f:
                raise KeyError(f"weights group {old} is not in the file")
        # Deepest first: a group is parked or deleted before the group that contains it. Ties
        # in name order: the HDF5 layout follows the order of edits, and outputs must not
        # depend on set order (hash seed) to be byte-identical between runs.
        f.create_group(PARKING)
        parked: dict[str, str] = {}
        for old in sorted(set(old_keys.values()) - kept, key=lambda g: (-_depth(g), g)):
            if old not in f:
                continue
            if old in moves:
                parked[old] = f"{PARKING}/{len(parked)}"
                f.move(old, parked[old])
            else:
                del f[old]  # a layer the new config no longer has
        # Shallowest first: a nested model's group exists before its layers move in.
        for old, new in sorted(moves.items(), key=lambda m: (_depth(m[1]), m[1])):
            f.require_group(new.rpartition("/")[0])
            f.move(parked[old], new)
        del f[PARKING]
        for path, group in new_keys.items():
            if source[group] is None:
                vars_group = f.require_group(f"{group}/vars")
                for i, value in enumerate(new_vars.get(path, ())):
                    vars_group.create_dataset(str(i), data=np.asarray(value))
                if dialect == "keras3":
                    vars_group.attrs["name"] = path[-1]
            elif source[group] == group and origin[path][-1] == path[-1]:
                continue  # untouched
            attrs = f[f"{group}/vars"].attrs
            if "name" in attrs:
                attrs["name"] = path[-1]  # Keras 3 records the layer name
        for key in [k for k in f if k not in ("layers", "vars")]:
            del f[key]
    return buf.getvalue()


PARKING = "__qfix_parking"


def _depth(group: str) -> int:
    return group.count("/")
