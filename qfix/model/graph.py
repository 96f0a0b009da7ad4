"""The functional graph of a `.keras` config, for both dialects. Pure Python, no TensorFlow.

Built on the format readers of qfix.model.config. Keras 3 records the shape and dtype of every
tensor reference; tf_keras records none, so we infer those by propagation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from qfix.errors import error
from qfix.model.config import (MODEL_CLASSES, MalformedConfig, activation_name, first_node, input_shape, io_refs, is_model,
                               node_kwargs, node_refs, op_function, policy_name, sequential_input)

# Layers whose output dtype is their input's: Keras only autocasts floating inputs.
PASSTHROUGH = {
    "Reshape", "Flatten", "Permute", "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D",
    "ZeroPadding2D", "ZeroPadding3D", "RepeatVector", "Identity", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "MaxPooling2D", "MaxPool2D", "UpSampling2D",
    "Masking", "ActivityRegularization",
}
# Layers that only move, copy or pad (with 0) the values of their input: an integer tensor
# through them keeps its values exactly (Concatenate when all its inputs do; UpSampling only
# "nearest"). What QF102 follows from an integer input to the cast after it.
VALUE_PRESERVING = {
    "Concatenate", "Reshape", "Flatten", "Permute", "Cropping1D", "Cropping2D", "Cropping3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "RepeatVector", "Identity", "UpSampling1D",
    "UpSampling2D", "UpSampling3D",
}
# Integer dtypes every value of which float32 holds exactly (|x| < 2**24).
EXACT_IN_FLOAT32 = {"uint8", "int8", "uint16", "int16", "bool"}
INTEGER = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "bool"}


@dataclass(frozen=True)
class TensorRef:
    layer: str
    node: int
    index: int
    shape: tuple[int | None, ...] | None = None
    dtype: str | None = None


@dataclass
class Layer:
    name: str
    class_name: str
    module: str
    registered_name: str | None
    config: dict[str, Any]
    pointer: str  # JSON pointer into config.json
    calls: list[list[TensorRef]] = field(default_factory=list)  # one entry per call node
    call_kwargs: list[dict[str, Any]] = field(default_factory=list)
    subgraph: "Graph | None" = None  # nested Functional / Sequential
    raw: dict[str, Any] = field(default_factory=dict)
    out_dtype: str | None = None
    out_shape: tuple[int | None, ...] | None = None
    quantize_config: str | None = None  # the QuantizeConfig of a tfmot QuantizeAnnotate wrapping it

    @property
    def inputs(self) -> list[TensorRef]:
        return self.calls[0] if self.calls else []

    @property
    def is_input(self) -> bool:
        return self.class_name == "InputLayer"

    @property
    def is_op(self) -> bool:
        """A keras.ops call stored as a node (Keras 3) or a tf.* call layer (tf_keras)."""
        return self.module.startswith("keras.src.ops") or self.class_name in {
            "TFOpLambda", "SlicingOpLambda", "TensorFlowOpLayer",
        }

    @property
    def is_cast(self) -> bool:
        """`keras.ops.cast` (Keras 3 op node `Cast`) or `tf.cast` (tf_keras TFOpLambda)."""
        return self.op_function in ("cast", "Cast")

    @property
    def is_model(self) -> bool:
        return self.subgraph is not None

    @property
    def op_function(self) -> str | None:
        """`cast` for a tf_keras TFOpLambda of tf.cast, `Cast` for a Keras 3 op node."""
        return op_function({"class_name": self.class_name, "module": self.module, "config": self.config})

    @property
    def dtype_policy(self) -> str | None:
        return policy_name(self.config.get("dtype"))

    def activations(self) -> list[str]:
        """Activation names this layer applies (config `activation` or an Activation layer)."""
        act = activation_name({"config": self.config})
        return [act] if act not in ("linear", None) else []


@dataclass
class Graph:
    name: str
    class_name: str
    dialect: str
    layers: dict[str, Layer]
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    pointer: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers.values())

    def models(self) -> Iterator[tuple[tuple[str, ...], "Graph"]]:
        """This model and every nested one, each with its scope (the model names above and
        including it; () for this one): what ModelEdit takes as `scope`."""
        yield (), self
        for path, layer in self.walk():
            if layer.subgraph is not None:
                yield (*path, layer.name), layer.subgraph

    def walk(self) -> Iterator[tuple[tuple[str, ...], Layer]]:
        """Every layer, nested models included, with the path of model names above it."""
        for layer in self:
            yield (), layer
            if layer.subgraph is not None:
                for path, inner in layer.subgraph.walk():
                    yield (layer.name, *path), inner

    def consumers(self, name: str) -> list[Layer]:
        return [l for l in self if any(t.layer == name for call in l.calls for t in call)]

    def input_layers(self) -> list[Layer]:
        return [self.layers[t.layer] for t in self.inputs if t.layer in self.layers]


def _parse_calls(raw: dict[str, Any]) -> tuple[list[list[TensorRef]], list[dict[str, Any]]]:
    nodes = raw.get("inbound_nodes") or []
    if not isinstance(nodes, list):
        raise error("QF904", f"config.json: layer {raw.get('name')!r} has malformed inbound_nodes")
    calls, kwargs = [], []
    for node in nodes:
        try:
            refs = [TensorRef(*r.tensor, r.shape, r.dtype) for r in node_refs(node, keras_order=False)]
        except MalformedConfig as exc:
            raise error("QF904", f"config.json: layer {raw.get('name')!r} has {exc}") from None
        calls.append(refs)
        kwargs.append(node_kwargs(node))
    return calls, kwargs


def _history(v: Any, keras_order: bool = False) -> list[TensorRef]:
    """`input_layers`/`output_layers` as tensor references (`keras_order`: see io_refs)."""
    return [TensorRef(*r.tensor) for r in io_refs(v, keras_order)]


def _make_layer(raw: Any, pointer: str, dialect: str) -> Layer:
    if not isinstance(raw, dict) or not isinstance(raw.get("class_name"), str):
        raise error("QF904", f"config.json: entry at {pointer} is not a layer object")
    cfg = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    name = raw.get("name") or cfg.get("name")
    if not isinstance(name, str):
        raise error("QF904", f"config.json: layer at {pointer} has no name")
    calls, kwargs = _parse_calls(raw)
    inner, qconfig = _unwrap_annotation(raw, cfg)
    layer = Layer(
        name=name,
        class_name=inner["class_name"],
        module=str(inner.get("module") or ""),
        registered_name=inner.get("registered_name"),
        config=inner["config"],
        pointer=pointer,
        calls=calls,
        call_kwargs=kwargs,
        raw=raw,
        quantize_config=qconfig,
    )
    if is_model(raw):
        layer.subgraph = _build(raw, dialect, pointer)
    if layer.is_input:
        layer.out_shape = input_shape(cfg)
        layer.out_dtype = cfg.get("dtype") if isinstance(cfg.get("dtype"), str) else "float32"
    return layer


def _unwrap_annotation(raw: dict[str, Any], cfg: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A layer wrapped in tfmot's `QuantizeAnnotate` is, for the graph, the layer it wraps
    (class, module, config; the wrapper's name and calls), annotated with the class name of its
    QuantizeConfig (`qfix>OutputQuantizeConfig` → `OutputQuantizeConfig`)."""
    inner = cfg.get("layer")
    if raw["class_name"] != "QuantizeAnnotate" or not isinstance(inner, dict) or \
            not isinstance(inner.get("class_name"), str):
        return {**raw, "config": cfg}, None
    qc = cfg.get("quantize_config")
    qname = qc.get("class_name") if isinstance(qc, dict) else None
    qname = str(qname).rpartition(">")[2] if qname else "QuantizeConfig"
    inner_cfg = inner.get("config") if isinstance(inner.get("config"), dict) else {}
    return {**inner, "config": {**inner_cfg, "name": cfg.get("name", inner_cfg.get("name"))}}, qname


def _build(obj: dict[str, Any], dialect: str, pointer: str) -> Graph:
    cfg = obj.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise error("QF904", f"config.json: {pointer or 'top level'} has no layer list")
    class_name = str(obj.get("class_name"))
    layers: dict[str, Layer] = {}
    for i, raw in enumerate(cfg["layers"]):
        layer = _make_layer(raw, f"{pointer}/config/layers/{i}", dialect)
        if layer.name in layers:
            raise error("QF904", f"config.json: two layers are named {layer.name!r}")
        layers[layer.name] = layer
    if class_name == "Sequential":
        inputs, outputs = _chain_sequential(layers, cfg)
    else:
        inputs, outputs = _history(cfg.get("input_layers")), _history(cfg.get("output_layers"), keras_order=True)
        for ref in inputs + outputs:
            if ref.layer not in layers:
                raise error("QF904", f"config.json: model input/output {ref.layer!r} is not a layer")
        _check_references(layers, dialect)
    graph = Graph(str(cfg.get("name", "model")), class_name, dialect, layers, inputs, outputs, pointer, cfg)
    _infer(graph)
    return graph


def _check_references(layers: dict[str, Layer], dialect: str) -> None:
    """Every call reads an existing layer's existing call, and the calls form no cycle: Keras
    rebuilds a functional model by looping until every node can be created, so a dangling node
    index or a cycle makes it fail late or loop forever (tf_keras). Iterative (Kahn's algorithm):
    a 20,000-layer chain is fine."""
    for layer in layers.values():
        for call in layer.calls:
            for ref in call:
                src = layers.get(ref.layer)
                if src is None:
                    raise error("QF904", f"config.json: layer {layer.name!r} reads unknown layer {ref.layer!r}")
                if not src.is_input and ref.node - first_node(src.raw, dialect) >= max(1, len(src.calls)):
                    raise error("QF904", f"config.json: layer {layer.name!r} reads call {ref.node} of "
                                         f"{ref.layer!r}, which is called {len(src.calls)} time(s)")
    readers: dict[str, list[str]] = {name: [] for name in layers}
    pending = {name: 0 for name in layers}
    for layer in layers.values():
        for src in {ref.layer for call in layer.calls for ref in call}:
            readers[src].append(layer.name)
            pending[layer.name] += 1
    ready = [name for name, n in pending.items() if n == 0]
    done = 0
    while ready:
        done += 1
        for reader in readers[ready.pop()]:
            pending[reader] -= 1
            if pending[reader] == 0:
                ready.append(reader)
    if done < len(layers):
        stuck = sorted(name for name, n in pending.items() if n > 0)
        raise error("QF904", f"config.json: the layers form a cycle (layers in or after it: "
                             f"{', '.join(map(repr, stuck[:5]))}{', ...' if len(stuck) > 5 else ''})")


def _chain_sequential(layers: dict[str, Layer], cfg: dict[str, Any]) -> tuple[list[TensorRef], list[TensorRef]]:
    """A Sequential is a chain; give each layer its predecessor as input."""
    order = list(layers.values())
    if order and not order[0].is_input:
        name, shape, dtype = sequential_input(cfg)
        inp = Layer(name, "InputLayer", "keras.layers", None,
                    {"batch_shape": list(shape) if shape else None, "dtype": dtype}, "", out_shape=shape,
                    out_dtype=dtype)
        layers_new = {inp.name: inp, **layers}
        layers.clear()
        layers.update(layers_new)
        order = list(layers.values())
    for prev, cur in zip(order, order[1:]):
        cur.calls = [[TensorRef(prev.name, 0, 0)]]
        cur.call_kwargs = [{}]
    if not order:  # a Sequential without layers: no inputs, no outputs
        return [], []
    return [TensorRef(order[0].name, 0, 0)], [TensorRef(order[-1].name, 0, 0)]


def _infer(graph: Graph) -> None:
    """Fill out_dtype/out_shape where the file does not say (tf_keras, Sequential)."""
    # Keras 3: the consumer records the dtype/shape of every tensor it reads.
    for layer in graph:
        for call in layer.calls:
            for ref in call:
                src = graph.layers.get(ref.layer)
                if src is not None and ref.index == 0 and ref.dtype and src.out_dtype is None:
                    src.out_dtype = ref.dtype
                    src.out_shape = ref.shape
    # Propagate in config order (a valid functional config is topologically ordered).
    for layer in graph:
        if layer.out_dtype is not None:
            continue
        in_dtypes = [graph.layers[r.layer].out_dtype for r in layer.inputs if r.layer in graph.layers]
        if layer.is_cast:
            kw = layer.call_kwargs[0] if layer.call_kwargs else {}
            layer.out_dtype = kw.get("dtype") or layer.config.get("dtype")
        elif layer.class_name in PASSTHROUGH and in_dtypes:
            layer.out_dtype = in_dtypes[0]
        elif layer.subgraph is not None and layer.subgraph.outputs:
            out = layer.subgraph.layers.get(layer.subgraph.outputs[0].layer)
            layer.out_dtype = out.out_dtype if out else None
        else:
            layer.out_dtype = layer.dtype_policy or (in_dtypes[0] if in_dtypes else None)


def build_graph(config: dict[str, Any], dialect: str) -> Graph:
    """Graph of a `.keras` config.json (Functional or Sequential at the top)."""
    cls = config.get("class_name")
    if not isinstance(cls, str) or cls not in MODEL_CLASSES:
        if isinstance(cls, str):
            raise error(
                "QF906",
                f"the top-level model is a {cls!r} (a subclassed model); qfix needs a Functional or "
                "Sequential model (rebuild it with the functional API)",
            )
        raise error("QF904", "config.json has no model class_name")
    try:
        return _build(config, dialect, "")
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise error("QF904", f"config.json has an unexpected structure: {type(exc).__name__}: {exc}") from None


def tensor_dtype(graph: Graph, ref: TensorRef) -> str | None:
    if ref.dtype:
        return ref.dtype
    src = graph.layers.get(ref.layer)
    return src.out_dtype if src else None


def is_integer(dtype: str | None) -> bool:
    return dtype in INTEGER


def is_float(dtype: str | None) -> bool:
    return bool(dtype) and dtype.startswith(("float", "bfloat", "mixed"))


def preserves_values(layer: Layer) -> bool:
    """`layer` (called once) hands on the exact values it reads: see VALUE_PRESERVING."""
    if layer.class_name not in VALUE_PRESERVING or len(layer.calls) != 1 or layer.subgraph is not None:
        return False
    if layer.class_name == "UpSampling2D":
        return layer.config.get("interpolation", "nearest") == "nearest"
    return True


def integer_sources(graph: Graph, layer: Layer, through: Callable[[Layer], bool] = preserves_values) -> list[Layer] | None:
    """The integer model inputs (exact in float32) whose values `layer` reads unchanged, through
    value-preserving layers (a Concatenate of two uint8 frames; `through` says which layers
    count); None when any tensor it reads is something else (a float tensor, a computed one,
    a nested model's)."""
    found: dict[str, Layer] = {}

    def visit(refs: list[TensorRef], depth: int) -> bool:
        if not refs or depth > 64:
            return False
        for ref in refs:
            src = graph.layers.get(ref.layer)
            if src is None or ref.index != 0:
                return False
            if src.is_input:
                if src.out_dtype not in EXACT_IN_FLOAT32:
                    return False
                found[src.name] = src
            elif not (through(src) and ref.node == 0 and visit(src.inputs, depth + 1)):
                return False
        return True

    return list(found.values()) if visit(layer.inputs, 0) else None


def integer_closure(graph: Graph, inp: Layer,
                    through: Callable[[Layer], bool] = preserves_values) -> tuple[list[Layer], list[Layer]]:
    """From the integer input `inp`: the value-preserving layers its values flow through (each
    reading only such integer inputs; `through` says which layers count), and the other layers
    that read those values."""
    path: dict[str, Layer] = {}
    readers: dict[str, Layer] = {}
    todo = [inp.name]
    while todo:
        for user in graph.consumers(todo.pop()):
            if user.name in path or user.name in readers:
                continue
            if through(user) and integer_sources(graph, user, through) is not None:
                path[user.name] = user
                todo.append(user.name)
            else:
                readers[user.name] = user
    return list(path.values()), list(readers.values())
