"""QF510 custom-layer-quantize-config: a custom layer tfmot has no QuantizeConfig for (--mode qat).

## What it does
With `--mode qat`, finds every layer whose class is the user's own (not a Keras built-in, not a
`hub.KerasLayer`: QF507 owns those) that carries no tfmot `QuantizeAnnotate`.

## Why is this bad?
tfmot's 8-bit registry knows built-in classes only (a lookup by exact class), so
`quantize_model` raises before training starts: "Layer scaled_tanh:<class
'fixtures.custom_layers_tfk.ScaledTanh'> is not supported. You can quantize this layer by
passing a `tfmot.quantization.keras.QuantizeConfig` instance to the `quantize_annotate_layer`
API." (errors.md B10); without `quantize_scope` the class does not even deserialize (B4).

## Example
```python
i = tf_keras.Input((16, 16, 3))
y = ScaledTanh(name="scaled_tanh")(tf_keras.layers.Conv2D(4, 3)(i))  # y = alpha * tanh(x)
tfmot.quantization.keras.quantize_model(tf_keras.Model(i, y))  # RuntimeError: Layer scaled_tanh ...
```

## Use instead
```python
with tfmot.quantization.keras.quantize_scope({**custom_objects(), "ScaledTanh": ScaledTanh}):
    y = quantize_annotate_layer(ScaledTanh(name="scaled_tanh"), OutputQuantizeConfig())(x)
```
or a QuantizeConfig of your own that also fake-quantizes the layer's weights: qfix prints a
complete template for the class (its weights by the attribute names the loaded layer holds
them in, e.g. `alpha`; an 8-bit weight quantizer and an 8-bit output quantizer) and the two
lines that use it.

## Fix safety
Safe: qfix annotates the layer with its `OutputQuantizeConfig` (`qfix>OutputQuantizeConfig`),
which changes no float value. qfix cannot read what a custom layer computes, so it quantizes
only what it can always quantize: the layer's output (8 bits, per tensor, moving-average
range). Checked with the real tfmot and converter on a per-channel `alpha * tanh(x)` and a
hand-written dense layer: the QAT model trains and converts to all-integer ops (TANH, MUL,
FULLY_CONNECTED int8); with qfix's NoOpQuantizeConfig instead, the layer's last op (its MUL,
its FULLY_CONNECTED) and the layers after it convert to float (DEQUANTIZE before them). What stays float: the layer's weights during training (no fake-quant: the
converter quantizes them after training, from their values). The template (display-only)
adds that weight quantizer. The annotation is written into tf_keras configs (a Keras 3 model
is annotated once `--mode qat` has translated it).

## Targets
Every target: the rule reads no property of the target's profile; it fires only with
`--mode qat` (quantization-aware training with tfmot).
"""

from __future__ import annotations

from typing import Sequence

from qfix.model import tfmot_registry as reg
from qfix.model.builtin_layers import is_builtin
from qfix.model.cases import functional_config
from qfix.model.hub import is_hub_layer
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.annotate_quantize import wrap
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability, Violation

QCONFIG = reg.OUTPUT_CONFIG  # chosen by experiment: see "Fix safety"
# The quantizers of the template: tfmot's own for a Dense kernel, and for an Add's output.
WEIGHT_QUANTIZER = "LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True, narrow_range=True)"
OUTPUT_QUANTIZER = "MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)"
TEMPLATE_HEADING = "Or fake-quantize its weights too, with a QuantizeConfig of your own (template):"

# A weight as the loaded layer holds it: (attribute of the layer or None, variable name, shape).
Weight = tuple[str | None, str, Sequence[int]]


def annotate_custom(edit, scope: tuple[str, ...], name: str) -> str:
    """Wrap the custom layer `name` in a QuantizeAnnotate with qfix's OutputQuantizeConfig."""
    cls = edit.layer(name, scope).get("class_name")
    wrap(edit, scope, name, QCONFIG)
    return f"custom {cls} {name!r} annotated with qfix's {QCONFIG} (output quantized; float outputs unchanged)"


class CustomLayerQuantizeConfig(ModelRule):
    """QF510 custom-layer-quantize-config; documented in the module docstring (`qfix rule QF510`)."""

    code = "QF510"
    name = "custom-layer-quantize-config"
    # The rule's level, as for QF509: the embedded cases are Keras 3 configs, which get no
    # annotation (tfmot loads tf_keras only); a tf_keras finding carries the safe rewrite.
    fix_applicability = Applicability.DISPLAY_ONLY

    def check(self, graph, ctx):
        if ctx.mode != "qat":
            return
        for path, layer in graph.walk():
            if is_builtin(layer) or is_hub_layer(layer) or layer.is_model or layer.quantize_config:
                continue
            ident = layer.registered_name or f"{layer.module}.{layer.class_name}"
            msg = (f"custom layer {layer.name!r} ({ident}) is not in tfmot's registry: quantize_model raises "
                   f"\"Layer {layer.name}:<class '…{layer.class_name}'> is not supported\" unless it carries "
                   "a QuantizeConfig")
            fix = (f"annotate it with qfix's {QCONFIG}: its output is quantized (8 bits, per tensor); its weights "
                   "stay float during training (the converter quantizes them after it); qfix cannot read what "
                   "the layer computes. A QuantizeConfig template that fake-quantizes its weights follows the "
                   "run (the weights as the loaded layer names them)")
            if graph.dialect != "tf_keras":
                yield self.violation(msg, layer.name, pointer=layer.pointer,
                                     fix=fix + " (written once the model is translated to tf_keras)")
                continue
            yield self.violation(msg, layer.name, pointer=layer.pointer, fix=fix, applicability=Applicability.SAFE,
                                 rewrite=Rewrite(annotate_custom, path, layer.name))

    CASES = [
        ModelCase(
            "registered-custom",
            functional_config([("x", (None, 8), "float32")],
                              [("d", "Dense", {"units": 4}, ["x"], "float32", (None, 4)),
                               ("act", "ScaledTanh", {"__module": "my_pkg.layers",
                                                      "__registered_name": "my_pkg>ScaledTanh"}, ["d"])], ["act"]),
            fires=True, count=1, mode="qat",
        ),
        ModelCase(
            "ptq",
            functional_config([("x", (None, 8), "float32")],
                              [("act", "ScaledTanh", {"__module": "my_pkg.layers",
                                                      "__registered_name": "my_pkg>ScaledTanh"}, ["x"])], ["act"]),
            fires=False,
        ),
        ModelCase(
            "builtin-only",
            functional_config([("x", (None, 8), "float32")], [("d", "Dense", {"units": 4}, ["x"])], ["d"]),
            fires=False, mode="qat",
        ),
        ModelCase(  # QF507's
            "hub",
            functional_config([("x", (None, 4), "float32")],
                              [("hub", "KerasLayer", {"__module": "tensorflow_hub.keras_layer"}, ["x"])], ["hub"]),
            fires=False, mode="qat",
        ),
    ]


def with_template(v: Violation, template: str) -> None:
    """Append the display-only `template` to the fix text of the QF510 finding `v`."""
    if v.fix is not None and TEMPLATE_HEADING not in v.fix.description:
        v.fix.description = f"{v.fix.description}\n{TEMPLATE_HEADING}\n{template}"


def quantize_config_template(class_name: str, module: str, weights: Sequence[Weight]) -> str:
    """A complete tfmot QuantizeConfig for `class_name` (importable from `module`): every weight
    in `weights` (the loaded layer's trainable variables, by attribute) gets WEIGHT_QUANTIZER,
    the output OUTPUT_QUANTIZER (biases excepted: see `_is_bias`); then the two lines that annotate a layer with it inside the
    quantize scope. Checked by a `-m tf` test: written to a module, it annotates the fixture
    model, which quantize_apply accepts, trains one step and converts."""
    config = f"{class_name}QuantizeConfig"
    biases = [w for w in weights if _is_bias(w)]
    held = [w for w in weights if w[0] and not _is_bias(w)]
    lost = [w for w in weights if not w[0] and not _is_bias(w)]
    listed = ", ".join(f"(layer.{attr}, {WEIGHT_QUANTIZER})" for attr, _, _ in held)
    shapes = "; ".join(f"{attr}: variable {var!r}, shape {tuple(shape)}" for attr, var, shape in held) or "none"
    assign = ", ".join(f"layer.{attr}" for attr, _, _ in held)
    lines = [
        "import tensorflow_model_optimization as tfmot",
        "from qfix.convert.qat_configs import custom_objects",
        f"from {module} import {class_name}",
        "",
        "LastValueQuantizer = tfmot.quantization.keras.quantizers.LastValueQuantizer",
        "MovingAverageQuantizer = tfmot.quantization.keras.quantizers.MovingAverageQuantizer",
        "",
        "",
        f"class {config}(tfmot.quantization.keras.QuantizeConfig):",
        f'    """What QAT fake-quantizes in a {class_name}: its weights ({shapes}) and its output."""',
        "",
        "    def get_weights_and_quantizers(self, layer):",
        f"        return [{listed}]" if held else "        return []",
        "",
        "    def get_activations_and_quantizers(self, layer):",
        "        return []",
        "",
        "    def set_quantize_weights(self, layer, quantize_weights):",
        f"        ({assign},) = quantize_weights" if held else "        pass",
        "",
        "    def set_quantize_activations(self, layer, quantize_activations):",
        "        pass",
        "",
        "    def get_output_quantizers(self, layer):",
        f"        return [{OUTPUT_QUANTIZER}]",
        "",
        "    def get_config(self):",
        "        return {}",
        "",
        "",
    ]
    if lost:
        lines.insert(-2, f"# not held by an attribute, left unquantized: {', '.join(repr(v) for _, v, _ in lost)}")
    if biases:
        lines.insert(-2, f"# biases stay float in training, as tfmot's own configs leave them; the converter "
                         f"makes them int32 (scale = input scale x weight scale): {', '.join(repr(v) for _, v, _ in biases)}")
    lines += [
        f"with tfmot.quantization.keras.quantize_scope({{**custom_objects(), {class_name!r}: {class_name}, "
        f"{config!r}: {config}}}):",
        f"    layer = tfmot.quantization.keras.quantize_annotate_layer({class_name}(...), {config}())",
    ]
    return "\n".join(lines) + "\n"


def _is_bias(w: Weight) -> bool:
    """A bias, by its attribute or variable name: tfmot never fake-quantizes a bias (its Dense
    and Conv configs list the kernel only) and TFLite stores it as int32, so the template
    must not put an 8-bit quantizer on it."""
    attr, var, _ = w
    names = {(attr or "").lower(), var.rsplit("/", 1)[-1].split(":")[0].lower()}
    return "b" in names or any("bias" in n for n in names)  # `b`: the y = x·w + b spelling


def attach_templates(findings: list[Violation], custom_weights: dict[str, list[Weight]], graph) -> dict[str, str]:
    """The template of each custom layer with a QF510 finding in `findings` that the trial
    loaded (`custom_weights`, from qfix.convert.qat_configs.custom_layer_weights), by layer
    name, appended to the finding's fix text; `graph` (the model tfmot ran on) gives each layer's class and module."""
    layers = {l.name: l for _, l in graph.walk()}
    out = {}
    for v in findings:
        name = v.location.layer
        if v.code == CustomLayerQuantizeConfig.code and name in custom_weights and name in layers:
            out[name] = quantize_config_template(layers[name].class_name, layers[name].module, custom_weights[name])
            with_template(v, out[name])
    return out
