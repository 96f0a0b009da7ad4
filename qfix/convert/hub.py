"""Loading a tf_keras model that holds `hub.KerasLayer` layers (the worker's child side).

Keras would build a hub layer from the handle in the file, and tensorflow_hub would download
a URL or resolve a relative path against whatever the current directory is. qfix hands Keras
its own `KerasLayer` instead: the handle is resolved with `qfix.model.hub.resolve_handle`
(the model file's folder, then the cwd; URLs refused) before hub sees it. tensorflow_hub then
loads the SavedModel with `tf.saved_model.load`: its graphs, never Python code from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qfix.errors import error
from qfix.model.config import is_model
from qfix.model.hub import HubError, is_hub_layer, resolve_handle


def hub_handles(config: dict[str, Any]) -> list[Any]:
    """The handles of every hub layer in a `.keras` config, nested models included."""
    found, stack = [], [config]
    while stack:
        model = stack.pop()
        for raw in (model.get("config") or {}).get("layers") or []:
            if not isinstance(raw, dict):
                continue
            if is_hub_layer(raw):
                found.append((raw.get("config") or {}).get("handle"))
            elif is_model(raw):
                stack.append(raw)
    return found


def hub_objects(config: dict[str, Any], model_path: Path) -> dict[str, Any]:
    """`custom_objects` for loading a tf_keras model with hub layers (empty without any).
    Raises QF917 for a handle qfix will not use (remote, missing, not a SavedModel)."""
    handles = hub_handles(config)
    if not handles:
        return {}
    folder = model_path.resolve().parent
    for handle in handles:
        try:
            resolve_handle(handle, folder)
        except HubError as exc:
            raise error("QF917", f"{model_path.name}: hub.KerasLayer {exc}") from None
    import tensorflow_hub as hub

    class KerasLayer(hub.KerasLayer):
        """hub.KerasLayer whose handle was resolved by qfix (same name, as tfmot reports it)."""

        @classmethod
        def from_config(cls, cfg: dict[str, Any]) -> Any:
            cfg = dict(cfg)
            try:
                cfg["handle"] = str(resolve_handle(cfg.get("handle"), folder))
            except HubError as exc:
                raise error("QF917", f"{model_path.name}: hub.KerasLayer {exc}") from None
            return cls(**cfg)

    return {"KerasLayer": KerasLayer}
