"""Annotate only the float part of a model with integer inputs (`--mode qat`, tf_keras).

tfmot's `quantize_model` annotates every layer, and `quantize_apply` then puts a QuantizeLayer
(FakeQuantWithMinMaxVars) on every model input that feeds an annotated layer; on an integer
input (token ids into an Embedding) that op raises `Input 'inputs' of 'FakeQuantWithMinMaxVars'
Op has type int32 that does not match expected type of argument 'min'`. Fake quantization is
for float tensors: the integer part stays out.

The plan (pure Python, no TensorFlow): walking the graph in order, a layer belongs to the
*integer part* when it reads an integer tensor (Embedding, CategoryEncoding, a Cast of ids to
float) or makes one (a Cast to int); every other layer is the *float part*. The float part is
written as tfmot's own `QuantizeAnnotate` wrappers (`quantize_annotate_layer(layer)` with no
config: `quantize_apply` then takes the default registry's config, and raises on a layer it
does not support, as `quantize_model` would), so the model only needs `quantize_apply`; a layer
already annotated with one of qfix's QuantizeConfigs (QF502/QF504) keeps its annotation. As
`quantize_model` does, a Lambda is left unannotated (tfmot skips it, float). `quantize_apply`
adds no QuantizeLayer on an input none of whose readers is annotated, so the integer inputs
stay integer; the converter then keeps them int32 under `inference_input_type=uint8` (checked:
only float inputs and outputs take the integer I/O type).

A layer that reads integers and makes floats (an Embedding's vectors, a Cast of the ids) gets no
quantizer from tfmot: its registry does not support Embedding, and annotating it would put a
QuantizeLayer on the integer input. Left so, its GATHER and every op up to the next quantizer
convert to float (checked, TF 2.21). qfix puts a boundary after it: an identity
`Activation("linear")` named `<layer>_quantize`, annotated with qfix's OutputQuantizeConfig, whose
fake-quant gives that float tensor its range; the converter then makes GATHER, MEAN... int8.
The identity changes no float value.

A `hub.KerasLayer` still in the model (its SavedModel was not saved from Keras, so QF507 could
not inline it) is kept float the same way: `quantize_model` would wrap it in `QuantizeAnnotate`,
which refuses it ("Layer KerasLayer supplied to wrapper is not a supported layer type", then
"Unable to clone model"); left unannotated, `quantize_apply` clones it as it is and annotates
the rest (checked, TF 2.21 / tfmot 0.8: the model trains). So is a layer whose class tfmot's
registry has no route for and qfix's table says to keep float (`tfmot_registry.kept_float`:
MultiHeadAttention): the rest of the model is annotated and trained, the layer's ops stay float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qfix.model.edit import ModelEdit, make_layer
from qfix.model.graph import Graph, Layer, build_graph, is_float, is_integer, tensor_dtype
from qfix.model.hub import is_hub_layer
from qfix.model.rewrites.annotate_quantize import annotation, wrap
from qfix.model.tfmot_registry import OUTPUT_CONFIG, kept_float

# tfmot's quantize_model leaves a Lambda unannotated (quantize.py `_add_quant_wrapper`).
NOT_ANNOTATED = frozenset({"Lambda"})
INTEGER_IN = "integer indices in: not quantized"
INTEGER_OUT = "integer tensor out: not quantized"
BOUNDARY = "_quantize"  # suffix of the identity layer that quantizes an integer-in layer's float output


@dataclass
class FloatPartPlan:
    """Which layers of a model with integer inputs tfmot quantizes. `integer`: layer name →
    why it stays out (INTEGER_IN / INTEGER_OUT); `annotate`: float-part layers to wrap in
    `QuantizeAnnotate` (no config); `annotated`: float-part layers annotated already."""

    integer_inputs: list[str] = field(default_factory=list)
    integer: dict[str, str] = field(default_factory=dict)
    annotate: list[str] = field(default_factory=list)
    annotated: list[str] = field(default_factory=list)
    boundaries: list[str] = field(default_factory=list)  # integer-in layers with a float output
    kept_float: list[str] = field(default_factory=list)  # hub layers, MultiHeadAttention: left float (not annotated)

    @property
    def applies(self) -> bool:
        """The model has an integer input (quantize_model would fake-quantize it) or a layer
        kept float, a hub layer or a MultiHeadAttention (quantize_model would try to wrap it)."""
        return bool(self.integer_inputs or self.kept_float)


def plan(graph: Graph) -> FloatPartPlan:
    """The float part of `graph` (its top-level model; nested models are flattened by QF201
    before `--mode qat` plans). Empty (`applies` False) when no model input is integer and no
    hub layer or layer of a class kept float (`kept_float`) is left."""
    out = FloatPartPlan(integer_inputs=[l.name for l in graph.input_layers() if is_integer(l.out_dtype)],
                        kept_float=[l.name for l in graph if is_hub_layer(l)
                                    or (kept_float(l.class_name) and l.quantize_config is None)])
    if not out.applies:
        return out
    for layer in graph:
        if layer.is_input or layer.name in out.kept_float:
            continue
        why = _integer_part(graph, layer)
        if why:
            out.integer[layer.name] = why
            bounded = any(c.name == f"{layer.name}{BOUNDARY}" for c in graph.consumers(layer.name))
            if why == INTEGER_IN and is_float(layer.out_dtype) and not bounded:
                out.boundaries.append(layer.name)
        elif layer.quantize_config is not None:
            out.annotated.append(layer.name)
        elif layer.class_name not in NOT_ANNOTATED and layer.subgraph is None:
            out.annotate.append(layer.name)
    return out


def _integer_part(graph: Graph, layer: Layer) -> str | None:
    if any(is_integer(tensor_dtype(graph, ref)) for call in layer.calls for ref in call):
        return INTEGER_IN
    if is_integer(layer.out_dtype):
        return INTEGER_OUT
    return None


def annotate_float_part(config: dict[str, Any], weights: bytes) -> tuple[dict[str, Any], bytes, FloatPartPlan]:
    """The tf_keras `config` and `model.weights.h5` with the float part annotated (the inputs
    are not modified), and the plan. Unchanged when the plan does not apply. Raises EditError
    when the weights do not match the config."""
    p = plan(build_graph(config, "tf_keras"))
    if not p.annotate and not p.boundaries:
        return config, weights, p
    edit = ModelEdit(config, "tf_keras")
    layers = edit.model(())["config"]["layers"]
    for name in p.annotate:
        raw = edit.layer(name)
        wrapper = annotation(raw, "")
        wrapper["config"]["quantize_config"] = None  # tfmot's default: the registry's config
        layers[layers.index(raw)] = wrapper
    for name in p.boundaries:
        identity = make_layer("Activation", {"activation": "linear"}, "tf_keras", f"{name}{BOUNDARY}")
        new = edit.take_output_name(edit.insert_after((name, 0, 0), identity), name)
        wrap(edit, (), new, OUTPUT_CONFIG)
        p.annotated.append(new)
    return edit.config, edit.weights(weights), p
