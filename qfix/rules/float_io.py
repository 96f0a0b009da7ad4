"""QF403 float-io: float model I/O for a target that wants integer I/O (source).

## What it does
Flags a full-integer conversion (representative dataset, or a QAT model, with
`Optimize.DEFAULT`) that leaves `inference_input_type` / `inference_output_type` unset (or
float32) when the target wants integer I/O (uint8 on the Edge TPU).

## Why is this bad?
Both default to `tf.float32` even with `TFLITE_BUILTINS_INT8`, so the model starts with a
QUANTIZE and ends with a DEQUANTIZE op that work on float: the Edge TPU compiler leaves them
on the CPU ("Operation is working on an unsupported data type") and the application keeps
feeding float data it could have fed as raw bytes.

## Example
```python
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
```

## Use instead
```python
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
converter.inference_input_type = tf.uint8
converter.inference_output_type = tf.uint8
```

Not with `supported_types = [tf.float16]`: that recipe rejects integer I/O (QF407).

## Fix safety
Unsafe: it changes the model's interface. Callers must then quantize inputs with the input
tensor's scale and zero point and dequantize outputs (`get_input_details()[0]["quantization"]`).

## Targets
A target whose profile sets an integer I/O type (`io_dtype`); the fix writes that type.
Not in unit tests, nor for a float-I/O variant when the file, or a script beside it in the
same folder, also writes one with integer I/O, when the file comments out its integer I/O
settings (the author switched them off), or when the converter keeps TensorFlow ops
(`SELECT_TF_OPS`, a CPU model for the Flex delegate) (`Activity.not_for_integer`).
"""

from __future__ import annotations

from qfix.source.converter import ConverterAnalysis
from qfix.source.rule import InsertStatements, Invalid, Replace, SourceRule, Valid, statements
from qfix.source.util import expr
from qfix.types import Applicability


class FloatIo(ConverterAnalysis, SourceRule):
    """Source side of QF403 float-io; documented once, in the module docstring
    (`qfix rule QF403`)."""

    code = "QF403"
    name = "float-io"
    TARGET_NEEDS = "io_dtype"

    _BASE = (
        "import tensorflow as tf\n"
        "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
        "converter.representative_dataset = rep\n"
    )
    _IO = "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\n"
    VALID = [
        Valid(_BASE + "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\nm = converter.convert()\n", target="edgetpu"),
        Valid(_BASE + "m = converter.convert()\n", target="int8"),
        Valid(_BASE + "m = converter.convert()\n"),
        Valid("import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\nconverter.optimizations = [tf.lite.Optimize.DEFAULT]\nm = converter.convert()\n", target="edgetpu"),
        Valid(_BASE + "converter.target_spec.supported_types = [tf.float16]\nm = converter.convert()\n", target="edgetpu"),  # uint8 I/O would raise
        Valid("import unittest\n" + _BASE + "m = converter.convert()\n", target="edgetpu"),  # a unit test
        Valid(  # an integer model with float I/O beside one with uint8 I/O: a deliberate variant
            _BASE + "float_io = converter.convert()\n" + _BASE.split("\n", 1)[1]
            + "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\nuint8_io = converter.convert()\n",
            target="edgetpu",
        ),
        Valid(  # the same, the integer-I/O variant's type chosen at run time (`--output-type uint8`)
            _BASE + "float_io = converter.convert()\n" + _BASE.split("\n", 1)[1]
            + "converter.inference_input_type = io_type\nconverter.inference_output_type = io_type\nq = converter.convert()\n",
            target="edgetpu",
        ),
        Valid(  # integer input, the output type written and commented out: a float output chosen
            _BASE + "converter.inference_input_type = tf.uint8\n# converter.inference_output_type = tf.int8\nm = converter.convert()\n",
            target="edgetpu",
        ),
        Valid(  # a CPU model with TensorFlow ops (SELECT_TF_OPS): the Flex delegate runs float ops anyway
            _BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.SELECT_TF_OPS]\n"
            "m = converter.convert()\n",
            target="edgetpu",
        ),
    ]
    INVALID = [
        Invalid(
            _BASE + "m = converter.convert()\n",
            target="edgetpu",
            expected=_BASE + "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\nm = converter.convert()\n",
            applicability=Applicability.UNSAFE,
        ),
        Invalid(  # the output type set, only a float comment about it: still float output
            _BASE + "converter.inference_input_type = tf.uint8\n# the output stays float32 for the decoder\nm = converter.convert()\n",
            target="edgetpu",
            message="inference_output_type",
            expected=_BASE + "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\n"
            "# the output stays float32 for the decoder\nm = converter.convert()\n",
        ),
        Invalid(
            _BASE + "converter.inference_input_type = tf.int8\nm = converter.convert()\n",
            target="tflm",
            expected=_BASE + "converter.inference_input_type = tf.int8\nconverter.inference_output_type = tf.int8\nm = converter.convert()\n",
        ),
        Invalid(
            _BASE + "converter.inference_input_type = tf.float32\nconverter.inference_output_type = tf.uint8\nm = converter.convert()\n",
            target="edgetpu",
            expected=_BASE + "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\nm = converter.convert()\n",
        ),
        Invalid(  # two integer variants, neither with integer I/O: both reported
            _BASE + "a = converter.convert()\n" + _BASE.split("\n", 1)[1] + "b = converter.convert()\n",
            target="edgetpu",
            count=2,
            expected=(_BASE + _IO + "a = converter.convert()\n" + _BASE.split("\n", 1)[1] + _IO + "b = converter.convert()\n"),
        ),
    ]

    def finish(self) -> None:
        tgt = self.ctx.target
        if tgt is None or tgt.io_dtype is None:
            return
        for b in self.converter_blocks():
            if not self.optimized(b) or not (b.qat or "representative_dataset" in b.settings):
                continue
            if self.float16_recipe(b):
                continue  # integer I/O would make the float16 recipe raise (QF407)
            if self.not_for_integer(b, details=True):
                continue
            tf, imports = self.spelling("tensorflow", "tf")
            want = f"{tf}.{tgt.io_dtype}"
            missing, edits, where = [], [], None
            for key in ("inference_input_type", "inference_output_type"):
                s = b.settings.get(key)
                if s is None:
                    missing.append(key)
                    edits.append(InsertStatements(b.anchor, statements(f"{b.var}.{key} = {want}\n")))
                elif self.names.canon(s.value) == "tensorflow.float32":
                    missing.append(key)
                    edits.append(Replace(s.value, expr(want)))
                    where = where or s.node
            if not missing:
                continue
            self.report(
                where or b.settings.get("representative_dataset", b.settings["optimizations"]).node,
                f"Converter `{b.var}` leaves {' and '.join(missing)} float32: target {tgt.id} wants {tgt.io_dtype} I/O",
                fix=f"Set {' and '.join(missing)} to `{want}`",
                applicability=Applicability.UNSAFE,
                edits=[*edits, *imports],
            )
