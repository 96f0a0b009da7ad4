"""QF402 missing-int8-op-set: a full-integer conversion without the INT8-only op set (source).

## What it does
Flags a full-integer post-training conversion (optimizations + representative dataset)
that does not restrict `target_spec.supported_ops` to `TFLITE_BUILTINS_INT8`, when the
target cannot run float ops.

## Why is this bad?
Without the INT8-only op set the converter silently keeps any op it cannot quantize in
float, wrapped in QUANTIZE/DEQUANTIZE. The file converts, and the failure shows up later:
the Edge TPU compiler cuts the graph at the first float op (everything after runs on the
CPU), a microcontroller build lacks the float kernel. With the op set, conversion fails at
once and names the op.

## Example
```python
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
```

## Use instead
```python
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
```

## Fix safety
Safe: the float model is untouched and a model that was already fully integer converts
to the same file; a model that was not now fails to convert with the op named instead of
producing a file the target cannot run. Not with `supported_types = [tf.float16]`, where
the op set makes the converter raise (QF407). Only offered when a representative dataset is set
(otherwise the op set alone makes conversion fail, see QF401) and not for QAT models (QF404).

## Targets
A target that cannot run float ops at all, so that a float fallback op is a failure and
`TFLITE_BUILTINS_INT8` is wanted (the int8 CPU runs float fallbacks and never gets it).
Not in unit tests, nor for an integer variant with float I/O when the file, or a script
beside it, also writes one with integer I/O (the CPU variant; `Activity.not_for_integer`),
when the file comments out its full-integer settings (`# converter.inference_input_type =
tf.uint8`: the author switched them off), or when the converter keeps TensorFlow ops
(`SELECT_TF_OPS`): such a model needs the CPU's Flex delegate, which no integer accelerator
has, and the INT8-only op set would make its conversion fail.
"""

from __future__ import annotations

from qfix.source.converter import INT8_OPS, ConverterAnalysis
from qfix.source.rule import InsertStatements, Invalid, Replace, SourceRule, Valid, statements
from qfix.source.util import expr
from qfix.types import Applicability



class MissingInt8OpSet(ConverterAnalysis, SourceRule):
    """Source side of QF402 missing-int8-op-set; documented once, in the module docstring
    (`qfix rule QF402`)."""

    code = "QF402"
    name = "missing-int8-op-set"
    TARGET_NEEDS = "int8_ops_only"

    _BASE = (
        "import tensorflow as tf\n"
        "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
        "converter.representative_dataset = rep\n"
    )
    VALID = [
        Valid(_BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\nm = converter.convert()\n", target="edgetpu"),
        Valid(_BASE + "m = converter.convert()\n", target="int8"),
        Valid(_BASE + "m = converter.convert()\n"),
        Valid(_BASE + "converter.target_spec.supported_ops = OPS\nm = converter.convert()\n", target="edgetpu"),
        Valid(_BASE + "converter.target_spec.supported_types = [tf.float16]\nm = converter.convert()\n", target="edgetpu"),  # the op set would raise
        Valid("import unittest\n" + _BASE + "m = converter.convert()\n", target="edgetpu"),  # a unit test
        Valid(  # absl's test module, another spelling of a test
            "from absl.testing import absltest\n" + _BASE + "m = converter.convert()\n", target="tflm",
        ),
        Valid(  # the float-fallback variant beside the full integer one (firing side: INVALID[0])
            _BASE + "a = converter.convert()\n" + _BASE.split("\n", 1)[1]
            + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
            "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\nb = converter.convert()\n",
            target="edgetpu",
        ),
        Valid(  # a model that keeps TensorFlow ops runs on the CPU's Flex delegate, never on an accelerator
            _BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]\nm = converter.convert()\n",
            target="edgetpu",
        ),
        Valid(  # the full-integer variant written and commented out (PINTO's CPU variants): float fallback chosen
            _BASE + "m = converter.convert()\n# converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n",
            target="edgetpu",
        ),
    ]
    INVALID = [
        Invalid(
            _BASE + "m = converter.convert()\n",
            target="edgetpu",
            expected=_BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\nm = converter.convert()\n",
            applicability=Applicability.SAFE,
        ),
        Invalid(
            _BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]\nm = converter.convert()\n",
            target="tflm",
            expected=_BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\nm = converter.convert()\n",
        ),
        Invalid(  # another op set that lets float kernels in
            _BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]\nm = converter.convert()\n",
            target="edgetpu",
            applicability=Applicability.DISPLAY_ONLY,
        ),
        Invalid(  # a comment that switches off no full-integer setting excuses nothing
            _BASE + "# converter.inference_type = tf.uint8 (TF1 only)\nm = converter.convert()\n",
            target="edgetpu",
            expected=_BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
            "# converter.inference_type = tf.uint8 (TF1 only)\nm = converter.convert()\n",
        ),
    ]

    def finish(self) -> None:
        for b in self.converter_blocks():
            if self.maybe_qat(b) or "representative_dataset" not in b.settings or not self.optimized(b):
                continue
            if self.float16_recipe(b):
                continue  # the INT8 op set would make the float16 recipe raise (QF407)
            if self.not_for_integer(b, details=True):
                continue
            ops = b.settings.get("target_spec.supported_ops")
            tf, imports = self.spelling("tensorflow", "tf")
            want = f"[{tf}.lite.OpsSet.TFLITE_BUILTINS_INT8]"
            msg = f"Converter `{b.var}` may leave float ops in the model; target {self.ctx.target.id} cannot run them (set supported_ops to TFLITE_BUILTINS_INT8)"  # type: ignore[union-attr]
            if ops is None:
                self.report(
                    b.settings["representative_dataset"].node, msg,
                    fix=f"Set `{b.var}.target_spec.supported_ops = {want}`", applicability=Applicability.SAFE,
                    edits=[InsertStatements(b.anchor, statements(f"{b.var}.target_spec.supported_ops = {want}\n")), *imports],
                )
                continue
            els = self.elements(ops.value)
            if els is None or INT8_OPS in els:
                continue
            if els == ["tensorflow.lite.OpsSet.TFLITE_BUILTINS"]:
                self.report(
                    ops.node, msg, fix=f"Use `{want}`", applicability=Applicability.SAFE,
                    edits=[Replace(ops.value, expr(want)), *imports],
                )
            else:
                self.report(
                    ops.node, msg + "; op sets other than TFLITE_BUILTINS_INT8 let float kernels in",
                    fix=f"Use `{want}` and replace the layers that need other ops", applicability=Applicability.DISPLAY_ONLY,
                )
