"""The `.keras` config format, both dialects: the one place that knows how a layer entry spells
its name, dtype policy, activation, cast, nested model, input shape and tensor references.

Keras 3 writes each inbound tensor as `{"class_name": "__keras_tensor__", "config": {shape,
dtype, keras_history: [layer, node, index]}}` inside `{"args": [...], "kwargs": {...}}` nodes,
and stores `keras.ops` calls (Cast, Add, …) as nodes of module `keras.src.ops.*`. tf_keras
writes a node as `[layer, node, index, kwargs]` entries (or one bare entry), with no dtypes,
and stores `tf.*` calls as `TFOpLambda` layers. `graph.py` builds its read-only IR on these
readers; `edit.py` rewires through `Ref`s; the model rewrites ask the same questions here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Tensor = tuple[str, int, int]  # (layer, node, index)

MODEL_CLASSES = {"Functional", "Sequential", "Model"}


class MalformedConfig(ValueError):
    """A tensor reference or inbound node that neither dialect writes."""


# --- one layer entry ----------------------------------------------------------------------


def layer_name(raw: dict[str, Any]) -> str:
    """The name of a layer entry (top-level `name`, or tf_keras's `config.name`)."""
    cfg = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    return str(raw.get("name") or cfg.get("name"))


def policy_name(policy: Any) -> str | None:
    """The dtype of a `dtype` config value: a string (tf_keras) or a Keras 3 DTypePolicy dict."""
    if isinstance(policy, dict):
        policy = (policy.get("config") or {}).get("name")
    return policy if isinstance(policy, str) else None


def activation_name(raw: dict[str, Any]) -> str | None:
    """The `activation` a layer entry applies: a name, or a serialized function's name."""
    act = (raw.get("config") or {}).get("activation")
    if isinstance(act, dict):  # serialized function or object
        act = act.get("config") if isinstance(act.get("config"), str) else act.get("class_name")
    return act if isinstance(act, str) else None


def op_function(raw: dict[str, Any]) -> str | None:
    """The op a call entry stands for: `cast` for a tf_keras TFOpLambda of tf.cast (its
    `function` may carry a module path), `Cast` for a Keras 3 op node; None for a layer."""
    cfg = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    if raw.get("class_name") == "TFOpLambda":
        return str(cfg.get("function", "")).rsplit(".", 1)[-1]
    if str(raw.get("module") or "").startswith("keras.src.ops"):
        return raw.get("class_name")
    return None


def is_cast(raw: dict[str, Any]) -> bool:
    """`keras.ops.cast` (Keras 3 op node `Cast`) or `tf.cast` (tf_keras TFOpLambda)."""
    return op_function(raw) in ("cast", "Cast")


def is_model(raw: dict[str, Any]) -> bool:
    """A Functional / Sequential model used as a layer (its config holds a layer list)."""
    cfg = raw.get("config")
    return raw.get("class_name") in MODEL_CLASSES and isinstance(cfg, dict) and isinstance(cfg.get("layers"), list)


def first_node(raw: dict[str, Any], dialect: str) -> int:
    """The node index of a layer's first saved call. tf_keras does not save a nested model's
    own first node (its construction), so references to its first call use node 1
    (`_should_skip_first_node`); everything else starts at 0."""
    if dialect == "tf_keras" and is_model(raw):
        inner = raw["config"]["layers"]
        return 1 if inner and inner[0].get("class_name") == "InputLayer" else 0
    return 0


def shape(value: Any) -> tuple[int | None, ...] | None:
    """A shape list (`None` for unknown dimensions) as a tuple; None when it is not one."""
    if isinstance(value, list) and all(d is None or isinstance(d, int) for d in value):
        return tuple(value)
    return None


def input_shape(cfg: dict[str, Any]) -> tuple[int | None, ...] | None:
    """An InputLayer's shape, batch included: Keras 3 `batch_shape`, tf_keras `batch_input_shape`."""
    return shape(cfg.get("batch_shape")) or shape(cfg.get("batch_input_shape"))


def sequential_input(cfg: dict[str, Any]) -> tuple[str, tuple[int | None, ...] | None, str]:
    """The input of a Sequential config that has no InputLayer entry (never built, or an old
    file): the name qfix gives it, its shape (the Sequential's `build_input_shape`, else the
    first layer's `batch_input_shape` / `batch_shape`) and dtype (the first layer's policy)."""
    layers = cfg.get("layers") or [{}]
    first = layers[0].get("config") if isinstance(layers[0].get("config"), dict) else {}
    found = shape(cfg.get("build_input_shape")) or input_shape(first)
    return f"{cfg.get('name', 'sequential')}_input", found, policy_name(first.get("dtype")) or "float32"


def cast_dtypes(raw: dict[str, Any]) -> list[str]:
    """The target dtype(s) of a cast entry: a Keras 3 `Cast` node's config, a tf.cast's call kwargs."""
    if raw.get("class_name") == "TFOpLambda":
        return [e[3]["dtype"] for node in raw.get("inbound_nodes") or [] for e in tfk_entries(node)
                if len(e) > 3 and isinstance(e[3], dict) and isinstance(e[3].get("dtype"), str)]
    dtype = (raw.get("config") or {}).get("dtype")
    return [dtype] if isinstance(dtype, str) else []


# --- tensor references --------------------------------------------------------------------


@dataclass
class Ref:
    """One tensor reference inside a config, mutable in place."""

    ref: list[Any]  # starts with [layer, node, index]
    meta: dict[str, Any] | None  # Keras 3 tensor config (shape, dtype), else None

    @property
    def tensor(self) -> Tensor:
        return (str(self.ref[0]), int(self.ref[1]), int(self.ref[2]))

    @property
    def shape(self) -> tuple[int | None, ...] | None:
        return shape(self.meta.get("shape")) if self.meta is not None else None

    @property
    def dtype(self) -> str | None:
        return self.meta.get("dtype") if self.meta is not None else None

    def point_to(self, t: Tensor, shape: Any = None, dtype: str | None = None) -> None:
        self.ref[0:3] = list(t)
        if self.meta is not None:
            if shape is not None:
                self.meta["shape"] = list(shape)
            if dtype is not None:
                self.meta["dtype"] = dtype


def tfk_entries(node: list) -> list:
    """The `[layer, node, index, kwargs]` entries of a tf_keras node (one bare entry or a list)."""
    return [node] if node and isinstance(node[0], str) else node


def node_refs(node: Any, keras_order: bool = True) -> Iterator[Ref]:
    """The tensor references of one inbound node.

    `keras_order=True`: every reference, in Keras's flattening order (dict keys sorted, as
    `tree.flatten` does), including the tensors tf_keras writes inside an entry's kwargs; what
    rewiring and Keras's own layer order need. `keras_order=False`: the tensors the layer is
    called on, in file order, with tf_keras kwargs left as kwargs; the graph's view.
    Raises MalformedConfig for a reference neither dialect writes."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        yield from _k3_refs(node.get("args", []), keras_order)
        kwargs = node.get("kwargs") or {}
        for key in (sorted(kwargs) if keras_order else kwargs):
            yield from _k3_refs(kwargs[key], keras_order)
    elif isinstance(node, list):
        for e in tfk_entries(node):
            if not (isinstance(e, list) and len(e) >= 3 and isinstance(e[0], str)):
                raise MalformedConfig("a malformed inbound node")
            yield Ref(e, None)
            if keras_order and len(e) > 3 and isinstance(e[3], dict):
                for key in sorted(e[3]):
                    yield from _tfk_kwarg_refs(e[3][key])
    else:
        raise MalformedConfig("a malformed inbound node")


def node_kwargs(node: Any) -> dict[str, Any]:
    """The keyword arguments of one call: Keras 3 `kwargs`, or the merged tf_keras entry kwargs."""
    if isinstance(node, dict):
        return node.get("kwargs") or {}
    kw: dict[str, Any] = {}
    for e in tfk_entries(node) if isinstance(node, list) else []:
        if isinstance(e, list) and len(e) > 3 and isinstance(e[3], dict):
            kw.update(e[3])
    return kw


def _k3_refs(value: Any, keras_order: bool) -> Iterator[Ref]:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            cfg = value.get("config") or {}
            hist = cfg.get("keras_history")
            if not (isinstance(hist, list) and len(hist) == 3 and isinstance(hist[0], str)):
                raise MalformedConfig("a tensor reference without a valid keras_history")
            yield Ref(hist, cfg)
        else:
            for key in (sorted(value) if keras_order else value):
                yield from _k3_refs(value[key], keras_order)
    elif isinstance(value, list):
        for v in value:
            yield from _k3_refs(v, keras_order)


def _tfk_kwarg_refs(value: Any) -> Iterator[Ref]:
    """tf_keras writes a tensor passed as a non-first call argument (MultiHeadAttention's
    `value`, `tf.add`'s `y`) as a bare `[layer, node, index]` inside the entry's kwargs."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) \
            and isinstance(value[1], int) and isinstance(value[2], int):
        yield Ref(value, None)
    elif isinstance(value, list):
        for v in value:
            yield from _tfk_kwarg_refs(v)
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _tfk_kwarg_refs(value[key])


def io_refs(value: Any, keras_order: bool = False) -> Iterator[Ref]:
    """`input_layers` / `output_layers`: a `[name, node, index]` triple or nested lists (or
    dicts) of them. `keras_order`: a dict's values by sorted key, the order in which Keras (3 and
    tf_keras alike: `tree.flatten` / `tf.nest.flatten`) lists `model.outputs` and `output_names`
    for a dict of outputs; otherwise in the file's (insertion) order."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        yield Ref(value, None)
    elif isinstance(value, list):
        for v in value:
            yield from io_refs(v, keras_order)
    elif isinstance(value, dict):
        for key in sorted(value, key=str) if keras_order else value:
            yield from io_refs(value[key], keras_order)


def model_refs(model: dict[str, Any]) -> Iterator[Ref]:
    """Every reference a layer of this model makes to a tensor, then the model outputs."""
    for raw in model["config"]["layers"]:
        for node in raw.get("inbound_nodes") or []:
            yield from node_refs(node)
    yield from io_refs(model["config"].get("output_layers"))
