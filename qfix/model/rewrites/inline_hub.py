"""Inline a `hub.KerasLayer`'s Keras-saved backbone into its parent, weights preserved (QF507).

The SavedModel's Keras config (`qfix.model.hub`) becomes a nested Functional model in the
place of the hub layer, which `ModelEdit.splice` (the QF201 flattening) then spreads into the
parent. Each inner layer's variables are the hub layer's own from `model.weights.h5` (the
values the model computes with), picked by the SavedModel's object graph: nothing is read from
the SavedModel's checkpoint and nothing in it runs. tf_keras only: Keras 3 has no hub layers.
"""

from __future__ import annotations

import copy
from typing import Any

from qfix.model.config import first_node, layer_name, model_refs
from qfix.model.edit import FUNCTIONAL, EditError, ModelEdit
from qfix.model.hub import Backbone, HubError, backbone_layers, is_hub_layer, read_backbone, refusal, resolve_handle

# How tf_keras spells a Sequential model's class in a `.keras` config.
SEQUENTIAL = {"module": "keras", "class_name": "Sequential", "registered_name": None}


def inline_hub(edit: ModelEdit, scope: tuple[str, ...], name: str, *, model_dir: str | None = None,
               trust_lambdas: bool = False) -> str:
    """Replace the hub layer `name` by the layers of its SavedModel's Keras model. The handle
    is resolved against `model_dir`, then the cwd. Raises EditError when the backbone cannot be
    inlined (remote or missing handle, no Keras metadata, a custom layer or an untrusted Lambda
    inside, `arguments` passed at call time, weights that do not match)."""
    if edit.dialect != "tf_keras":
        raise EditError("hub.KerasLayer exists only in tf_keras models")
    edit.functional(scope)
    raw = edit.layer(name, scope)
    if not is_hub_layer(raw):
        raise EditError(f"{name!r} is not a hub.KerasLayer")
    cfg = raw.get("config") or {}
    try:
        backbone = read_backbone(resolve_handle(cfg.get("handle"), model_dir))
    except HubError as exc:
        raise EditError(str(exc)) from None
    why = refusal(backbone, trust_lambdas, cfg)
    if why:
        raise EditError(f"{name!r} cannot be inlined: {why}")
    nested = nested_model(backbone, name, bool(cfg.get("trainable", True)))
    picks = _weight_picks(backbone, nested)

    nested["inbound_nodes"] = raw.get("inbound_nodes") or []
    edit.replace(name, nested, scope)
    # tf_keras numbers a nested model's first call 1 when it starts with an InputLayer
    # (`first_node`); the hub layer's was 0.
    shift = first_node(nested, "tf_keras")
    for s in model_refs(edit.model(scope)):
        if s.tensor[0] == name:
            s.ref[1] = s.tensor[1] + shift
    hub_path = (*scope, name)
    for inner, indices in picks.items():
        edit.origin[(*hub_path, inner)] = None
        edit.new_vars[(*hub_path, inner)] = _picker(hub_path, indices)
    renames = edit.splice(name, scope)
    edit.new_vars.pop(hub_path, None)
    for inner in picks:
        vars_ = edit.new_vars.pop((*hub_path, inner))
        if inner in renames:  # the inner InputLayer is dropped by the splice
            edit.new_vars[(*scope, renames[inner])] = vars_
    return (f"inlined hub.KerasLayer {name!r} ({len(renames)} layers of {backbone.folder.name}, "
            f"{len(backbone.hub_vars)} variables)")


def nested_model(backbone: Backbone, name: str, trainable: bool) -> dict[str, Any]:
    """The backbone's config as a tf_keras `.keras` nested Functional entry named `name`:
    legacy tuples become lists, each layer gets the `module`, `registered_name` and
    `build_config` tf_keras writes, and a frozen hub layer freezes every inner layer."""
    assert backbone.config is not None
    cfg = _lists(copy.deepcopy(backbone.config["config"]))
    for layer in cfg["layers"]:
        layer["module"] = "keras.layers"
        layer["registered_name"] = None
        lname = layer_name(layer)
        layer["name"] = lname
        if not trainable:
            layer["config"]["trainable"] = False
        shape = backbone.build_shapes.get(lname)
        if shape is not None and layer.get("class_name") != "InputLayer":
            layer["build_config"] = {"input_shape": _lists(shape)}
    if backbone.config.get("class_name") == "Sequential":
        for layer in cfg["layers"]:
            layer.pop("inbound_nodes", None)
    cfg["name"] = name
    kind = SEQUENTIAL if backbone.config.get("class_name") == "Sequential" else FUNCTIONAL["tf_keras"]
    return {**kind, "name": name, "config": cfg}


def _lists(value: Any) -> Any:
    """tf_keras's metadata JSON writes tuples as `{"class_name": "__tuple__", "items": [...]}`
    and shapes as `TensorShape` dicts; its `.keras` config writes plain lists."""
    if isinstance(value, dict):
        if value.get("class_name") in ("__tuple__", "TensorShape") and isinstance(value.get("items"), list):
            return [_lists(v) for v in value["items"]]
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lists(v) for v in value]
    return value


def _weight_picks(backbone: Backbone, nested: dict[str, Any]) -> dict[str, list[int]]:
    """Inner layer name → indices into the hub layer's variables (`model.weights.h5` order)."""
    position = {var: i for i, var in enumerate(backbone.hub_vars)}
    picks: dict[str, list[int]] = {}
    for layer in backbone_layers(nested):
        lname = layer_name(layer)
        ids = backbone.layer_vars.get(lname, [])
        missing = [v for v in ids if v not in position]
        if missing:
            raise EditError(f"layer {lname!r} of the backbone has variables the hub layer does not track")
        picks[lname] = [position[v] for v in ids]
    used = sum(len(v) for v in picks.values())
    if used != len(backbone.hub_vars):
        raise EditError(f"the backbone's layers hold {used} variables, the hub layer {len(backbone.hub_vars)}")
    return picks


def _picker(hub_path: tuple[str, ...], indices: list[int]):
    """A `new_vars` entry: the inner layer's variables, taken from the hub layer's group."""

    def pick(read):
        hub_vars = read(hub_path)
        if len(hub_vars) <= max(indices, default=-1):
            raise ValueError(f"model.weights.h5 holds {len(hub_vars)} variables for hub layer "
                             f"{hub_path[-1]!r}, its SavedModel more")
        return [hub_vars[i] for i in indices]

    return pick

