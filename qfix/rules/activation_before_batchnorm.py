"""QF503 activation-before-batchnorm: a BatchNormalization after a layer's fused activation, which tfmot cannot fold.

## What it does
With `--mode qat`, finds a BatchNormalization whose input is a Conv2D, DepthwiseConv2D or
Dense with a non-linear `activation` (e.g. `Conv2D(16, 3, activation="relu")` then
`BatchNormalization()`).

## Why is this bad?
tfmot folds a BatchNormalization only into a linear conv/dense before it (its transforms match
`activation: linear`). Here the activation sits between them, so the BN stays a standalone
layer and `quantize_model` raises "Layer batch_normalization:<class '...BatchNormalization'> is
not supported" (errors.md B8; tfmot#628: "The main reason is that you provided an activation
to conv").

## Example
```python
x = tf_keras.layers.Conv2D(16, 3, activation="relu")(i)
x = tf_keras.layers.BatchNormalization()(x)
```

## Use instead
```python
x = tf_keras.layers.Conv2D(16, 3, activation="relu")(i)
x = tf_keras.layers.DepthwiseConv2D(1)(x)   # the BN's affine map: kernel γ/√(σ²+ε), bias β−μ·γ/√(σ²+ε)
# or, when you retrain from scratch: Conv2D(16, 3) → BatchNormalization() → ReLU()
```

## Fix safety
Safe: the fix folds the trained BatchNormalization into a 1×1 DepthwiseConv2D after the
activation, the same per-channel affine map in inference (float outputs equal to 1e-5), which
tfmot quantizes. Moving the activation after the BN instead (what tfmot#628 suggests) is not
the same function (BN(relu(z)) ≠ relu(BN(z))) and is only shown as advice.

## Targets
Every target: the rule reads no property of the target's profile; it fires only with
`--mode qat` (quantization-aware training with tfmot).
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.config import activation_name
from qfix.model.rewrites import Rewrite
from qfix.rules.base import ModelCase, ModelRule
from qfix.rules.tfmot_rejected_layer import _scope_graph, activated_producer
from qfix.types import Applicability


class ActivationBeforeBatchnorm(ModelRule):
    """QF503 activation-before-batchnorm; documented in the module docstring (`qfix rule QF503`)."""

    code = "QF503"
    name = "activation-before-batchnorm"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        if ctx.mode != "qat":
            return
        for path, layer in graph.walk():
            if layer.class_name != "BatchNormalization" or layer.quantize_config:
                continue
            prev = activated_producer(_scope_graph(graph, path), layer)
            if prev is None:
                continue
            act = activation_name({"config": prev.config})
            yield self.violation(
                f"BatchNormalization {layer.name!r} follows {prev.class_name} {prev.name!r}, whose {act} activation "
                "comes first: tfmot folds a BN only into a linear layer, so quantize_model rejects it",
                layer.name, pointer=layer.pointer,
                fix=(f"fold the BN into a 1×1 DepthwiseConv2D after the {act} (the same function); or, retraining "
                     f"anyway, make {prev.name!r} linear and put the {act} after the BN"),
                rewrite=Rewrite(rewrites.batchnorm_as_depthwise, path, layer.name),
            )

    CASES = [
        ModelCase(
            "conv-relu-bn",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 16, "kernel_size": 3, "activation": "relu"}, ["x"],
                                "float32", (None, 6, 6, 16)),
                               ("bn", "BatchNormalization", {"axis": -1, "epsilon": 1e-3}, ["conv"], "float32",
                                (None, 6, 6, 16))], ["bn"]),
            fires=True, count=1, mode="qat",
            expected={"name": "bn", "class_name": "DepthwiseConv2D"},
        ),
        ModelCase(
            "sequential-dense-relu6-bn",
            sequential_config(("x", (None, 8), "float32"),
                              [("d", "Dense", {"units": 4, "activation": "relu6"}, (None, 8)),
                               ("bn", "BatchNormalization", {}, (None, 4))]),
            fires=True, count=1, mode="qat",
            expected=[("x", "InputLayer"), ("d", "Dense"), ("bn", "Reshape"), ("bn_dw", "DepthwiseConv2D"),
                      ("bn_back", "Reshape")],
        ),
        ModelCase(
            "linear-conv-bn-relu",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 3}, ["x"], "float32", (None, 6, 6, 4)),
                               ("bn", "BatchNormalization", {}, ["conv"], "float32", (None, 6, 6, 4)),
                               ("relu", "ReLU", {}, ["bn"], "float32", (None, 6, 6, 4))], ["relu"]),
            fires=False, mode="qat",
        ),
        ModelCase(
            "ptq",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu"}, ["x"],
                                "float32", (None, 6, 6, 4)),
                               ("bn", "BatchNormalization", {}, ["conv"], "float32", (None, 6, 6, 4))], ["bn"]),
            fires=False,
        ),
    ]
