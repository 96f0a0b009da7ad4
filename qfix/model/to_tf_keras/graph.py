"""The model graph, Keras 3 → tf_keras: inbound nodes, model inputs/outputs, nested models,
op nodes, and the few layers tf_keras has no class for, expanded into built-in layers.

* A Keras 3 node `{"args": [...], "kwargs": {...}}` with `__keras_tensor__` arguments becomes
  tf_keras's `[[layer, node, tensor, kwargs], ...]` (one entry per tensor of the first
  argument; further positional arguments become keywords by the layer's call signature,
  CALL_ARGS). A `training` call argument is dropped: Keras 3 records the value a layer was
  built with, tf_keras would pin it (Dropout always off in training).
* tf_keras counts a nested model's own construction as its node 0, Keras 3 does not: every
  reference to a nested Functional (or a Sequential with an InputLayer) moves up one node.
* `input_layers`/`output_layers`: tf_keras nests a single reference in a list.
* Op nodes become TFOpLambda layers (ops.py); TFOpLambda nodes are one bare entry.
* An integer tensor into a float layer (Concatenate of a uint8 frame and float features) gets
  an explicit cast: Keras 3 promotes it, tf_keras refuses the mix (KEEPS_INTEGERS excepted).
* Layers tf_keras lacks or computes differently become built-in layers (expand.py); the
  layers are listed in the order tf_keras will list them (order.py).
"""

from __future__ import annotations

from typing import Any, Callable

from qfix.model.config import is_model, layer_name
from qfix.model.to_tf_keras.errors import Untranslatable
from qfix.model.to_tf_keras.expand import custom_scale_steps, expand, hard_steps, replace_application_layer, unique
from qfix.model.to_tf_keras.notes import lambda_carried
from qfix.model.to_tf_keras.layers import HARD, translate_entry, value
from qfix.model.to_tf_keras.ops import TF_OP_MODULE, is_tensor, translate_op
from qfix.model.to_tf_keras.order import is_ref, skips_first_node, tf_keras_order

FUNCTIONAL_MODULE = "tf_keras.src.engine.functional"
# Keras 3 call signatures: positional arguments after the first, as tf_keras keywords.
CALL_ARGS: dict[str, list[str]] = {
    "MultiHeadAttention": ["value", "key", "query_mask", "value_mask", "key_mask", "attention_mask"],
    "LSTM": ["initial_state", "mask"], "GRU": ["initial_state", "mask"],
    "SimpleRNN": ["initial_state", "mask"], "RNN": ["initial_state", "mask"],
    "Bidirectional": ["initial_state", "mask"],
}
# Layers that take integer tensors as such (Keras 3 and tf_keras alike); every other built-in
# layer computes in its float dtype, which Keras 3 reaches by promoting an integer input and
# tf_keras does not (Concatenate of uint8 and float32 fails there): graph.py casts first.
KEEPS_INTEGERS = {"Embedding", "CategoryEncoding", "IntegerLookup", "StringLookup", "Hashing", "HashedCrossing",
                  "TextVectorization", "Reshape", "Flatten", "Permute", "RepeatVector", "Identity",
                  "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"}
CUSTOM_SCALE = ("keras.src.applications.inception_resnet_v2", "CustomScaleLayer")

Ref = list  # [layer, node, tensor]


def translate_model(raw: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    cls = raw.get("class_name")
    if cls == "Functional":
        return _functional(raw, notes)
    if cls == "Sequential":
        return _sequential(raw, notes)
    raise Untranslatable(layer_name(raw), f"a {cls} model (only Functional and Sequential configs)")


# --- Sequential ----------------------------------------------------------------------------


def _sequential(raw: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    cfg = raw.get("config") or {}
    out: list[dict[str, Any]] = []
    names = {layer_name(l) for l in cfg.get("layers") or []}
    for l in cfg.get("layers") or []:
        name = layer_name(l)
        l = replace_application_layer(l, notes)
        if is_model(l):
            out.append(translate_model(l, notes))
            continue
        if str(l.get("module", "")).startswith("keras.src.ops"):
            raise Untranslatable(name, "an op node in a Sequential")
        act = (l.get("config") or {}).get("activation")
        if act not in HARD:
            out.append(_plain_entry(l, notes))
            continue
        if act != "hard_sigmoid":
            raise Untranslatable(name, f"{act} in a Sequential (its tf_keras form needs a two-input Multiply)")  # translate() makes it Functional first (sequential.py)
        steps = hard_steps(act)
        if l.get("class_name") != "Activation":
            entry = translate_entry(l, keep_activation=True)
            entry["config"]["activation"] = "linear"
            out.append(entry)
        for i, (suffix, entry, _) in enumerate(steps):
            last = i == len(steps) - 1 and l.get("class_name") == "Activation"
            entry["config"]["name"] = name if last else unique(f"{name}_{suffix}", names)
            out.append(entry)
        notes.append(f"{name}: {act} expanded into Rescaling, ReLU(6), Rescaling (tf_keras's hard_sigmoid differs)")
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": cfg.get("name"), "layers": out}, "registered_name": None}


def _plain_entry(l: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    module = str(l.get("module") or "")
    if not (module == "keras.layers" or module.startswith("keras.src.")):
        notes.append(f"{layer_name(l)}: custom layer {l.get('registered_name') or l.get('class_name')} kept as is; "
                     "tf_keras loads it only from a tf_keras class registered under that name")
    if l.get("class_name") == "Lambda":
        notes.append(lambda_carried(layer_name(l)))
    return translate_entry(l)


# --- Functional ----------------------------------------------------------------------------


def _functional(raw: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    cfg = raw.get("config") or {}
    layers = list(cfg.get("layers") or [])
    names = {layer_name(l) for l in layers}
    shift: dict[str, int] = {}
    alias: dict[str, str] = {}  # a layer whose activation is expanded after it → the expansion's end
    for l in layers:
        name = layer_name(l)
        if is_model(l) and skips_first_node(l):
            shift[name] = 1
        act = (l.get("config") or {}).get("activation")
        if act in HARD and l.get("class_name") != "Activation" and not _is_op(l):
            alias[name] = unique(f"{name}_{act}", names)

    def ref(t: dict[str, Any]) -> Ref:
        name, node, index = (t.get("config") or {}).get("keras_history")
        if name in alias:
            return [alias[name], node, index]
        return [name, node + shift.get(name, 0), index]

    def refs(v: Any) -> Any:  # tensors anywhere in a value → references
        if is_tensor(v):
            return ref(v)
        if isinstance(v, list):
            return [refs(x) for x in v]
        if isinstance(v, dict):
            return {k: refs(x) for k, x in v.items()}
        return v

    out: list[dict[str, Any]] = []
    for l in layers:
        name = layer_name(l)
        l = replace_application_layer(l, notes)
        calls = [_call(n, name) for n in l.get("inbound_nodes") or []]
        cls = str(l.get("class_name"))
        if cls == "InputLayer":
            out.append({**translate_entry(l), "name": name, "inbound_nodes": []})
        elif _is_op(l) and cls in ("HardSigmoid", "HardSilu"):
            kind = "hard_sigmoid" if cls == "HardSigmoid" else "hard_silu"
            out += expand(hard_steps(kind), name, [[ref(a[0])] for a, _ in calls], names, final=name)
            notes.append(f"{name}: ops.{kind} expanded into built-in layers")
        elif _is_op(l):
            entry, nodes = None, []
            for args, kwargs in calls:
                entry, first, kw = translate_op(l, name, args, _drop_call_kwargs(kwargs, name, notes))
                kw = value(refs(kw), name)
                nodes.append([*ref(first), kw] if is_tensor(first) else [[*ref(t), kw] for t in first])
            out.append({**entry, "name": name, "inbound_nodes": nodes})
        elif cls == "Activation" and (l.get("config") or {}).get("activation") in HARD:
            kind = l["config"]["activation"]
            out += expand(hard_steps(kind), name, [[ref(a[0])] for a, _ in calls], names, final=name)
            notes.append(f"{name}: Activation({kind}) expanded into built-in layers (tf_keras's differs or is missing)")
        elif (l.get("module"), cls) == CUSTOM_SCALE:
            scale = float((l.get("config") or {}).get("scale"))
            ins = [[ref(t) for t in a[0]] for a, _ in calls]
            out += expand(custom_scale_steps(scale), name, ins, names, final=name)
            notes.append(f"{name}: CustomScaleLayer expanded into Rescaling({scale:g}) and Add")
        else:
            if str(l.get("module")) == "keras.layers" and cls not in KEEPS_INTEGERS:
                calls = [(_cast_integer_inputs(name, k, args, out, ref), kwargs) for k, (args, kwargs) in enumerate(calls)]
            entry = translate_model(l, notes) if is_model(l) else None
            if entry is None:
                entry = translate_entry(l, keep_activation=True) if name in alias else _plain_entry(l, notes)
            nodes = [_layer_node(cls, name, args, _drop_call_kwargs(kwargs, name, notes), ref, refs)
                     for args, kwargs in calls]
            if cls == "MultiHeadAttention" and calls:
                entry["config"].update(_attention_shapes(*calls[0]))
            out.append({**entry, "name": name, "inbound_nodes": nodes})
            if name in alias:
                kind = entry["config"]["activation"]
                entry["config"]["activation"] = "linear"
                out += expand(hard_steps(kind), name, [[[name, k, 0]] for k in range(len(calls))], names,
                               final=alias[name])
                notes.append(f"{name}: activation {kind} moved into built-in layers after it ({alias[name]})")
    inputs = _io(cfg.get("input_layers"), lambda r: [r[0], r[1], r[2]])
    outputs = _io(cfg.get("output_layers"), lambda r: ref({"config": {"keras_history": r}}))
    return {
        "module": FUNCTIONAL_MODULE,
        "class_name": "Functional",
        "config": {"name": cfg.get("name"), "trainable": cfg.get("trainable", True),
                   "layers": tf_keras_order(out, outputs, inputs),
                   "input_layers": inputs, "output_layers": outputs},
        "registered_name": "Functional",
    }


def _attention_shapes(args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """tf_keras's MultiHeadAttention.from_config requires the shapes it was built with."""
    named = {**dict(zip(["query", "value", "key"], args)), **kwargs}
    shape = lambda t: (t.get("config") or {}).get("shape") if is_tensor(t) else None  # noqa: E731
    value_shape = shape(named.get("value"))
    return {"query_shape": shape(named.get("query")), "value_shape": value_shape,
            "key_shape": shape(named.get("key")) or value_shape}


def _is_op(l: dict[str, Any]) -> bool:
    return str(l.get("module") or "").startswith("keras.src.ops")


def _cast_integer_inputs(name: str, k: int, args: list[Any], out: list[dict[str, Any]],
                         ref: Callable[[dict[str, Any]], Ref]) -> list[Any]:
    """`args` with each integer tensor of the first argument replaced by its cast to float32
    (a TFOpLambda appended to `out`), as Keras 3's promotion computes it."""
    if not args:
        return args
    first = args[0]
    tensors = first if isinstance(first, list) else [first]
    new = []
    for i, t in enumerate(tensors):
        dtype = str((t.get("config") or {}).get("dtype") or "") if is_tensor(t) else ""
        if not dtype.startswith(("int", "uint", "bool")):
            new.append(t)
            continue
        cast = f"{name}_cast_input_{k}_{i}"
        out.append({"module": TF_OP_MODULE, "class_name": "TFOpLambda", "registered_name": "TFOpLambda",
                    "config": {"name": cast, "trainable": True, "dtype": dtype, "function": "cast"},
                    "name": cast, "inbound_nodes": [[*ref(t), {"dtype": "float32"}]]})
        new.append({"class_name": "__keras_tensor__",
                    "config": {**t["config"], "dtype": "float32", "keras_history": [cast, 0, 0]}})
    return [new if isinstance(first, list) else new[0], *args[1:]]


def _call(node: Any, name: str) -> tuple[list[Any], dict[str, Any]]:
    if not isinstance(node, dict) or "args" not in node:
        raise Untranslatable(name, "an inbound node that is not in Keras 3's format")
    args, kwargs = list(node.get("args") or []), dict(node.get("kwargs") or {})
    if not args and "inputs" in kwargs:
        args = [kwargs.pop("inputs")]
    return args, kwargs


def _drop_call_kwargs(kwargs: dict[str, Any], name: str, notes: list[str]) -> dict[str, Any]:
    kwargs = dict(kwargs)
    if kwargs.pop("training", None):
        notes.append(f"{name}: call argument training=True dropped (the model's own training flag decides)")
    if "mask" in kwargs and kwargs["mask"] is None:
        del kwargs["mask"]  # tf_keras layers without a mask argument refuse mask=None
    return kwargs


def _layer_node(cls: str, name: str, args: list[Any], kwargs: dict[str, Any],
                ref: Callable[[dict[str, Any]], Ref], refs: Callable[[Any], Any]) -> Any:
    if not args:
        raise Untranslatable(name, "a call without a positional input")
    first, rest = args[0], args[1:]
    if rest:
        extra = CALL_ARGS.get(cls)
        if extra is None or len(rest) > len(extra):
            raise Untranslatable(name, f"{cls} called with {len(args)} positional arguments")
        kwargs = {**dict(zip(extra, rest)), **kwargs}
    kw = value(refs(kwargs), name)
    if is_tensor(first):
        return [[*ref(first), kw]]
    if isinstance(first, list) and first and all(is_tensor(t) for t in first):
        return [[*ref(t), kw] for t in first]
    if isinstance(first, dict) and first and all(is_tensor(t) for t in first.values()):
        return {k: [*ref(t), kw] for k, t in first.items()}
    raise Untranslatable(name, "a call whose input is not a tensor or a flat list/dict of tensors")


def _io(v: Any, convert: Callable[[list], Ref]) -> Any:
    """`input_layers`/`output_layers` in tf_keras's shape (a single reference in a list)."""
    if is_ref(v):
        return [convert(v)]
    if isinstance(v, list):
        return [convert(r) if is_ref(r) else _io(r, convert) for r in v]
    if isinstance(v, dict):
        return {k: convert(r) if is_ref(r) else _io(r, convert) for k, r in v.items()}
    return v


