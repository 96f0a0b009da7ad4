"""QF307 transpose-conv-activation: a ReLU the converter fuses into a biased transposed conv.

## What it does
Finds Conv2DTranspose and Conv1DTranspose layers with a bias whose ReLU/ReLU6 the TFLite
converter fuses into the TRANSPOSE_CONV op (a Conv1DTranspose is a TRANSPOSE_CONV between
RESHAPEs): `activation="relu"`/`"relu6"` on the layer, or a ReLU / Activation("relu") layer
that is the only reader of its output. Fires when the target's compiler knows
TRANSPOSE_CONV only up to a version below 4.

## Why is this bad?
TRANSPOSE_CONV with a fused activation is op version 4 (tensorflow/lite/tools/versioning/
op_version.cc: "TransposeConvOp has fused activation function from version 4"). The converter
fuses it only when the op has a bias (TF 2.21, reproduced: a zero or absent bias leaves a separate
RELU). edgetpu_compiler 16 does not know version 4 and rejects the whole file ("Model could not be
parsed", google-coral/edgetpu #845): not one op maps. Moving the activation to its own ReLU layer
does not help: the converter fuses it back.

## Example
```python
y = keras.layers.Conv2DTranspose(8, 2, strides=2, activation="relu")(x)
```

## Use instead
```python
y = keras.layers.Conv2DTranspose(8, 2, strides=2)(x)
# an identity 1x1 depthwise conv (kernel of ones, no bias) takes the fused ReLU instead
y = keras.layers.DepthwiseConv2D(1, use_bias=False, depthwise_initializer="ones", activation="relu")(y)
```
(DepthwiseConv1D of size 1 after a Conv1DTranspose.)

## Fix safety
Safe: the transposed conv keeps its kernel and bias, and the new DepthwiseConv2D multiplies by
exactly 1, so the float outputs are identical. After conversion: TRANSPOSE_CONV v3 and
DEPTHWISE_CONV_2D v3 with the fused ReLU, both in the Edge TPU's op table; one more op to run
(the same for Conv1DTranspose with a DepthwiseConv1D, TF 2.21, both dialects).

## Targets
Targets whose op table caps TRANSPOSE_CONV at a version below 4 (the profile's `max_version`).
Targets with a newer runtime run version 4 and never get it.
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.config import activation_name
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.unfuse_transpose_conv import FUSED, IDENTITY
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability

VERSION_WITH_ACTIVATION = 4  # op_version.cc, BuiltinOperator_TRANSPOSE_CONV


def _fusable_relu(layer) -> str | None:
    """The relu/relu6 a standalone layer applies (what the converter fuses upstream)."""
    cfg = layer.config
    if layer.class_name == "Activation":
        act = activation_name(layer.raw)
        return act if act in FUSED else None
    if layer.class_name == "ReLU" and not cfg.get("negative_slope") and not cfg.get("threshold"):
        mx = cfg.get("max_value")
        return "relu" if mx is None else "relu6" if mx == 6 else None
    return None


class TransposeConvActivation(ModelRule):
    """QF307 transpose-conv-activation; documented in the module docstring (`qfix rule QF307`)."""

    code = "QF307"
    name = "transpose-conv-activation"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        spec = ctx.target.op("TRANSPOSE_CONV")
        if spec is None or not spec.supported or not spec.too_new(VERSION_WITH_ACTIVATION):
            return
        for scope, g in graph.models():
            for layer in g:
                if layer.class_name not in IDENTITY or layer.config.get("use_bias") is False:
                    continue
                act, where = activation_name(layer.raw), "its activation"
                if act not in FUSED:
                    readers = g.consumers(layer.name)
                    is_output = any(o.layer == layer.name for o in g.outputs)
                    act = _fusable_relu(readers[0]) if len(readers) == 1 and not is_output else None
                    where = f"the {readers[0].class_name} {readers[0].name!r} after it" if act else where
                if act not in FUSED:
                    continue
                depthwise, rank = IDENTITY[layer.class_name]
                yield self.violation(
                    f"{layer.class_name} {layer.name!r}: the converter fuses {act} ({where}) into TRANSPOSE_CONV, "
                    f"making it version {VERSION_WITH_ACTIVATION}; {ctx.target.name}'s compiler knows TRANSPOSE_CONV "
                    f"up to version {spec.max_version} and rejects the whole model",
                    layer.name, pointer=layer.pointer,
                    fix=f"put an identity {depthwise} (size 1, ones, no bias) between them to take the {act}",
                    rewrite=Rewrite(rewrites.unfuse_transpose_conv, scope, layer.name),
                )

    CASES = [
        ModelCase(
            "tconv-relu",
            functional_config([("x", (None, 8, 8, 16), "float32")],
                              [("up", "Conv2DTranspose", {"filters": 8, "kernel_size": [2, 2], "strides": [2, 2],
                                                          "activation": "relu", "use_bias": True},
                                ["x"], "float32", (None, 16, 16, 8))], ["up"]),
            fires=True, count=1,
            # The output keeps its name: the transposed conv becomes up_pre.
            expected=[("x", "InputLayer"), ("up_pre", "Conv2DTranspose"), ("up", "DepthwiseConv2D")],
        ),
        ModelCase(
            "tconv-then-relu-layer",
            functional_config([("x", (None, 8, 8, 16), "float32")],
                              [("up", "Conv2DTranspose", {"filters": 8, "kernel_size": [2, 2], "strides": [2, 2],
                                                          "activation": "linear", "use_bias": True},
                                ["x"], "float32", (None, 16, 16, 8)),
                               ("r", "ReLU", {"max_value": 6.0}, ["up"])], ["r"]),
            fires=True, count=1,
            expected=[("x", "InputLayer"), ("up", "Conv2DTranspose"), ("up_act", "DepthwiseConv2D"), ("r", "ReLU")],
        ),
        ModelCase(
            "sequential-tconv-relu6",
            sequential_config(("x", (None, 8, 8, 16), "float32"),
                              [("up", "Conv2DTranspose", {"filters": 8, "kernel_size": [2, 2], "strides": [2, 2],
                                                          "activation": "relu6", "use_bias": True})]),
            fires=True, count=1,
            expected={"class_name": "DepthwiseConv2D", "config": {"activation": "relu6", "use_bias": False}},
        ),
        ModelCase(
            "tconv1d-relu",
            sequential_config(("x", (None, 16, 4), "float32"),
                              [("up", "Conv1DTranspose", {"filters": 4, "kernel_size": [3], "strides": [2],
                                                          "activation": "relu", "use_bias": True})]),
            fires=True, count=1,
            expected={"class_name": "DepthwiseConv1D", "config": {"activation": "relu", "kernel_size": [1],
                                                                  "use_bias": False}},
        ),
        ModelCase(
            "no-bias",
            functional_config([("x", (None, 8, 8, 16), "float32")],
                              [("up", "Conv2DTranspose", {"filters": 8, "kernel_size": 2, "strides": 2,
                                                          "activation": "relu", "use_bias": False}, ["x"])], ["up"]),
            fires=False,
        ),
        ModelCase(
            "tanh-is-not-fused",
            functional_config([("x", (None, 8, 8, 16), "float32")],
                              [("up", "Conv2DTranspose", {"filters": 8, "kernel_size": 2, "strides": 2,
                                                          "activation": "tanh"}, ["x"])], ["up"]),
            fires=False,
        ),
    ]
