"""A Keras 3 Sequential whose tf_keras form needs a branch, made Functional before translation.

hard_silu/hard_swish has no tf_keras activation: graph.py expands it into x · hard_sigmoid(x),
a Multiply of the layer's input and a gate computed from it, which a Sequential (one chain of
single-input layers) cannot hold. Such a Sequential (top level or nested) becomes the Functional
it stands for (`ModelEdit.functional`, as the rewrites do; its weights re-keyed), then is
translated as a Functional.
"""

from __future__ import annotations

from typing import Any, Iterator

from qfix.model.config import is_model, layer_name
from qfix.model.edit import EditError, ModelEdit
from qfix.model.to_tf_keras.errors import Untranslatable
from qfix.model.to_tf_keras.layers import HARD

BRANCHING = HARD - {"hard_sigmoid"}  # hard_sigmoid expands into a chain: a Sequential holds it


def _branching(model: dict[str, Any], scope: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(scope, activation) of each Sequential, outermost first, with a layer applying one of BRANCHING."""
    layers = (model.get("config") or {}).get("layers") or []
    if model.get("class_name") == "Sequential":
        act = next((a for l in layers if (a := (l.get("config") or {}).get("activation")) in BRANCHING), None)
        if act is not None:
            yield scope, act
    for l in layers:
        if is_model(l):
            yield from _branching(l, (*scope, layer_name(l)))


def branch_free(config: dict[str, Any], weights: bytes, notes: list[str]) -> tuple[dict[str, Any], bytes]:
    """`config` and `weights` with every Sequential that needs a branch made Functional (the
    same objects when none does). Raises Untranslatable when one cannot be (never built)."""
    found = list(_branching(config))
    if not found:
        return config, weights
    edit = ModelEdit(config, "keras3")
    for scope, act in found:
        name = scope[-1] if scope else str((config.get("config") or {}).get("name"))
        try:
            edit.functional(scope)
        except EditError as exc:
            raise Untranslatable(name, f"{act} in a Sequential, which cannot be made Functional: {exc}") from None
        notes.append(f"{name}: Sequential written as the Functional it stands for ({act} is x times a gate of x)")
    try:
        return edit.config, edit.weights(weights)
    except EditError as exc:
        raise Untranslatable(str((config.get("config") or {}).get("name")), str(exc)) from None
