"""QF404 qat-int8-only-trap: the INT8-only op set on a QAT model (source).

## What it does
Flags the conversion of a quantization-aware-trained model (the result of tfmot
`quantize_model` / `quantize_apply`, or a model loaded inside `quantize_scope()`) with
`target_spec.supported_ops = [TFLITE_BUILTINS_INT8]` and no representative dataset.

## Why is this bad?
A QAT model carries its own quantization ranges, so it needs no calibration data, but on
TF 2.x (verified on 2.21) `from_keras_model` + INT8-only op set still demands one:
`ValueError: For full integer quantization, a representative_dataset must be specified.`
(tensorflow/tensorflow#38285).

## Example
```python
q = tfmot.quantization.keras.quantize_model(model)
converter = tf.lite.TFLiteConverter.from_keras_model(q)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
```

## Use instead
```python
q = tfmot.quantization.keras.quantize_model(model)
converter = tf.lite.TFLiteConverter.from_keras_model(q)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
```

## Fix safety
Safe: removing the op-set line is what makes the conversion work; on TF 2.21 the QAT model
then converts to the same fully integer ops (QUANTIZE, CONV_2D, FULLY_CONNECTED, ...). The
alternative, passing a representative dataset anyway, is left to the user.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

from qfix.source.converter import INT8_OPS, ConverterAnalysis
from qfix.source.rule import Invalid, RemoveStatement, SourceRule, Valid
from qfix.types import Applicability


class QatInt8OnlyTrap(ConverterAnalysis, SourceRule):
    """Source side of QF404 qat-int8-only-trap; documented once, in the module docstring
    (`qfix rule QF404`)."""

    code = "QF404"
    name = "qat-int8-only-trap"

    _HEAD = (
        "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
        "q = tfmot.quantization.keras.quantize_model(model)\n"
        "converter = tf.lite.TFLiteConverter.from_keras_model(q)\n"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    )
    _OPS = "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
    VALID = [
        Valid(_HEAD + "m = converter.convert()\n"),
        Valid(_HEAD + _OPS + "converter.representative_dataset = rep\nm = converter.convert()\n"),
        Valid(
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n" + _OPS + "m = converter.convert()\n"
        ),
    ]
    INVALID = [
        Invalid(_HEAD + _OPS + "m = converter.convert()\n", expected=_HEAD + "m = converter.convert()\n", applicability=Applicability.SAFE),
        Invalid(
            "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
            "with tfmot.quantization.keras.quantize_scope():\n    qat = tf.keras.models.load_model('qat.h5')\n"
            "c = tf.lite.TFLiteConverter.from_keras_model(qat)\nc.optimizations = [tf.lite.Optimize.DEFAULT]\n"
            "c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]; c.inference_input_type = tf.uint8\n",
            applicability=Applicability.DISPLAY_ONLY,
        ),
    ]

    def finish(self) -> None:
        for b in self.converter_blocks():
            if not b.qat or "representative_dataset" in b.settings:
                continue
            ops = b.settings.get("target_spec.supported_ops")
            if ops is None:
                continue
            els = self.elements(ops.value)
            if not els or els != [INT8_OPS]:
                continue
            msg = f"Converting a QAT model with an INT8-only op set and no representative_dataset fails on TF 2.x (`{b.var}`)"
            if len(ops.stmt.body) == 1:
                self.report(ops.node, msg, fix="Remove the `supported_ops` line (QAT models need no calibration)", applicability=Applicability.SAFE, edits=[RemoveStatement(ops.stmt)])
            else:
                self.report(ops.node, msg, fix="Remove `target_spec.supported_ops = [...]`", applicability=Applicability.DISPLAY_ONLY)
