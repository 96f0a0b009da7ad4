"""The child side of `--mode qat`: tfmot's `quantize_model` on the (rewritten) tf_keras model,
one training step, and the QAT model's conversion to an integer `.tflite`.

Runs only in the worker's child (qfix.convert.worker `qat_trial`), whose TensorFlow was
imported with TF_USE_LEGACY_KERAS=1 (tfmot works with tf_keras only). The verdict of the job
comes from this run: a model tfmot refuses is reported with tfmot's own message and the layer
it names, never guessed from static rules.

Conversion of a QAT model (errors.md C1/C8): `optimizations=[DEFAULT]` and integer I/O, with
no representative dataset and no `supported_ops=[TFLITE_BUILTINS_INT8]`: on TF 2.21 that op
set makes the converter demand a dataset even for a QAT model. The batch is fixed to the
recipe's only in the exported signature (qfix.convert.converter), never in the written model.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qfix.convert.calibration import Calibration
from qfix.convert.worker import mark
from qfix.targets import Recipe

# Adam's default step: one step moves every trainable weight, which is what the trial proves.
LEARNING_RATE = 1e-3
TRAIN_SAMPLES = 16  # one batch of calibration samples: enough to prove the step, cheap on CPU
# Layers tfmot's default 8-bit registry wraps with no quantizer because they do no arithmetic:
# they carry the int8 tensor they receive (default_8bit_quantize_registry.py, `_no_quantize`).
PASS_THROUGH = frozenset({
    "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding2D", "ActivityRegularization",
    "Dropout", "Flatten", "Permute", "Reshape", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling2D",
})
_LAYER_NAMED = (
    re.compile(r"Layer (?P<layer>[^\s:]+):<class"),  # B8, B10-B12: "Layer rescaling:<class ...> is not supported"
    re.compile(r"variable '\s*(?P<layer>[^/']+)/"),  # B7 on 2.21: "Cannot assign value to variable ' conv2d_3/kernel:0'"
    re.compile(r'calling layer "(?P<layer>[^"]+)"'),  # B6: 'Exception encountered when calling layer "tf.math.add"'
    # A shape tfmot's clone lost (a float→float tf.cast, issue 10): 'Input 0 of layer "gap" is incompatible'
    re.compile(r'Input \d+ of layer "(?P<layer>[^"]+)" is incompatible'),
    re.compile(r"Cannot deserialize object of type `(?P<cls>\w+)`"),  # B4: an unregistered custom class
)
_RAISED = re.compile(r"\b\w+(?:Error|Exception): .+")


@dataclass
class LayerQuant:
    """What tfmot made of one layer of the float model.

    state: "quantized" (its QuantizeConfig quantizes weights and/or activations/outputs),
    "pass-through" (wrapped without quantizers: a layer with no arithmetic that carries the
    int8 tensor it receives), "float" (not annotated, or a config that quantizes nothing; a
    layer reading integer indices such as an Embedding), "integer" (its output is an integer
    tensor: not quantized), or "transformed" (tfmot's graph transforms replaced it; its
    successors are listed instead).
    """

    name: str
    class_name: str
    state: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class TrainStep:
    """One Adam step (lr LEARNING_RATE) of the QAT model on `samples` calibration samples, the
    loss being the mean squared error to the float model's own outputs (no labels needed).
    Both losses are measured in inference mode, before and after the step."""

    samples: int
    synthetic: bool
    loss_before: float
    loss_after: float
    weights_changed: bool
    seconds: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss_before) and math.isfinite(self.loss_after)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k in ("loss_before", "loss_after"):
            out[k] = out[k] if math.isfinite(out[k]) else str(out[k])
        out["seconds"] = round(out["seconds"], 3)
        return out


@dataclass
class QatTrial:
    """The result of `trial` (picklable). `refused`: tfmot's error (class and first meaningful
    line) when `quantize_model` raised, `refused_layer` the layer (or class) it names. On
    success: `layers`, `step`, and either `tflite` (the converted QAT model, bytes) or
    `conversion_error`. `custom_weights`: the weights of the user's own layers, by the names the
loaded layers hold them under (for QF510's template). `qat_model` is the child's handle of the QAT model (for the fidelity
    check against its own `.tflite`)."""

    refused: str | None = None
    refused_layer: str | None = None
    refused_class: str | None = None
    layers: list[LayerQuant] = field(default_factory=list)
    step: TrainStep | None = None
    tflite: bytes | None = None
    conversion_error: str | None = None
    qat_model: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    custom_weights: dict[str, list] = field(default_factory=dict)  # qat_configs.custom_layer_weights
    method: str = "quantize_model"  # or "quantize_apply": qfix annotated the float part (integer inputs, a hub layer)


def integer_inputs(model: Any) -> list[str]:
    """The names of `model`'s integer inputs (token ids, category indices)."""
    return [t.name for t in model.inputs if t.dtype.is_integer or t.dtype.is_bool]


def annotated_by_qfix(model: Any) -> bool:
    """qfix annotated the float part (qfix.model.rewrites.annotate_float_part): the model has
    integer inputs, or a hub.KerasLayer or a layer of a class qfix keeps float
    (MultiHeadAttention). Such a model takes quantize_apply."""
    return bool(integer_inputs(model) or hub_classes(model) or kept_float_layers(model))


def kept_float_layers(model: Any) -> list[str]:
    """The top-level layers of `model` whose class qfix's table keeps float, unannotated."""
    from qfix.model.tfmot_registry import kept_float

    return [l.name for l in model.layers if kept_float(type(l).__name__)]


def hub_classes(model: Any) -> dict[str, Any]:
    """The hub.KerasLayer classes in `model` by class name: qfix loads hub layers as its own
    subclass (qfix.convert.hub), which quantize_apply's clone must find in the scope."""
    from qfix.model.hub import HUB_MODULE_PREFIX

    return {type(l).__name__: type(l) for l in model.layers
            if any(c.__module__.startswith(HUB_MODULE_PREFIX) for c in type(l).__mro__)}


def quantize_scope_objects(custom_objects_module: str | None) -> dict[str, Any]:
    """What the quantize scope needs: qfix's QuantizeConfigs (qfix.convert.qat_configs) and the
    Keras layer classes of the user's --custom-objects module, by class name."""
    from qfix.convert.qat_configs import custom_objects

    return custom_objects(custom_objects_module)  # the module is imported already by the loader


def load_in_scope(path: str, custom_objects_module: str | None, trust_lambdas: bool) -> Any:
    """Load a tf_keras `.keras` file inside the quantize scope (a file annotated with qfix's
    QuantizeConfigs names them); vetted and code-free like every load (qfix.convert.keras)."""
    import tensorflow_model_optimization as tfmot

    from qfix.convert.keras import import_custom_objects, load_model

    if custom_objects_module:
        import_custom_objects(custom_objects_module)
    with tfmot.quantization.keras.quantize_scope(quantize_scope_objects(custom_objects_module)):
        return load_model(path, "tf_keras", custom_objects_module, trust_lambdas)


def trial(model: Any, recipe: Recipe, calib: Calibration, custom_objects_module: str | None) -> tuple[QatTrial, Any]:
    """quantize_model (quantize_apply for a model with integer inputs, whose float part qfix
    annotated) → per-layer report → one training step → QAT conversion. Returns the trial and
    the QAT model (None when tfmot refused the model)."""
    import tensorflow_model_optimization as tfmot

    from qfix.convert.keras import captured_output

    from qfix.convert.qat_configs import custom_layer_weights

    out = QatTrial(custom_weights=custom_layer_weights(model),
                   method="quantize_apply" if annotated_by_qfix(model) else "quantize_model")
    mark(f"quantizing the model with tfmot ({out.method})")
    t0 = time.perf_counter()
    try:
        scope = {**quantize_scope_objects(custom_objects_module), **hub_classes(model)}
        with captured_output(), tfmot.quantization.keras.quantize_scope(scope):
            # A model with integer inputs or a float hub layer carries qfix's plan
            # (annotate_float_part): its float part is annotated, and quantize_model would
            # fake-quantize the integer inputs or wrap the hub layer.
            qat = getattr(tfmot.quantization.keras, out.method)(model)
    except Exception as e:  # tfmot's refusal is the finding, not a failure of qfix
        out.refused = tfmot_message(e)
        out.refused_layer, out.refused_class = named_layer(str(e))
        out.seconds["quantize"] = time.perf_counter() - t0
        return out, None
    out.seconds["quantize"] = time.perf_counter() - t0
    out.layers = layer_report(model, qat)
    mark("training the QAT model one step")
    out.step = train_step(model, qat, calib)
    mark("converting the QAT model")
    t1 = time.perf_counter()
    try:
        out.tflite = convert_qat(qat, recipe, output_names_of(model))
    except Exception as e:  # noqa: BLE001  reported beside the trial, as a failed conversion
        from qfix.errors import QfixError

        out.conversion_error = e.message if isinstance(e, QfixError) else tfmot_message(e)
    out.seconds["convert"] = time.perf_counter() - t1
    return out, qat


def tfmot_message(e: BaseException) -> str:
    """`ExceptionClass: first meaningful line` of tfmot's error. Keras wraps an error raised
    inside a layer in `Exception encountered when calling layer "x" ...` paragraphs: the
    innermost `SomeError: ...` line, which says what went wrong, is appended."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    first = next((ln for ln in lines if not ln.startswith(("Traceback", "File ", "Call arguments"))), "")
    text = f"{type(e).__name__}: {first}"
    if first.startswith("Exception encountered when calling layer"):
        inner = [m.group(0) for ln in lines if (m := _RAISED.search(ln))]
        if inner:
            text = f"{text} {inner[-1]}"
    return text[:500]


def named_layer(message: str) -> tuple[str | None, str | None]:
    """(layer name, class name) tfmot's message names (errors.md B4, B6-B12), or Nones."""
    for pattern in _LAYER_NAMED:
        m = pattern.search(message)
        if m:
            groups = m.groupdict()
            return groups.get("layer"), groups.get("cls")
    return None, None


def layer_report(model: Any, qat: Any) -> list[LayerQuant]:
    """Each layer of the float model (InputLayers aside) as tfmot left it in `qat`."""
    from qfix.model.tfmot_registry import entry, kept_float

    wrappers, plain = {}, set()
    for layer in qat.layers:
        inner = getattr(layer, "layer", None)
        if getattr(layer, "quantize_config", None) is not None and inner is not None:
            wrappers[inner.name] = layer
        else:
            plain.add(layer.name)
    out = []
    for layer in model.layers:
        if type(layer).__name__ == "QuantizeAnnotate":  # an annotated layer: report its own class
            layer = layer.layer
        cls = type(layer).__name__
        if cls == "InputLayer":
            continue
        w = wrappers.get(layer.name)
        if w is None and (integer := _integer_part(layer, wrappers)) is not None:
            out.append(LayerQuant(layer.name, cls, *integer))
            continue
        if w is None:
            if layer.name in plain and kept_float(cls):
                out.append(LayerQuant(layer.name, cls, "float", f"left float by qfix (not annotated): {entry(cls).why}"))
            elif layer.name in plain:
                out.append(LayerQuant(layer.name, cls, "float", "tfmot did not annotate it: it runs in float"))
            else:
                out.append(LayerQuant(layer.name, cls, "transformed", "tfmot's graph transforms replaced it"))
            continue
        parts = _quantizers(w)
        if parts:
            detail = ", ".join(parts)
            if "weights" not in parts and layer.trainable_weights:  # e.g. QF510's output-only annotation
                names = ", ".join(v.name.split(":")[0].rpartition("/")[2] for v in layer.trainable_weights)
                detail += f"; its weights ({names}) stay float in training (the converter quantizes them after it)"
            out.append(LayerQuant(layer.name, cls, "quantized", detail))
        elif cls in PASS_THROUGH:
            out.append(LayerQuant(layer.name, cls, "pass-through", "no arithmetic: carries the int8 tensor it receives"))
        elif (into := _fused_into(w)) is not None:
            # tfmot's LayerReLUQuantize: Conv/Dense/Add before a ReLU get a NoOp config so that
            # no fake-quant sits between them; the converter fuses the pair into one int8 op.
            out.append(LayerQuant(layer.name, cls, "quantized",
                                  f"fused with {into!r}, which quantizes the output (int8 after conversion)"))
        else:
            out.append(LayerQuant(layer.name, cls, "float",
                                  f"its QuantizeConfig ({type(w.quantize_config).__name__}) quantizes nothing"))
    return out


def _integer_part(layer: Any, wrappers: dict[str, Any]) -> tuple[str, str] | None:
    """(state, detail) of a layer that reads or makes integer tensors (annotate_float_part's
    integer part: fake quantization is for float tensors), or None. State "integer" when its
    output is integer, "quantized" when qfix's boundary layer quantizes its float output, else
    "float" (an Embedding's vectors)."""
    import tensorflow as tf

    from qfix.model.rewrites.annotate_float_part import BOUNDARY, INTEGER_IN, INTEGER_OUT

    try:
        ins, outs = tf.nest.flatten(layer.input), tf.nest.flatten(layer.output)
    except (AttributeError, RuntimeError, ValueError):  # a shared layer has no single input
        return None

    def integer(ts: list) -> bool:
        return any(t.dtype.is_integer or t.dtype.is_bool for t in ts)

    reads, makes = integer(ins), bool(outs) and all(t.dtype.is_integer or t.dtype.is_bool for t in outs)
    if not (reads or makes):
        return None
    detail = INTEGER_IN if reads else INTEGER_OUT
    if reads and not makes and f"{layer.name}{BOUNDARY}" in wrappers:
        return "quantized", (f"integer indices in; its float output is quantized by qfix's boundary layer "
                             f"'{layer.name}{BOUNDARY}' (int8 after conversion)")
    if not makes:
        detail += " (tfmot fake-quantizes float tensors only)"
    return ("integer" if makes else "float"), detail


def _quantizers(wrapper: Any) -> list[str]:
    """What a QuantizeWrapper's config quantizes: "weights", "activation", "output"."""
    cfg, layer = wrapper.quantize_config, wrapper.layer
    found = (("weights", cfg.get_weights_and_quantizers(layer)), ("activation", cfg.get_activations_and_quantizers(layer)),
             ("output", cfg.get_output_quantizers(layer)))
    return [what for what, items in found if items]


def _fused_into(wrapper: Any) -> str | None:
    """The one consumer of `wrapper` when it is a ReLU-like layer whose output tfmot quantizes."""
    consumers = [n.outbound_layer for n in getattr(wrapper, "_outbound_nodes", [])]
    if len(consumers) != 1 or getattr(consumers[0], "quantize_config", None) is None:
        return None
    inner = consumers[0].layer
    relu = type(inner).__name__ == "ReLU" or (type(inner).__name__ == "Activation"
                                              and getattr(inner.activation, "__name__", "") == "relu")
    return inner.name if relu and "output" in _quantizers(consumers[0]) else None


def _batch(model: Any, calib: Calibration, n: int) -> tuple[Any, list[str]]:
    """The first `n` samples stacked per input, in the model's input dtypes, as the model
    takes them (one array, or a dict by input name)."""
    from qfix.convert.keras import input_names

    names = input_names(model)
    samples = calib.samples[:n]
    arrays = {}
    for i, (name, t) in enumerate(zip(names, model.inputs)):
        column = [s[name] if name in s else list(s.values())[i] for s in samples]
        arrays[name] = np.concatenate(column).astype(np.dtype(t.dtype.name))
    return (arrays[names[0]] if len(names) == 1 else arrays), names


def train_step(model: Any, qat: Any, calib: Calibration) -> TrainStep:
    """One Adam step of `qat` towards the float `model`'s outputs on the calibration samples."""
    import tensorflow as tf
    import tf_keras

    from qfix.convert.keras import captured_output

    t0 = time.perf_counter()
    x, _ = _batch(model, calib, TRAIN_SAMPLES)
    n = len(calib.samples[:TRAIN_SAMPLES])
    y = [np.asarray(v, dtype=np.float32) for v in tf.nest.flatten(model(x, training=False))]
    target = y[0] if len(y) == 1 else y
    with captured_output():
        qat.compile(optimizer=tf_keras.optimizers.Adam(LEARNING_RATE), loss="mse")
        before_w = [w.numpy().copy() for w in qat.trainable_weights]
        before = _total(qat.test_on_batch(x, target))
        qat.train_on_batch(x, target)
        after = _total(qat.test_on_batch(x, target))
        changed = any(not np.array_equal(a, w.numpy()) for a, w in zip(before_w, qat.trainable_weights))
    return TrainStep(n, calib.synthetic, before, after, changed, time.perf_counter() - t0)


def _total(loss: Any) -> float:
    """tf_keras returns the total loss first when a model has several outputs."""
    return float(loss[0] if isinstance(loss, (list, tuple)) else loss)


def output_names_of(model: Any) -> list[str]:
    from qfix.convert.keras import output_names

    return output_names(model)


def convert_qat(qat: Any, recipe: Recipe, names: list[str]) -> bytes:
    """The QAT model as an integer `.tflite`: qfix's serving-signature export at the recipe's
    batch (signature outputs keyed by the float model's output `names`, not tfmot's `quant_*`
    wrapper names), `optimizations=[DEFAULT]`, the recipe's integer I/O; no dataset, no
    INT8-only op set. Raises QfixError QF909 when the converter fails."""
    from qfix.convert.converter import _export_saved_model, _run
    from qfix.convert.keras import import_tf, input_names

    tf = import_tf()

    def make_converter(tmp: str):
        export = _export_saved_model(qat, input_names(qat), recipe.batch, tmp, outputs=names)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if recipe.full_integer:
            converter.inference_input_type = tf.as_dtype(recipe.io_dtype)
            converter.inference_output_type = tf.as_dtype(recipe.io_dtype)
        return converter, f"qfix: QAT serving signature exported via {export}\n"

    from qfix.convert.converter import outputs_in_model_order

    return outputs_in_model_order(_run(make_converter, recipe).tflite, names)


def fidelity_view(qat: Any, names: list[str]) -> Any:
    """`qat` with its outputs named as the float model's (`names`), so that the fidelity check
    pairs them with the `.tflite`'s signature outputs by name. The identity layers added for
    renamed outputs compute nothing."""
    import tf_keras

    from qfix.convert.keras import output_names

    current = output_names(qat)
    if current == names:
        return qat
    outs = [o if have == want else tf_keras.layers.Activation("linear", name=want)(o)
            for o, have, want in zip(qat.outputs, current, names)]
    return tf_keras.Model(qat.inputs, outs, name=f"{qat.name}_view")
