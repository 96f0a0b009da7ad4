"""QF509 qat-average-pool-scale: an AveragePooling2D whose own output quantizer breaks the QAT conversion.

## What it does
With `--mode qat`, finds every AveragePooling2D that tfmot would quantize itself (not already
annotated).

## Why is this bad?
tfmot's 8-bit registry gives AveragePooling2D its own output quantizer, so the QAT model's
pool has an output scale unlike its input's. TFLite's int8 AVERAGE_POOL_2D requires the same
scale on both sides: TF 2.21's converter then either adds a requantizing QUANTIZE op after the
pool, or refuses the model outright ("'tfl.average_pool_2d' op quantization parameters violate
the same scale constraint", DenseNet121's transition blocks, checked). Post-training
quantization does not meet this: the converter picks one scale itself.

## Example
```python
x = layers.Conv2D(64, 1)(x)
x = layers.AveragePooling2D(2, strides=2)(x)  # DenseNet's transition
```

## Use instead
```python
with tfmot.quantization.keras.quantize_scope(qfix.convert.qat_configs.custom_objects()):
    pool = tfmot.quantization.keras.quantize_annotate_layer(
        layers.AveragePooling2D(2, strides=2), qfix.convert.qat_configs.NoOpQuantizeConfig())
```
The pool then keeps its input's scale, as tfmot already does for MaxPooling2D.

## Fix safety
Safe: an annotation changes no float value. The fix is written into tf_keras configs (a Keras
3 model is annotated once `--mode qat` has translated it).

## Targets
Every target: the rule reads no property of the target's profile; it fires only with
`--mode qat` (quantization-aware training with tfmot).
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config
from qfix.model.rewrites import Rewrite
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability


class QatAveragePoolScale(ModelRule):
    """QF509 qat-average-pool-scale; documented in the module docstring (`qfix rule QF509`)."""

    code = "QF509"
    name = "qat-average-pool-scale"
    # The rule's level, as for QF507: the embedded cases are Keras 3 configs, which get no
    # annotation (tfmot loads tf_keras only); a tf_keras finding carries the safe rewrite.
    fix_applicability = Applicability.DISPLAY_ONLY

    def check(self, graph, ctx):
        if ctx.mode != "qat":
            return
        for path, layer in graph.walk():
            if layer.class_name != "AveragePooling2D" or layer.quantize_config:
                continue
            msg = (f"AveragePooling2D {layer.name!r} gets its own output quantizer from tfmot, but TFLite's "
                   "AVERAGE_POOL_2D needs its input's scale: the QAT conversion requantizes or fails "
                   "(\"same scale constraint\")")
            fix = "annotate it with qfix's NoOpQuantizeConfig (it keeps its input's scale, as MaxPooling2D does)"
            if graph.dialect != "tf_keras":
                yield self.violation(msg, layer.name, pointer=layer.pointer,
                                     fix=fix + " (written once the model is translated to tf_keras)")
                continue
            yield self.violation(msg, layer.name, pointer=layer.pointer, fix=fix, applicability=Applicability.SAFE,
                                 rewrite=Rewrite(rewrites.annotate_pass_through, path, layer.name))

    CASES = [
        ModelCase(
            "conv-avgpool",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["x"], "float32", (None, 8, 8, 4)),
                               ("pool", "AveragePooling2D", {"pool_size": [2, 2], "strides": [2, 2],
                                                             "padding": "valid"}, ["conv"], "float32",
                                (None, 4, 4, 4))], ["pool"]),
            fires=True, count=1, mode="qat",
        ),
        ModelCase(
            "maxpool",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("pool", "MaxPooling2D", {"pool_size": [2, 2]}, ["x"], "float32", (None, 4, 4, 3))],
                              ["pool"]),
            fires=False, mode="qat",
        ),
        ModelCase(
            "ptq",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("pool", "AveragePooling2D", {"pool_size": [2, 2]}, ["x"], "float32",
                                (None, 4, 4, 3))], ["pool"]),
            fires=False,
        ),
    ]
