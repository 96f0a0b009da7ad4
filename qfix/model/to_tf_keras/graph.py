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
* Expanded, exactly (same float arithmetic up to rounding): `hard_sigmoid` (Keras 3's
  relu6(x + 3) / 6, not tf_keras's 0.2x + 0.5) as Rescaling(1, 3) → ReLU(6) → Rescaling(1/6),
  `hard_silu`/`hard_swish` as that times x (Multiply), whether an Activation layer, a layer's
  `activation` or an op node; InceptionResNetV2's CustomScaleLayer as Rescaling(scale) → Add.
* The layers of a functional config are written in the order tf_keras will list them after
  loading (its `_map_graph_network`: node depth, then depth-first discovery order), since
  `model.weights.h5` is keyed by that order (weights.py).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from qfix.model.config import is_model, layer_name
from qfix.model.to_tf_keras.errors import Untranslatable
from qfix.model.to_tf_keras.layers import HARD, translate_config, translate_entry, value
from qfix.model.to_tf_keras.ops import TF_OP_MODULE, is_tensor, translate_op

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
        l = _replace_application_layer(l, notes)
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
            raise Untranslatable(name, f"{act} in a Sequential (its tf_keras form needs a two-input Multiply)")
        steps = _hard_steps(act)
        if l.get("class_name") != "Activation":
            entry = translate_entry(l, keep_activation=True)
            entry["config"]["activation"] = "linear"
            out.append(entry)
        for i, (suffix, entry, _) in enumerate(steps):
            last = i == len(steps) - 1 and l.get("class_name") == "Activation"
            entry["config"]["name"] = name if last else _unique(f"{name}_{suffix}", names)
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
        notes.append(f"{layer_name(l)}: Lambda bytecode carried as is (tf_keras runs it only with --trust-lambdas)")
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
        if is_model(l) and _skips_first_node(l):
            shift[name] = 1
        act = (l.get("config") or {}).get("activation")
        if act in HARD and l.get("class_name") != "Activation" and not _is_op(l):
            alias[name] = _unique(f"{name}_{act}", names)

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
        l = _replace_application_layer(l, notes)
        calls = [_call(n, name) for n in l.get("inbound_nodes") or []]
        cls = str(l.get("class_name"))
        if cls == "InputLayer":
            out.append({**translate_entry(l), "name": name, "inbound_nodes": []})
        elif _is_op(l) and cls in ("HardSigmoid", "HardSilu"):
            kind = "hard_sigmoid" if cls == "HardSigmoid" else "hard_silu"
            out += _expand(_hard_steps(kind), name, [[ref(a[0])] for a, _ in calls], names, final=name)
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
            out += _expand(_hard_steps(kind), name, [[ref(a[0])] for a, _ in calls], names, final=name)
            notes.append(f"{name}: Activation({kind}) expanded into built-in layers (tf_keras's differs or is missing)")
        elif (l.get("module"), cls) == CUSTOM_SCALE:
            scale = float((l.get("config") or {}).get("scale"))
            ins = [[ref(t) for t in a[0]] for a, _ in calls]
            out += _expand(_custom_scale_steps(scale), name, ins, names, final=name)
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
                out += _expand(_hard_steps(kind), name, [[[name, k, 0]] for k in range(len(calls))], names,
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


def _replace_application_layer(l: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """ConvNeXt's LayerScale and StochasticDepth as built-in layers: tf_keras's own copies of
    those classes do not load (tf_keras 2.21 cannot even reload its own ConvNeXt), and tfmot
    knows neither. LayerScale (x * gamma, per channel) is a 1x1 DepthwiseConv2D without bias
    (weights.py reshapes gamma into its kernel); StochasticDepth (drop the whole residual per
    sample, scale by 1/keep) is Dropout with noise_shape (batch, 1, ..., 1)."""
    if l.get("module") != "keras.src.applications.convnext":
        return l
    name, cfg = layer_name(l), dict(l.get("config") or {})
    rank = len(((l.get("build_config") or {}).get("input_shape")) or [])
    base = {"name": name, "trainable": cfg.get("trainable", True), "dtype": cfg.get("dtype", "float32")}
    if l.get("class_name") == "LayerScale":
        if rank != 4:
            raise Untranslatable(name, f"LayerScale on a rank-{rank} input (only rank 4 maps to DepthwiseConv2D)")
        new = {**base, "kernel_size": [1, 1], "strides": [1, 1], "padding": "valid", "depth_multiplier": 1,
               "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": False}
        notes.append(f"{name}: LayerScale as a 1x1 DepthwiseConv2D without bias (same per-channel product)")
        return {**l, "module": "keras.layers", "class_name": "DepthwiseConv2D", "registered_name": None, "config": new}
    if l.get("class_name") == "StochasticDepth":
        if rank < 2:
            raise Untranslatable(name, "StochasticDepth without a known input rank")
        new = {**base, "rate": cfg.get("drop_path_rate", 0.0), "noise_shape": [None] + [1] * (rank - 1), "seed": None}
        notes.append(f"{name}: StochasticDepth as Dropout with one draw per sample (the same training noise)")
        return {**l, "module": "keras.layers", "class_name": "Dropout", "registered_name": None, "config": new}
    raise Untranslatable(name, f"ConvNeXt's {l.get('class_name')} has no tf_keras equivalent")


def _is_op(l: dict[str, Any]) -> bool:
    return str(l.get("module") or "").startswith("keras.src.ops")


def _skips_first_node(l: dict[str, Any]) -> bool:
    """tf_keras's `_should_skip_first_node`: a Functional, or a Sequential built from an Input."""
    if l.get("class_name") == "Functional":
        return True
    first = ((l.get("config") or {}).get("layers") or [{}])[0]
    return l.get("class_name") == "Sequential" and first.get("class_name") == "InputLayer"


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
    if _is_ref(v):
        return [convert(v)]
    if isinstance(v, list):
        return [convert(r) if _is_ref(r) else _io(r, convert) for r in v]
    if isinstance(v, dict):
        return {k: convert(r) if _is_ref(r) else _io(r, convert) for k, r in v.items()}
    return v


def _is_ref(v: Any) -> bool:
    return isinstance(v, list) and len(v) in (3, 4) and isinstance(v[0], str)


# --- expansions into built-in layers -----------------------------------------------------------

Step = tuple[str, dict[str, Any], list[Any]]  # (name suffix, entry, inputs: "in<i>" or a step index)


def _layer(cls: str, **config: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": cls,
            "config": {"name": None, "trainable": True, "dtype": "float32", **config}, "registered_name": None}


def _hard_steps(kind: str) -> list[Step]:
    steps: list[Step] = [("hard_add3", _layer("Rescaling", scale=1.0, offset=3.0), ["in0"]),
                         ("hard_relu6", _layer("ReLU", max_value=6.0, negative_slope=0.0, threshold=0.0), [0]),
                         ("hard_div6", _layer("Rescaling", scale=1.0 / 6.0, offset=0.0), [1])]
    if kind != "hard_sigmoid":
        steps.append(("hard_mul", _layer("Multiply"), ["in0", 2]))
    return steps


def _custom_scale_steps(scale: float) -> list[Step]:
    return [("scaled", _layer("Rescaling", scale=scale, offset=0.0), ["in1"]), ("add", _layer("Add"), ["in0", 0])]


def _expand(steps: list[Step], base: str, calls: list[list[Ref]], names: set[str], final: str) -> list[dict[str, Any]]:
    """The steps' layers, each called once per call of the expanded layer (so node k of the last
    step is node k of the layer it replaces); `calls[k]` are that call's input references."""
    step_names = [final if i == len(steps) - 1 else _unique(f"{base}_{suffix}", names)
                  for i, (suffix, _, _) in enumerate(steps)]
    out = []
    for i, (_, entry, inputs) in enumerate(steps):
        nodes = []
        for k, ins in enumerate(calls):
            rs = [ins[int(x[2:])] if isinstance(x, str) else [step_names[x], k, 0] for x in inputs]
            nodes.append([[*r, {}] for r in rs])
        config = {**entry["config"], "name": step_names[i]}
        out.append({**entry, "config": config, "name": step_names[i], "inbound_nodes": nodes})
    return out


def _unique(name: str, names: set[str]) -> str:
    candidate, i = name, 1
    while candidate in names:
        candidate, i = f"{name}_{i}", i + 1
    names.add(candidate)
    return candidate


# --- tf_keras's layer order ------------------------------------------------------------------


def tf_keras_order(entries: list[dict[str, Any]], outputs: Any, inputs: Any) -> list[dict[str, Any]]:
    """`entries` in the order tf_keras's `_map_graph_network` lists the layers of the model
    they build (tf_keras/src/engine/functional.py), iteratively (deep models would exhaust
    Python's recursion)."""
    by_name = {e["name"]: e for e in entries}

    def parents(node: tuple[str, int]) -> list[tuple[str, int]]:
        entry = by_name[node[0]]
        if entry["class_name"] == "InputLayer":
            return []
        skipped = 1 if is_model(entry) and _skips_first_node(entry) else 0  # its own node 0
        return [(r[0], r[1]) for r in _node_inputs(entry["inbound_nodes"][node[1] - skipped])]

    finished: set[tuple[str, int]] = set()
    in_order: list[tuple[str, int]] = []
    index: dict[str, int] = {}
    for out in _flat_refs(outputs):
        start = (out[0], out[1])
        if start in finished:
            continue
        index.setdefault(start[0], len(index))
        stack = [(start, iter(parents(start)))]
        while stack:
            node, todo = stack[-1]
            for p in todo:
                if p not in finished and all(p != s[0] for s in stack):
                    index.setdefault(p[0], len(index))
                    stack.append((p, iter(parents(p))))
                    break
            else:
                stack.pop()
                finished.add(node)
                in_order.append(node)
    node_depth: dict[tuple[str, int], int] = {}
    layer_depth: dict[str, int] = {}
    for node in reversed(in_order):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node[0], 0))
        layer_depth[node[0]] = node_depth[node] = depth
        for p in parents(node):
            node_depth[p] = max(depth + 1, node_depth.get(p, 0))
    for r in _flat_refs(inputs):
        if r[0] not in layer_depth:
            layer_depth[r[0]], index[r[0]] = 0, -1
    ordered = sorted(layer_depth, key=lambda n: (-layer_depth[n], index[n]))
    return [by_name[n] for n in ordered]


def _node_inputs(node: Any) -> list[Ref]:
    """A tf_keras node's Keras inputs, in Node.keras_inputs order: the first argument's
    tensors, then tensors in the keyword arguments (sorted by key, as tf.nest flattens)."""
    entries = [node] if _is_ref(node) else list(_entries(node))
    found = [e[:3] for e in entries]
    kwargs = entries[-1][3] if entries and len(entries[-1]) > 3 else {}
    found += list(_flat_refs(kwargs))
    return found


def _entries(node: Any) -> Iterator[list]:
    if _is_ref(node):
        yield node
    elif isinstance(node, list):
        for x in node:
            yield from _entries(x)
    elif isinstance(node, dict):
        for k in sorted(node):
            yield from _entries(node[k])


def _flat_refs(v: Any) -> Iterator[Ref]:
    if _is_ref(v) and len(v) == 3:
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from _flat_refs(x)
    elif isinstance(v, dict):
        for k in sorted(v):
            yield from _flat_refs(v[k])
