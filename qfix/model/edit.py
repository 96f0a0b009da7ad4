"""Edits on a `.keras` config dict that serialise back to a config Keras loads, both dialects.

A tensor is `(layer, node, index)`, as in Keras 3's `keras_history` and tf_keras's
`[layer, node, index, kwargs]` inbound entries. Every edit works on one model of the config
(`scope`: the names of the nested models above it, `()` for the top level), rewires the
tensor references it affects, keeps layer names unique, and finally puts the layers in the
order Keras itself derives from the graph (`keras_order`). That last step matters: Keras
rebuilds `model.layers` from the graph on load and keys the weights file by that order, so
a config in any other order would load the wrong weights into same-class layers.

A Sequential has no call nodes to rewire: the edits that need them turn it into the Functional
it stands for first (`ModelEdit.functional`), so every rewrite works on both kinds of model.

`ModelEdit` records, for every layer of the edited config, which layer of the original its
weights come from (`origin`), and the variables of new layers (`new_vars`); `weights()` then
re-keys `model.weights.h5` with `qfix.model.weights.migrate`.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any, Iterator

# numpy is imported where used: source-side start-up (the LSP, `qfix script.py`) never needs it.
if TYPE_CHECKING:
    import numpy as np

from qfix.model.config import (Tensor, first_node, input_shape, is_cast, is_model, io_refs, layer_name, model_refs, node_refs,
                               policy_name, sequential_input, tfk_entries)
from qfix.model.graph import build_graph
from qfix.model.shapes import output_shape
from qfix.model.weights import LayerPath, group_keys, layer_paths, migrate

# How each dialect spells a functional model's class (what `ModelEdit.functional` writes).
FUNCTIONAL = {
    "keras3": {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional"},
    "tf_keras": {"module": "tf_keras.src.engine.functional", "class_name": "Functional",
                 "registered_name": "Functional"},
}


class EditError(ValueError):
    """The edit does not apply to this config (wrong layer kind, shared layer, …)."""


# --- building layer dicts -----------------------------------------------------------------


def dtype_policy(dtype: str, dialect: str) -> Any:
    if dialect == "keras3":
        return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype}, "registered_name": None}
    return dtype


def initializer(class_name: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"module": "keras.initializers", "class_name": class_name, "config": config or {}, "registered_name": None}


def make_layer(
    class_name: str, config: dict[str, Any], dialect: str, name: str, *, dtype: str = "float32",
    input_shape: Any = None,
) -> dict[str, Any]:
    """A built-in layer entry (without inbound nodes) as the dialect writes it."""
    cfg = {"name": name, "trainable": True, "dtype": dtype_policy(dtype, dialect), **config}
    raw: dict[str, Any] = {"module": "keras.layers", "class_name": class_name, "config": cfg, "registered_name": None}
    if input_shape is not None:
        raw["build_config"] = {"input_shape": list(input_shape)}
    raw["name"] = name
    raw["inbound_nodes"] = []
    return raw


def _keras_tensor(t: Tensor, shape: Any, dtype: str | None) -> dict[str, Any]:
    """A Keras 3 tensor reference. On load Keras swaps it for the real tensor of `t`, so an
    unknown shape may be a placeholder; it must only be a valid shape."""
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(shape) if shape is not None else [None], "dtype": dtype or "float32",
                       "keras_history": list(t)}}


# --- Keras's own layer order --------------------------------------------------------------


def keras_order(model: dict[str, Any], dialect: str) -> list[str]:
    """The order of `model.layers` Keras derives when it rebuilds this functional model:
    `keras.src.ops.function.map_graph` / tf_keras `_map_graph_network` (depth from the
    outputs, deepest first; ties by first visit in a DFS from the outputs)."""
    cfg = model["config"]
    raws = {layer_name(r): r for r in cfg["layers"]}
    if model.get("class_name") == "Sequential":
        return list(raws)

    def parents(node: tuple[str, int]) -> list[tuple[str, int]]:
        raw = raws[node[0]]
        if raw.get("class_name") == "InputLayer":
            return []
        nodes = raw.get("inbound_nodes") or []
        i = node[1] - first_node(raw, dialect)
        return [(s.tensor[0], s.tensor[1]) for s in node_refs(nodes[i])] if 0 <= i < len(nodes) else []

    finished: set[tuple[str, int]] = set()
    in_progress: set[tuple[str, int]] = set()
    ordered: list[tuple[str, int]] = []
    first_seen: dict[str, int] = {}

    def visit(root: tuple[str, int]) -> None:
        """Post-order DFS from `root`, iterative (a chain of 20,000 layers is deeper than
        Python's recursion limit): parents in order, a node after all of its parents."""
        if root in finished:
            return
        stack: list[tuple[tuple[str, int], Iterator[tuple[str, int]]]] = []

        def enter(node: tuple[str, int]) -> None:
            if node in in_progress:
                raise EditError(f"layer {node[0]!r} is part of a cycle")
            first_seen.setdefault(node[0], len(first_seen))
            in_progress.add(node)
            stack.append((node, iter(parents(node))))

        enter(root)
        while stack:
            node, todo = stack[-1]
            nxt = next((p for p in todo if p not in finished), None)
            if nxt is not None:
                enter(nxt)
                continue
            stack.pop()
            in_progress.discard(node)
            finished.add(node)
            ordered.append(node)

    for s in io_refs(cfg.get("output_layers")):
        visit((s.tensor[0], s.tensor[1]))
    node_depth: dict[tuple[str, int], int] = {}
    layer_depth: dict[str, int] = {}
    for node in reversed(ordered):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node[0], 0))
        layer_depth[node[0]] = node_depth[node] = depth
        for p in parents(node):
            node_depth[p] = max(depth + 1, node_depth.get(p, 0))
    for s in io_refs(cfg.get("input_layers")):  # unused inputs still belong to the model
        if s.tensor[0] not in layer_depth:
            layer_depth[s.tensor[0]] = 0
            first_seen[s.tensor[0]] = -1
    return sorted(layer_depth, key=lambda n: (-layer_depth[n], first_seen[n]))


# --- the editor ---------------------------------------------------------------------------


class ModelEdit:
    """A sequence of edits on a copy of `config`; the original is never modified."""

    def __init__(self, config: dict[str, Any], dialect: str):
        if dialect not in ("keras3", "tf_keras"):
            raise EditError(f"unknown dialect {dialect!r}")
        self.original = config
        self.config = json.loads(json.dumps(config))  # a deep copy; configs are JSON, and this is ~5x faster
        self.dialect = dialect
        self.origin: dict[LayerPath, LayerPath | None] = {p: p for p in layer_paths(config)}
        self.new_vars: dict[LayerPath, list[np.ndarray]] = {}

    # -- weights --

    def weights(self, weights_bytes: bytes) -> bytes:
        """`model.weights.h5` re-keyed for the edited config; the same bytes when every layer
        is still where it was (a rewiring, a new input dtype or batch size)."""
        if self.keeps_weights:
            return weights_bytes
        try:
            return migrate(weights_bytes, self.original, self.config, self.dialect, self.origin, self.new_vars)
        except (KeyError, ValueError, OSError) as exc:  # a weights file that does not match its config
            raise EditError(f"cannot re-key model.weights.h5: {exc}") from None

    @property
    def keeps_weights(self) -> bool:
        """No layer was added, removed, renamed or moved to another weights group."""
        return (not self.new_vars and all(src == path for path, src in self.origin.items())
                and set(self.origin) == set(layer_paths(self.original))
                and group_keys(self.original, self.dialect) == group_keys(self.config, self.dialect))

    # -- lookups --

    def model(self, scope: tuple[str, ...] = ()) -> dict[str, Any]:
        model = self.config
        for name in scope:
            model = self._raw(model, name)
            if not is_model(model):
                raise EditError(f"{name!r} is not a nested model")
        return model

    def layer(self, name: str, scope: tuple[str, ...] = ()) -> dict[str, Any]:
        return self._raw(self.model(scope), name)

    @staticmethod
    def _raw(model: dict[str, Any], name: str) -> dict[str, Any]:
        for raw in model["config"]["layers"]:
            if layer_name(raw) == name:
                return raw
        raise EditError(f"no layer named {name!r}")

    def tensor_meta(self, t: Tensor, scope: tuple[str, ...] = ()) -> tuple[list | None, str | None]:
        """Shape and dtype of a tensor as the config records them (Keras 3 refs, input layers)."""
        model = self.model(scope)
        for s in model_refs(model):
            if s.tensor == t and s.meta is not None:
                return s.meta.get("shape"), s.meta.get("dtype")
        raw = self._raw(model, t[0])
        cfg = raw.get("config") or {}
        if raw.get("class_name") == "InputLayer":
            shape = input_shape(cfg)
            return list(shape) if shape is not None else None, cfg.get("dtype")
        dtype = policy_name(cfg.get("dtype"))
        shape = self._shape_from_readers(model, t)
        if shape is not None:
            return shape, dtype
        if model.get("class_name") == "Sequential":  # no references at all: walk the chain
            return self._sequential_shapes(model).get(t[0]), dtype
        # A model output: no reader recorded it. Derive it from the layer's input.
        ins = self.inputs_of(t[0], scope)
        in_shape, in_dtype = self.tensor_meta(ins[0], scope) if len(ins) == 1 else (None, None)
        return output_shape(raw, in_shape), dtype or in_dtype

    @staticmethod
    def _sequential_shapes(model: dict[str, Any]) -> dict[str, list | None]:
        """Every layer's output shape in a Sequential, in one pass down the chain: a layer's
        `build_config.input_shape` where Keras recorded it (tf_keras: every layer; Keras 3: only
        layers with weights), else derived from the previous layer's (`qfix.model.shapes`)."""
        layers = model["config"]["layers"]
        shapes: dict[str, list | None] = {}
        prev: list | None = None
        if layers and layers[0].get("class_name") != "InputLayer":
            found = sequential_input(model["config"])[1]
            prev = list(found) if found is not None else None
        for raw in layers:
            if raw.get("class_name") == "InputLayer":
                found = input_shape(raw.get("config") or {})
                shapes[layer_name(raw)] = prev = list(found) if found is not None else None
                continue
            recorded = (raw.get("build_config") or {}).get("input_shape")
            if isinstance(recorded, list) and all(d is None or isinstance(d, int) for d in recorded):
                prev = recorded
            shapes[layer_name(raw)] = prev = output_shape(raw, prev)
        return shapes

    @staticmethod
    def _shape_from_readers(model: dict[str, Any], t: Tensor) -> list | None:
        """tf_keras records no shapes on references, but a layer reading only `t` was built
        for its shape (`build_config.input_shape`). In a Sequential that is the next layer."""
        layers = model["config"]["layers"]
        if model.get("class_name") == "Sequential":
            names = [layer_name(r) for r in layers]
            readers = layers[names.index(t[0]) + 1:][:1] if t[0] in names else []
        else:
            readers = [r for r in layers if len(r.get("inbound_nodes") or []) == 1
                       and [s.tensor for s in node_refs(r["inbound_nodes"][0])] == [t]]
        for raw in readers:
            shape = (raw.get("build_config") or {}).get("input_shape")
            if isinstance(shape, list) and all(d is None or isinstance(d, int) for d in shape):
                return shape
        return None

    def inputs_of(self, name: str, scope: tuple[str, ...] = ()) -> list[Tensor]:
        """The tensors the first call of layer `name` reads (in a Sequential: the layer before)."""
        model = self.model(scope)
        if model.get("class_name") == "Sequential":
            names = [layer_name(r) for r in model["config"]["layers"]]
            i = names.index(name) if name in names else -1
            return [(names[i - 1], 0, 0)] if i > 0 else []
        nodes = self._raw(model, name).get("inbound_nodes") or []
        return [s.tensor for s in node_refs(nodes[0])] if nodes else []

    def calls(self, tensor: Tensor, scope: tuple[str, ...] = ()) -> list[Tensor]:
        """Output `tensor[2]` of every call of layer `tensor[0]` (node `first_node` onwards, one
        per saved inbound node): `[tensor]` for a layer called once, an input, or a Sequential."""
        model = self.model(scope)
        raw = self._raw(model, tensor[0])
        nodes = raw.get("inbound_nodes") or []
        if model.get("class_name") == "Sequential" or len(nodes) < 2:
            return [tensor]
        first = first_node(raw, self.dialect)
        found = [(tensor[0], first + k, tensor[2]) for k in range(len(nodes))]
        return found if tensor in found else [tensor]

    def call_input_shapes(self, name: str, scope: tuple[str, ...] = ()) -> list[list | None]:
        """The recorded shape of the first input of every call of layer `name` (one entry per
        call; None where the config records none)."""
        model = self.model(scope)
        if model.get("class_name") == "Sequential":
            ins = self.inputs_of(name, scope)
            return [self.tensor_meta(ins[0], scope)[0] if ins else None]
        out = []
        for node in self._raw(model, name).get("inbound_nodes") or []:
            refs = list(node_refs(node))
            out.append(self.tensor_meta(refs[0].tensor, scope)[0] if refs else None)
        return out

    def unique_name(self, base: str, scope: tuple[str, ...] = ()) -> str:
        taken = {layer_name(r) for r in self.model(scope)["config"]["layers"]}
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def _node(self, tensors: list[Tensor], scope: tuple[str, ...]) -> Any:
        """One inbound node reading `tensors`, in the dialect's format."""
        if self.dialect == "tf_keras":
            return [[t[0], t[1], t[2], {}] for t in tensors]
        refs = []
        for t in tensors:
            shape, dtype = self.tensor_meta(t, scope)
            refs.append(_keras_tensor(t, shape, dtype))
        # One tensor is the first positional arg; several are one list arg (merge layers).
        return {"args": refs if len(refs) == 1 else [refs], "kwargs": {}}

    def _rewire(self, model: dict[str, Any], old: Tensor, new: Tensor, shape=None, dtype=None) -> int:
        n = 0
        for raw in model["config"]["layers"]:
            for node in raw.get("inbound_nodes") or []:
                for s in node_refs(node):
                    if s.tensor == old:
                        s.point_to(new, shape, dtype)
                        n += 1
        for s in io_refs(model["config"].get("output_layers")):
            if s.tensor == old:
                s.point_to(new)
                n += 1
        return n

    def _reorder(self, scope: tuple[str, ...]) -> None:
        model = self.model(scope)
        order = keras_order(model, self.dialect)
        by_name = {layer_name(r): r for r in model["config"]["layers"]}
        dropped = set(by_name) - set(order)
        if dropped:
            raise EditError(f"the edit disconnects layer(s) {', '.join(sorted(dropped))} from the outputs")
        model["config"]["layers"] = [by_name[n] for n in order]

    # -- edits --

    def functional(self, scope: tuple[str, ...] = ()) -> None:
        """Turn the Sequential at `scope` into the Functional model it stands for (nothing to do
        for a functional model). Edits that need call nodes (`add`, `rewire`, `retarget`, splicing
        into it) call this first, so every rewrite works on Sequential models too.

        The Functional has the Sequential's InputLayer (or one made from its recorded input
        shape, named as `qfix.model.graph` names it), each layer called once on the previous one,
        and the last layer as its output. Layer names and weights stay: only the InputLayer gets
        a group in `model.weights.h5` (a Sequential's has none), and a nested model's own group
        follows its class (`layers/sequential` → `layers/functional`); `weights()` re-keys both.
        Keras 3 references carry each tensor's shape (`_sequential_shapes`) and dtype.
        Raises EditError for a Sequential that records no input shape (never built)."""
        model = self.model(scope)
        if model.get("class_name") != "Sequential":
            return
        cfg = model["config"]
        layers = cfg["layers"]
        if not layers or all(r.get("class_name") == "InputLayer" for r in layers):
            raise EditError(f"Sequential {cfg.get('name')!r} has no layers")
        shapes = self._sequential_shapes(model)
        dtypes = {l.name: l.out_dtype for l in build_graph(model, self.dialect)}
        if layers[0].get("class_name") == "InputLayer":
            inp = layers[0]
            inp.setdefault("name", layer_name(inp))
            inp["inbound_nodes"] = []
        else:
            name, shape, dtype = sequential_input(cfg)
            if shape is None:
                raise EditError(f"Sequential {cfg.get('name')!r} records no input shape (it was never built)")
            key = "batch_shape" if self.dialect == "keras3" else "batch_input_shape"
            inp = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": name,
                   "config": {key: list(shape), "dtype": dtype, "sparse": False, "ragged": False, "name": name},
                   "inbound_nodes": []}
            layers.insert(0, inp)
            shapes[name] = list(shape)
            self.origin[(*scope, name)] = None
            if scope and self.dialect == "tf_keras":
                self._shift_calls(scope)
        prev = (layer_name(inp), 0, 0)
        for raw in layers[1:]:
            raw.setdefault("name", layer_name(raw))
            if self.dialect == "tf_keras":
                raw["inbound_nodes"] = [[[*prev, {}]]]
            else:
                dtype = dtypes.get(prev[0]) or "float32"
                ref = _keras_tensor(prev, shapes.get(prev[0]), dtype.removeprefix("mixed_"))
                raw["inbound_nodes"] = [{"args": [ref], "kwargs": {}}]
            prev = (layer_name(raw), first_node(raw, self.dialect), 0)
        single = (lambda t: list(t)) if self.dialect == "keras3" else (lambda t: [list(t)])
        cfg["input_layers"] = single((layer_name(inp), 0, 0))
        cfg["output_layers"] = single(prev)
        for key in ("build_input_shape", "dtype"):  # Sequential-only keys
            cfg.pop(key, None)
        model.update(FUNCTIONAL[self.dialect])

    def _shift_calls(self, scope: tuple[str, ...]) -> None:
        """References in the parent model to the calls of the nested model at `scope` move one
        node on: tf_keras numbers them from 1 once the model starts with an InputLayer
        (`first_node`)."""
        for s in model_refs(self.model(scope[:-1])):
            if s.tensor[0] == scope[-1]:
                s.ref[1] = s.tensor[1] + 1

    def insert_after(
        self, tensor: Tensor, layer: dict[str, Any], scope: tuple[str, ...] = (), *,
        out_shape: Any = None, out_dtype: str | None = None, weights: list[np.ndarray] | None = None,
    ) -> str:
        """Insert `layer` (a `make_layer` dict) reading `tensor`; every consumer of `tensor` and
        every model output on it then reads the new layer. Returns the new layer's name.

        A layer called several times (a shared layer) gets the new layer after every call: the
        new layer is shared too, called once on each call's output (`calls`), so the float model
        computes the same thing at each call, not only at the first."""
        model = self.model(scope)
        self._raw(model, tensor[0])
        name = self.unique_name(layer_name(layer), scope)
        raw = copy.deepcopy(layer)
        raw["name"] = raw["config"]["name"] = name
        if model.get("class_name") == "Sequential":
            raw.pop("inbound_nodes", None)
            layers = model["config"]["layers"]
            layers.insert(layers.index(self._raw(model, tensor[0])) + 1, raw)
        else:
            calls = self.calls(tensor, scope)
            metas = [self.tensor_meta(t, scope) for t in calls]
            raw["inbound_nodes"] = [self._node([t], scope) for t in calls]
            for k, (t, (shape, dtype)) in enumerate(zip(calls, metas)):
                self._rewire(model, t, (name, k, 0), out_shape or shape, out_dtype or dtype)
            model["config"]["layers"].append(raw)
            self._reorder(scope)
        self.origin[(*scope, name)] = None
        if weights:
            self.new_vars[(*scope, name)] = list(weights)
        return name

    def replace(
        self, name: str, layer: dict[str, Any], scope: tuple[str, ...] = (), *,
        weights: list[np.ndarray] | None = None, keep_weights: bool = False, out_dtype: str | None = None,
    ) -> None:
        """Put `layer` in the place of layer `name`: same name, inputs and consumers. Its
        weights are `weights`, or the old layer's with `keep_weights=True`."""
        model = self.model(scope)
        old = self._raw(model, name)
        raw = copy.deepcopy(layer)
        raw["name"] = raw["config"]["name"] = name
        if "inbound_nodes" in old:
            raw["inbound_nodes"] = old["inbound_nodes"]
        else:
            raw.pop("inbound_nodes", None)
        if "build_config" in old and "build_config" not in raw:
            raw["build_config"] = old["build_config"]
        layers = model["config"]["layers"]
        layers[layers.index(old)] = raw
        if out_dtype is not None:
            for s in model_refs(model):
                if s.tensor[0] == name and s.meta is not None:
                    s.meta["dtype"] = out_dtype
        if not keep_weights:
            self.origin[(*scope, name)] = None
            self.new_vars[(*scope, name)] = list(weights or [])

    def add(
        self, layer: dict[str, Any], inputs: list[Tensor], scope: tuple[str, ...] = (), *,
        weights: list[np.ndarray] | None = None,
    ) -> str:
        """Add `layer` reading `inputs` (several: one list argument, as merge layers take them).
        Nothing reads it yet: connect it with `rewire`, which also restores Keras's order. A
        Sequential at `scope` becomes a Functional first (`functional`)."""
        self.functional(scope)
        model = self.model(scope)
        for t in inputs:
            self._raw(model, t[0])
        name = self.unique_name(layer_name(layer), scope)
        raw = copy.deepcopy(layer)
        raw["name"] = raw["config"]["name"] = name
        raw["inbound_nodes"] = [self._node(list(inputs), scope)]
        model["config"]["layers"].append(raw)
        self.origin[(*scope, name)] = None
        self.new_vars[(*scope, name)] = list(weights or [])
        return name

    def rewire(self, old: Tensor, new: Tensor, scope: tuple[str, ...] = ()) -> int:
        """Every reader of tensor `old` (layers and model outputs) reads `new` instead, except
        the layers `new` itself is computed from. Returns how many references moved."""
        self.functional(scope)
        model = self.model(scope)
        upstream = self._ancestors(model, new[0])
        moved = 0
        shape, dtype = self.tensor_meta(new, scope)
        for raw in model["config"]["layers"]:
            if layer_name(raw) in upstream:
                continue
            for node in raw.get("inbound_nodes") or []:
                for s in node_refs(node):
                    if s.tensor == old:
                        s.point_to(new, shape, dtype)
                        moved += 1
        for s in io_refs(model["config"].get("output_layers")):
            if s.tensor == old:
                s.point_to(new)
                moved += 1
        self._reorder_connected(scope)
        return moved

    def retarget(self, name: str, old: Tensor, new: Tensor, scope: tuple[str, ...] = ()) -> int:
        """Layer `name` reads `new` wherever it read `old` (other readers of `old` unchanged)."""
        self.functional(scope)
        model = self.model(scope)
        shape, dtype = self.tensor_meta(new, scope)
        moved = 0
        for node in self._raw(model, name).get("inbound_nodes") or []:
            for s in node_refs(node):
                if s.tensor == old:
                    s.point_to(new, shape, dtype)
                    moved += 1
        if not moved:
            raise EditError(f"layer {name!r} does not read {old[0]!r}")
        self._reorder_connected(scope)  # a chain of retargets may leave a layer unread midway
        return moved

    def rename(self, old: str, new: str, scope: tuple[str, ...] = ()) -> None:
        """Rename a layer and every reference to it (its weights follow)."""
        model = self.model(scope)
        if new in {layer_name(r) for r in model["config"]["layers"]}:
            raise EditError(f"a layer named {new!r} already exists")
        raw = self._raw(model, old)
        raw["config"]["name"] = new
        if "name" in raw:
            raw["name"] = new
        for s in [*model_refs(model), *io_refs(model["config"].get("input_layers"))]:
            if s.ref[0] == old:
                s.ref[0] = new
        for path in [p for p in self.origin if p[: len(scope) + 1] == (*scope, old)]:
            self.origin[(*scope, new, *path[len(scope) + 1:])] = self.origin.pop(path)
        if (*scope, old) in self.new_vars:
            self.new_vars[(*scope, new)] = self.new_vars.pop((*scope, old))

    def is_output(self, name: str, scope: tuple[str, ...] = ()) -> bool:
        return any(s.tensor[0] == name for s in io_refs(self.model(scope)["config"].get("output_layers")))

    def take_output_name(self, new: str, old: str, scope: tuple[str, ...] = ()) -> str:
        """When an edit appended layer `new` after a model output `old`, `new` is the output
        now: give it `old`'s name (and `old` a `_pre` one) so the model's output names, which
        callers match outputs by, stay the same. Returns `new`'s final name."""
        if not self.is_output(new, scope) or self.is_output(old, scope):
            return new
        self.rename(old, self.unique_name(f"{old}_pre", scope), scope)
        self.rename(new, old, scope)
        return old

    def _ancestors(self, model: dict[str, Any], name: str) -> set[str]:
        by_name = {layer_name(r): r for r in model["config"]["layers"]}
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n in seen or n not in by_name:
                continue
            seen.add(n)
            for node in by_name[n].get("inbound_nodes") or []:
                todo.extend(s.tensor[0] for s in node_refs(node))
        return seen

    def _reorder_connected(self, scope: tuple[str, ...]) -> None:
        """Reorder, dropping nothing: layers nobody reads yet (mid-edit) stay at the end."""
        model = self.model(scope)
        order = keras_order(model, self.dialect)
        by_name = {layer_name(r): r for r in model["config"]["layers"]}
        model["config"]["layers"] = [by_name[n] for n in order] + [r for n, r in by_name.items() if n not in order]

    def remove(self, name: str, scope: tuple[str, ...] = ()) -> None:
        """Remove a layer nobody reads, or a pass-through layer (one call, one input): its
        readers then read its input."""
        model = self.model(scope)
        raw = self._raw(model, name)
        if raw.get("class_name") == "InputLayer" or is_model(raw):
            raise EditError(f"{name!r} is not a pass-through layer")
        layers = model["config"]["layers"]
        read = any(s.tensor[0] == name for s in model_refs(model))
        if model.get("class_name") != "Sequential" and read:
            nodes = raw.get("inbound_nodes") or []
            if len(nodes) != 1:
                raise EditError(f"layer {name!r} is called {len(nodes)} times; only a single call can be removed")
            inputs = list(node_refs(nodes[0]))
            if len(inputs) != 1:
                raise EditError(f"layer {name!r} reads {len(inputs)} tensors; only one can pass through")
            src = inputs[0].tensor
            shape, dtype = self.tensor_meta(src, scope)
            self._rewire(model, (name, 0, 0), src, shape, dtype)
        layers.remove(raw)
        if model.get("class_name") != "Sequential":
            self._reorder(scope)
        self.origin.pop((*scope, name), None)
        self.new_vars.pop((*scope, name), None)

    def set_input(
        self, name: str, *, shape: Any = None, dtype: str | None = None, scope: tuple[str, ...] = ()
    ) -> None:
        """Change an input's shape (batch included) and/or dtype, and the references to it."""
        model = self.model(scope)
        raw = self._raw(model, name)
        if raw.get("class_name") != "InputLayer":
            raise EditError(f"{name!r} is not an input layer")
        cfg = raw["config"]
        if shape is not None:
            key = "batch_shape" if "batch_shape" in cfg or self.dialect == "keras3" else "batch_input_shape"
            cfg[key] = list(shape)
        if dtype is not None:
            cfg["dtype"] = dtype
        for s in model_refs(model):
            if s.tensor == (name, 0, 0) and s.meta is not None:
                s.point_to(s.tensor, shape, dtype)
        if shape is not None:  # the layers reading the input were built for its old shape
            for other in model["config"]["layers"]:
                bc = other.get("build_config") or {}
                reads = any(s.tensor[0] == name for n in other.get("inbound_nodes") or [] for s in node_refs(n))
                if reads and isinstance(bc.get("input_shape"), list) and len(bc["input_shape"]) == len(shape):
                    bc["input_shape"] = list(shape)

    def set_batch(self, batch: int | None, scope: tuple[str, ...] = ()) -> None:
        """Fix the batch dimension of every input, and of every shape the config records
        downstream (Keras 3 refs, build configs, a Sequential's `build_input_shape`, the
        `batch_input_shape` tf_keras keeps on a Sequential's first layer), so the config reads
        as one static graph."""
        model = self.model(scope)

        def fix(shape: Any) -> None:
            if isinstance(shape, list) and shape and (shape[0] is None or isinstance(shape[0], int)):
                shape[0] = batch

        fix(model["config"].get("build_input_shape"))
        fix((model.get("build_config") or {}).get("input_shape"))
        for raw in model["config"]["layers"]:
            cfg = raw.get("config") or {}
            for key in ("batch_shape", "batch_input_shape"):
                fix(cfg.get(key))
            fix((raw.get("build_config") or {}).get("input_shape"))
        for s in model_refs(model):
            if s.meta is not None:
                fix(s.meta.get("shape"))

    def splice(self, name: str, scope: tuple[str, ...] = ()) -> dict[str, str]:
        """Flatten the nested model `name` into its parent. Inner layers whose names clash get
        `<model>_<name>`; when the nested model is a model output, its output layer takes the
        nested model's name, so the outer output names do not change. Returns old → new names
        of the inner layers.

        A nested model called K times (a Siamese branch applied to two inputs) becomes its
        layers called K times: each inner layer, once in the parent, gets one inbound node per
        call of the model (call k's nodes after call k-1's), so the calls share the layer
        objects and their weights, as they shared the model's."""
        self.functional(scope)
        outer = self.model(scope)
        raw = self._raw(outer, name)
        if not is_model(raw):
            raise EditError(f"{name!r} is not a nested model")
        self.functional((*scope, name))  # a nested Sequential: its chain as call nodes
        nodes = raw.get("inbound_nodes") or []
        if not nodes:
            raise EditError(f"nested model {name!r} is never called")
        inner_cfg = raw["config"]
        inner_layers = [copy.deepcopy(r) for r in inner_cfg["layers"]]
        inputs = [s.tensor for s in io_refs(inner_cfg.get("input_layers"))]
        outputs = [s.tensor for s in io_refs(inner_cfg.get("output_layers"), keras_order=True)]  # the node index order
        feeds: list[dict[Tensor, Tensor]] = []  # per call: inner input → the parent's tensor
        for node in nodes:
            args = [s.tensor for s in node_refs(node)]
            if len(inputs) != len(args):
                raise EditError(f"nested model {name!r} has {len(inputs)} inputs but is called on {len(args)}")
            feeds.append(dict(zip(inputs, args)))
        inner_layers = [r for r in inner_layers if (layer_name(r), 0, 0) not in feeds[0]]

        # New names: keep where free; the single output may take the model's own name.
        taken = {layer_name(r) for r in outer["config"]["layers"] if r is not raw}
        is_output = any(s.tensor[0] == name for s in io_refs(outer["config"].get("output_layers")))
        renames: dict[str, str] = {}
        if is_output and len(outputs) == 1 and outputs[0] not in feeds[0]:
            renames[outputs[0][0]] = name
        for r in inner_layers:
            old = layer_name(r)
            if old in renames:
                continue
            new = old if old not in taken and old != name else f"{name}_{old}"
            base, i = new, 1
            while new in taken or new == name or new in renames.values():
                new, i = f"{base}_{i}", i + 1
            renames[old] = new

        # Node m of inner layer L (of n_L, numbered from first_node f_L) in call k is node
        # f_L + k·n_L + (m − f_L) of the spliced layer.
        counts = {layer_name(r): (first_node(r, self.dialect), len(r.get("inbound_nodes") or [])) for r in inner_layers}

        def in_call(t: Tensor, k: int) -> Tensor:
            if t in feeds[k]:
                return feeds[k][t]
            f, n = counts.get(t[0], (0, 0))
            return (renames.get(t[0], t[0]), f + k * n + (t[1] - f), t[2])

        for r in inner_layers:
            own = r.get("inbound_nodes") or []
            spliced = []
            for k in range(len(nodes)):
                for node in (own if k == len(nodes) - 1 else copy.deepcopy(own)):
                    for s in node_refs(node):
                        t = in_call(s.tensor, k)
                        if s.tensor in feeds[k]:
                            s.point_to(t)
                        else:
                            s.ref[0:3] = list(t)
                    spliced.append(node)
            r["name"] = r["config"]["name"] = renames[layer_name(r)]
            if "inbound_nodes" in r:
                r["inbound_nodes"] = spliced
        # Consumers of call k of the nested model read call k's inner outputs (tf_keras counts
        # the model's calls from 1).
        first = first_node(raw, self.dialect)
        for s in model_refs(outer):
            k = s.tensor[1] - first
            if s.tensor[0] == name and 0 <= k < len(nodes):
                s.point_to(in_call(outputs[s.tensor[2]], k))
        layers = outer["config"]["layers"]
        at = layers.index(raw)
        outer["config"]["layers"] = layers[:at] + inner_layers + layers[at + 1:]
        self._reorder(scope)

        # Weights: each inner layer keeps its own; the model's group goes away.
        inside = {p: self.origin.pop(p) for p in list(self.origin) if p[: len(scope) + 1] == (*scope, name)}
        for path, source in inside.items():
            rest = path[len(scope) + 1:]
            if rest and rest[0] in renames:  # not the model itself, nor its dropped inputs
                self.origin[(*scope, renames[rest[0]], *rest[1:])] = source
        return renames

    def retype_casts(self, old: str, new: str, scope: tuple[str, ...] = ()) -> list[str]:
        """Cast ops and layers whose target dtype is `old` get `new` (Keras 3 `Cast` nodes,
        tf_keras `tf.cast` TFOpLambda kwargs); references to their outputs follow."""
        model = self.model(scope)
        changed = []
        for raw in model["config"]["layers"]:
            if not is_cast(raw):
                continue
            cast = False
            if raw.get("class_name") == "TFOpLambda":  # tf.cast takes its dtype as a call argument
                for node in raw.get("inbound_nodes") or []:
                    for e in tfk_entries(node):
                        if len(e) > 3 and isinstance(e[3], dict) and e[3].get("dtype") == old:
                            e[3]["dtype"] = new
                            cast = True
            elif raw["config"].get("dtype") == old:
                raw["config"]["dtype"] = new
                cast = True
            if cast:
                changed.append(layer_name(raw))
        for s in model_refs(model):
            if s.tensor[0] in changed and s.meta is not None and s.meta.get("dtype") == old:
                s.meta["dtype"] = new
        return changed

