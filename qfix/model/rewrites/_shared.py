"""Helpers shared by several rewrites."""

from __future__ import annotations

from typing import Any

from qfix.model.config import activation_name, policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer
from qfix.model.graph import Graph, build_graph


class Detached:
    """A layer whose activation is being replaced by built-in layers computed from `x`.

    A standalone Activation layer is dropped and its input is x; any other layer keeps its
    weights, loses the activation, and its output is x. `finish(out)` makes the new layer the
    activation's output (keeping the layer name, or the model output name, readers use)."""

    def __init__(self, edit: ModelEdit, scope: tuple[str, ...], name: str, names: set[str]):
        self.edit, self.scope, self.name, self.dialect = edit, scope, name, edit.dialect
        edit.functional(scope)  # the new layers read x and each other: call nodes, not a chain
        raw = edit.layer(name, scope)
        if activation_name(raw) not in names:
            raise EditError(f"{name!r} does not apply {'/'.join(sorted(names))}")
        if len(raw.get("inbound_nodes") or []) != 1:
            raise EditError(f"{name!r} is called {len(raw.get('inbound_nodes') or [])} times; only a single call "
                            "can be rewritten")
        self.dtype = policy_name(raw["config"].get("dtype")) or "float32"
        self.standalone = raw.get("class_name") == "Activation"
        if self.standalone:
            self.x = edit.inputs_of(name, scope)[0]
        else:
            raw["config"]["activation"] = "linear"
            self.x = (name, 0, 0)

    def add(self, cls: str, cfg: dict[str, Any], suffix: str, inputs: list) -> tuple[str, int, int]:
        layer = make_layer(cls, cfg, self.dialect, f"{self.name}_{suffix}", dtype=self.dtype)
        return (self.edit.add(layer, inputs, self.scope), 0, 0)

    def finish(self, out: tuple[str, int, int]) -> str:
        edit, name, scope = self.edit, self.name, self.scope
        edit.rewire((name, 0, 0), out, scope)
        if self.standalone:  # nobody reads the Activation now; its name goes to the result
            edit.remove(name, scope)
            edit.rename(out[0], name, scope)
            return name
        return edit.take_output_name(out[0], name, scope)


def graph_of(edit: ModelEdit, scope: tuple[str, ...]) -> Graph:
    """The read-only graph of the model at `scope`, as edited so far (what a rewrite that
    reasons about the layers around its own starts from)."""
    return build_graph(edit.model(scope) if scope else edit.config, edit.dialect)


def one_shape_for_every_call(edit: ModelEdit, scope: tuple[str, ...], name: str) -> None:
    """A rewrite that writes the shape of `name`'s input into the new layers (a static Resizing
    size, a Reshape, a PReLU alpha) computes the same thing at every call of a shared layer only
    when every call reads that same shape: raises EditError when the calls' input shapes differ
    or are not all recorded."""
    shapes = edit.call_input_shapes(name, scope)
    if len(shapes) > 1 and (any(s is None for s in shapes) or any(s[1:] != shapes[0][1:] for s in shapes)):
        raise EditError(f"{name!r} is called {len(shapes)} times on inputs of different or unrecorded shapes "
                        f"({shapes}); the rewrite would fix the first call's shape for all")


def layer_input_shape(edit: ModelEdit, scope: tuple[str, ...], name: str) -> Any:
    """The input shape of layer `name`: its `build_config` one, else its first input tensor's
    recorded shape (None when it has no input); not validated, each rewrite checks what it needs."""
    shape = (edit.layer(name, scope).get("build_config") or {}).get("input_shape")
    if isinstance(shape, list):
        return shape
    inputs = edit.inputs_of(name, scope)
    return edit.tensor_meta(inputs[0], scope)[0] if inputs else None
