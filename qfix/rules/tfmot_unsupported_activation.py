"""QF504 tfmot-unsupported-activation: an activation tfmot's QAT wrappers do not know.

## What it does
With `--mode qat`, finds a Dense, Conv2D, DepthwiseConv2D, Conv2DTranspose or SeparableConv2D
whose `activation` is not one tfmot wraps (it knows linear, relu, swish, gelu, softmax, sigmoid,
tanh: relu6, elu, selu, hard_sigmoid, leaky_relu, softplus, ... are refused), and an
`Activation` layer tfmot refuses (the same list plus relu6, which it accepts there).

It also flags `activation="swish"` (or "silu") on those layers, as a warning: tfmot accepts
it, but the converted layer and its activation stay float.

## Why is this bad?
`quantize_model` raises "Only some Keras activations under `keras.activations` are supported.
For other activations, use `Quantizer` directly, and update layer config using
`QuantizeConfig`." for an `activation=` argument, and "Activation <function elu at 0x...> not
supported by Default8BitActivationQuantizeConfig." for an Activation layer (errors.md B9;
`quantize_aware_activation.py`; checked against the installed tfmot by a test).

A fused swish converts to float CONV_2D, LOGISTIC and MUL (tfmot quantizes only after the
activation, so the conv's own output has no range); split off as `Activation("swish")` after a
linear conv, the same graph converts to integer ops (checked).

## Example
```python
x = tf_keras.layers.Conv2D(16, 3, activation="relu6")(i)
```

## Use instead
```python
x = tf_keras.layers.Conv2D(16, 3)(i)
x = tf_keras.layers.ReLU(6.0)(x)   # quantized by tfmot; the converter fuses it into the conv
```

## Fix safety
Safe: the layer becomes linear and the activation follows as its own layer, the same function
(float outputs identical): `ReLU(6.0)` for relu6, `Activation(name)` for the others. An
Activation tfmot refuses is annotated with qfix's OutputQuantizeConfig (no float change): its
op converts to integer for leaky_relu and stays float for the others (elu, softplus, ...),
with integer layers around it. tf_keras's hard_sigmoid, clip(0.2x + 0.5, 0, 1), on a layer or
in an Activation layer, is rebuilt as Rescaling(1.2, offset=3) → ReLU(6.0) → Rescaling(1/6) instead
(`hard_sigmoid_tf_keras`), which converts fully integer (a Sequential becomes a Functional). Annotations are written into tf_keras configs;
in a Keras 3 config an Activation layer's finding is display-only until translation.

## Targets
Every target: the rule reads no property of the target's profile; it fires only with
`--mode qat` (quantization-aware training with tfmot).
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model import tfmot_registry as reg
from qfix.model.cases import functional_config, sequential_config
from qfix.model.config import activation_name
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.split_activation import SPLITTABLE
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability, Severity


class TfmotUnsupportedActivation(ModelRule):
    """QF504 tfmot-unsupported-activation; documented in the module docstring (`qfix rule QF504`)."""

    code = "QF504"
    name = "tfmot-unsupported-activation"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        if ctx.mode != "qat":
            return
        for path, layer in graph.walk():
            if layer.quantize_config:
                continue
            act = activation_name({"config": layer.config})
            if layer.class_name in SPLITTABLE and act in reg.FLOAT_WHEN_FUSED:
                yield self.violation(
                    f"{layer.class_name} {layer.name!r} has activation={act!r}: tfmot accepts it, but quantizes only "
                    "after it, so the converted layer and its activation stay float",
                    layer.name, pointer=layer.pointer, severity=Severity.WARNING,
                    fix=f"make {layer.name!r} linear and apply Activation({act!r}) after it (the same function; "
                        "it converts to integer)",
                    rewrite=Rewrite(rewrites.split_activation, path, layer.name),
                )
            elif act == "hard_sigmoid" and graph.dialect == "tf_keras" and (
                    layer.class_name in SPLITTABLE or layer.class_name == "Activation"):
                refused = (reg.ACTIVATION_LAYER_ERROR.format(name=act) if layer.class_name == "Activation"
                           else reg.LAYER_ACTIVATION_ERROR)
                yield self.violation(
                    f"{layer.class_name} {layer.name!r} applies tf_keras's hard_sigmoid, which tfmot does not wrap: "
                    f"quantize_model raises \"{refused}\"",
                    layer.name, pointer=layer.pointer,
                    fix="rebuild it as Rescaling(1.2, offset=3) → ReLU(6.0) → Rescaling(1/6): tf_keras's "
                        "clip(0.2x + 0.5, 0, 1) (the same function), in layers tfmot quantizes (annotated, it would "
                        "stay float)",
                    rewrite=Rewrite(rewrites.hard_sigmoid_tf_keras, path, layer.name),
                )
            elif layer.class_name in SPLITTABLE and not reg.layer_activation_ok(act):
                then = "ReLU(6.0)" if act in reg.SPLIT_AS else f"Activation({act!r})"
                yield self.violation(
                    f"{layer.class_name} {layer.name!r} has activation={act!r}, which tfmot does not wrap: "
                    f"quantize_model raises \"{reg.LAYER_ACTIVATION_ERROR}\"",
                    layer.name, pointer=layer.pointer,
                    fix=f"make {layer.name!r} linear and apply {then} after it (the same function)",
                    rewrite=Rewrite(rewrites.split_activation, path, layer.name),
                )
            elif layer.class_name == "Activation" and not reg.activation_layer_ok(act):
                msg = (f"Activation {layer.name!r} applies {act!r}, which tfmot's Activation config refuses: "
                       f"quantize_model raises \"{reg.ACTIVATION_LAYER_ERROR.format(name=act)}\"")
                stays = "" if act in reg.INTEGER_WHEN_ANNOTATED else "; the activation itself stays float"
                fix = f"annotate it with qfix's {reg.activation_qconfig(act)}{stays}"
                if graph.dialect != "tf_keras":
                    yield self.violation(msg, layer.name, pointer=layer.pointer,
                                         applicability=Applicability.DISPLAY_ONLY,
                                         fix=fix + " (written once the model is translated to tf_keras)")
                else:
                    yield self.violation(msg, layer.name, pointer=layer.pointer, fix=fix,
                                         rewrite=Rewrite(rewrites.annotate_quantize, path, layer.name))

    CASES = [
        ModelCase(
            "conv-relu6",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu6"}, ["x"],
                                "float32", (None, 6, 6, 4))], ["conv"]),
            fires=True, count=1, mode="qat",
            expected=[("x", "InputLayer"), ("conv_pre", "Conv2D"), ("conv", "ReLU")],
        ),
        ModelCase(
            "sequential-dense-elu",
            sequential_config(("x", (None, 8), "float32"), [("d", "Dense", {"units": 4, "activation": "elu"}, (None, 8)),
                                                            ("o", "Dense", {"units": 2})]),
            fires=True, count=1, mode="qat",
            expected=[("x", "InputLayer"), ("d", "Dense"), ("d_elu", "Activation"), ("o", "Dense")],
        ),
        ModelCase(  # Keras 3: annotated after translation (display-only here)
            "activation-layer-hard-sigmoid",
            functional_config([("x", (None, 8), "float32")], [("a", "Activation", {"activation": "hard_sigmoid"}, ["x"])],
                              ["a"]),
            fires=True, count=1, mode="qat",
        ),
        ModelCase(
            "fused-swish-warning",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "swish"}, ["x"],
                                "float32", (None, 6, 6, 4))], ["conv"]),
            fires=True, count=1, mode="qat",
            expected=[("x", "InputLayer"), ("conv_pre", "Conv2D"), ("conv", "Activation")],
        ),
        ModelCase(
            "supported",
            functional_config([("x", (None, 8), "float32")],
                              [("d", "Dense", {"units": 4, "activation": "relu"}, ["x"]),
                               ("a", "Activation", {"activation": "relu6"}, ["d"]),
                               ("s", "Dense", {"units": 2, "activation": "sigmoid"}, ["a"])], ["s"]),
            fires=False, mode="qat",
        ),
        ModelCase(
            "ptq",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu6"}, ["x"],
                                "float32", (None, 6, 6, 4))], ["conv"]),
            fires=False,
        ),
    ]
