"""QF407 converter-settings: converter settings the installed TFLite converter rejects (source).

## What it does
Reads a `TFLiteConverter`'s settings as a whole — `optimizations`, `representative_dataset`,
`target_spec.supported_ops`, `target_spec.supported_types`, `inference_input_type`,
`inference_output_type` — and checks the combination against a table of what the installed
converter (TF 2.21) does with it. It flags every combination the converter rejects, with the
error it raises, and the one it accepts without doing what it asks: a representative dataset
(with or without the INT8 op set) but no `optimizations` gives a float model. With a target that needs a fully
integer model it also flags the float16 recipe (`supported_types = [tf.float16]`), which the
converter accepts but which keeps activations float.

| settings | TF 2.21 |
|---|---|
| INT8 op set + `supported_types` other than `[tf.int8]` (`[tf.float16]`) | `ValueError: As full integer quantization has been enabled ...` |
| INT8 op set or `supported_types=[tf.int8]`, no dataset, no optimizations | `ValueError: For full integer quantization, a representative_dataset must be specified.` |
| integer I/O types without full integer quantization (no `optimizations`, no dataset, or `supported_types=[tf.float16]`) | `ValueError: The inference_input_type and inference_output_type must be tf.float32.` |
| the 16x8 op set with int8/uint8 I/O | `ValueError: ... must be in ['tf.float32', 'tf.int16'].` |
| int16 I/O without the 16x8 op set | `ValueError: Unsupported inference_input_type value ...` |
| a dataset (and the INT8 op set), no optimizations | no error: a float model (the dataset is ignored) |

The table lives in `qfix.source.converter.CONVERTER_TABLE`; a TensorFlow test runs the real
converter on every row.

## Why is this bad?
The recipes in the TFLite docs (dynamic range, float16, full integer, 16x8) share settings,
and a mix of two fails at `convert()` — after the training run that produced the model — or,
worse, converts to a float model the integer target cannot run.

## Example
```python
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.representative_dataset = representative_dataset
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
```

## Use instead
```python
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
```

## Fix safety
Where `optimizations = [tf.lite.Optimize.DEFAULT]` is what makes the combination valid, the
fix inserts it: safe when the converter raised (nothing was produced before), unsafe when it
silently made a float model (the model becomes integer: different numbers). The other rows
need a choice between two recipes and are display-only, except the float16 recipe for an
integer target, where removing `supported_types` is the fix (unsafe: the model becomes
integer). A missing representative dataset
with `optimizations` set is QF401's (QF404's for QAT models), not reported twice.

## Targets
Every target, and none: the converter rejects these settings whatever the model runs on.
The float16 recipe is flagged for targets that need a fully integer model when a dataset
shows an integer model was meant (without one, float16 is a chosen recipe:
`Activity.not_for_integer`). Not in unit tests, which build rejected combinations on purpose.
"""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from qfix.source.converter import TABLE_VERSION, ConverterAnalysis, ConverterBlock, ConverterSettings, table_verdict
from qfix.source.rule import InsertStatements, Invalid, RemoveStatement, Replace, SourceRule, Valid, statements
from qfix.types import Applicability

TF = "TF " + TABLE_VERSION.split()[-1]  # the converter the table holds for, as messages name it

# where a row is reported: the setting that names the rejected choice
_WHERE = {
    "int8-ops-with-other-types": "target_spec.supported_types",
    "integer-io-without-integer-quantization": "inference_input_type",
    "16x8-with-8-bit-io": "inference_input_type",
    "int16-io-without-16x8": "inference_input_type",
    "dataset-without-optimizations": "representative_dataset",
}
_HINT = {
    "int8-ops-with-other-types": "Remove `supported_types` (the INT8 op set quantizes to int8), or drop the INT8 op set for the float16 recipe",
    "int8-without-dataset": "Set `optimizations = [tf.lite.Optimize.DEFAULT]` and a `representative_dataset` (calibration data)",
    "16x8-with-8-bit-io": "The 16x8 op set takes int16 or float32 I/O: set the I/O types to `tf.int16`, or use the INT8 op set",
    "int16-io-without-16x8": "int16 I/O needs the 16x8 op set (`EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`); with 8-bit ops use `tf.int8` or `tf.uint8`",
}


class ConverterSettingsRule(ConverterAnalysis, SourceRule):
    """Source side of QF407 converter-settings; documented once, in the module docstring
    (`qfix rule QF407`)."""

    code = "QF407"
    name = "converter-settings"

    _HEAD = "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
    _OPT = "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    _DS = "converter.representative_dataset = representative_dataset\n"
    _INT8 = "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
    _IO8 = "converter.inference_input_type = tf.int8\nconverter.inference_output_type = tf.int8\n"
    _END = "tflite_model = converter.convert()\n"
    VALID = [
        Valid(  # the helper returns a converter the caller completes: accepted as a whole
            "import tensorflow as tf\ndef make(model):\n    c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "    c.optimizations = [tf.lite.Optimize.DEFAULT]\n    c.representative_dataset = rep\n    return c\n"
            "converter = make(model)\nsetattr(converter, \"inference_input_type\", tf.int8)\nconverter.convert()\n"
        ),
        Valid(  # a setting changed in place: not read as "not set" (unknown)
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "converter.optimizations.add(tf.lite.Optimize.DEFAULT)\nconverter.representative_dataset = rep\n"
            "converter.inference_input_type = tf.int8\nconverter.convert()\n"
        ),
        Valid(  # a helper called before its definition: not followed, not judged (unknown)
            "import tensorflow as tf\ndef main():\n    converter = make(model)\n    converter.inference_input_type = tf.int8\n"
            "    converter.convert()\ndef make(model):\n    c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "    c.representative_dataset = rep\n    return c\n"
        ),
        Valid(_HEAD + _OPT + _DS + _INT8 + _IO8 + _END),
        Valid(_HEAD + _OPT + _DS + _INT8 + _IO8 + _END, target="int8"),
        Valid(_HEAD + _OPT + "converter.target_spec.supported_types = [tf.float16]\n" + _END),  # the float16 recipe
        Valid(  # the float16 recipe without a dataset: chosen, even for an integer target
            _HEAD + _OPT + "converter.target_spec.supported_types = [tf.float16]\n" + _END, target="edgetpu",
        ),
        Valid("import unittest\n" + _HEAD + _DS + _INT8 + _IO8 + _END, target="int8"),  # a unit test (assertRaises)
        Valid(  # float16 with a dataset, in a file naming its artifact float16 (firing side: the last-but-one INVALID)
            _HEAD + _OPT + _DS + "converter.target_spec.supported_types = [tf.float16]\n" + _END
            + "open('model_float16_quant.tflite', 'wb').write(tflite_model)\n",
            target="edgetpu",
        ),
        Valid(_HEAD + _OPT + _INT8 + _IO8 + _END),  # no dataset with optimizations: QF401's finding
        Valid(  # a QAT model brings its own ranges
            "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
            "q = tfmot.quantization.keras.quantize_model(model)\n"
            "converter = tf.lite.TFLiteConverter.from_keras_model(q)\n" + _OPT
            + "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\n" + _END
        ),
        Valid(  # QAT with the INT8 op set and no dataset: QF404's finding
            "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
            "q = tfmot.quantization.keras.quantize_model(model)\n"
            "converter = tf.lite.TFLiteConverter.from_keras_model(q)\n" + _OPT + _INT8 + _IO8 + _END
        ),
        Valid(_HEAD + _DS + _INT8 + "converter.inference_input_type = io_type\n" + _END),  # not a literal
        Valid(
            _HEAD + _OPT + _DS
            + "converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]\n"
            "converter.inference_input_type = tf.int16\nconverter.inference_output_type = tf.int16\n" + _END
        ),
    ]
    INVALID = [
        Invalid(  # an empty `optimizations` already there: the line goes after it (above it, it lost)
            _HEAD + "converter.optimizations = []\n" + _DS + _INT8 + _IO8 + _END,
            _HEAD + "converter.optimizations = []\n" + _OPT + _DS + _INT8 + _IO8 + _END,
            applicability=Applicability.SAFE, target="int8", count=1,
        ),
        # the smallest input: TF raises "... must be tf.float32"
        Invalid(
            _HEAD + _DS + _INT8 + _IO8 + _END,
            expected=_HEAD + _OPT + _DS + _INT8 + _IO8 + _END,
            applicability=Applicability.SAFE,
            target="int8",
            message="must be tf.float32",
        ),
        Invalid(  # uint8 I/O, no INT8 op set, another spelling of the converter and of tf
            "from tensorflow import lite\nimport tensorflow\nconv = lite.TFLiteConverter.from_keras_model(m)\n"
            "conv.representative_dataset = rep\nconv.inference_input_type = tensorflow.uint8\n"
            "conv.inference_output_type = tensorflow.uint8\nconv.convert()\n",
            expected="from tensorflow import lite\nimport tensorflow\nconv = lite.TFLiteConverter.from_keras_model(m)\n"
            "conv.optimizations = [tensorflow.lite.Optimize.DEFAULT]\n"
            "conv.representative_dataset = rep\nconv.inference_input_type = tensorflow.uint8\n"
            "conv.inference_output_type = tensorflow.uint8\nconv.convert()\n",
            target="edgetpu",
        ),
        Invalid(  # accepted, but a float model
            _HEAD + _DS + _INT8 + _END,
            expected=_HEAD + _OPT + _DS + _INT8 + _END,
            applicability=Applicability.UNSAFE,
            message="float model",
        ),
        Invalid(  # a dataset alone, for the Edge TPU: a float model
            _HEAD + _DS + _END,
            expected=_HEAD + _OPT + _DS + _END,
            target="edgetpu",
            applicability=Applicability.UNSAFE,
            message="ignores the dataset",
        ),
        Invalid(  # uint8 I/O without a dataset and without optimizations
            _HEAD + "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\n" + _END,
            applicability=Applicability.DISPLAY_ONLY,
            message="must be tf.float32",
        ),
        Invalid(  # the int16x8 op set with int8 I/O
            _HEAD + _OPT + _DS
            + "converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]\n"
            + _IO8 + _END,
            applicability=Applicability.DISPLAY_ONLY,
            message="['tf.float32', 'tf.int16']",
        ),
        Invalid(  # the float16 recipe mixed with integer I/O
            _HEAD + _OPT + _DS + "converter.target_spec.supported_types = [tf.float16]\n" + _IO8 + _END,
            applicability=Applicability.DISPLAY_ONLY,
            message="float16",
        ),
        Invalid(  # the float16 recipe mixed with the INT8 op set
            _HEAD + _OPT + _DS + _INT8 + "converter.target_spec.supported_types = [tf.float16]\n" + _END,
            applicability=Applicability.DISPLAY_ONLY,
            message="supported_types",
        ),
        Invalid(  # accepted, but the float16 recipe for an integer target
            _HEAD + _OPT + _DS + "converter.target_spec.supported_types = [tf.float16]\n" + _END,
            expected=_HEAD + _OPT + _DS + _END,
            target="edgetpu",
            applicability=Applicability.UNSAFE,
            message="float16 recipe",
        ),
        # issue 11 (b): settings through setattr, `from tensorflow import lite`, `import tensorflow.lite as tfl`
        Invalid(
            "import tensorflow as tf2\nfrom tensorflow import lite\nconv = lite.TFLiteConverter.from_keras_model(model)\n"
            "setattr(conv, \"representative_dataset\", rep)\nconv.target_spec.supported_ops = [lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
            "setattr(conv, \"inference_input_type\", tf2.uint8)\nconv.inference_output_type = tf2.uint8\nconv.convert()\n",
            expected="import tensorflow as tf2\nfrom tensorflow import lite\nconv = lite.TFLiteConverter.from_keras_model(model)\n"
            "conv.optimizations = [tf2.lite.Optimize.DEFAULT]\n"
            "setattr(conv, \"representative_dataset\", rep)\nconv.target_spec.supported_ops = [lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
            "setattr(conv, \"inference_input_type\", tf2.uint8)\nconv.inference_output_type = tf2.uint8\nconv.convert()\n",
            applicability=Applicability.SAFE, target="int8", message="must be tf.float32",
        ),
        Invalid(
            "import tensorflow.lite as tfl\nimport tensorflow as tf\nc = tfl.TFLiteConverterV2.from_saved_model(\"sm\")\n"
            "setattr(c.target_spec, \"supported_ops\", [tfl.OpsSet.TFLITE_BUILTINS_INT8])\nc.representative_dataset = rep\n"
            "setattr(c, \"inference_output_type\", tf.int8)\nc.convert()\n",
            expected="import tensorflow.lite as tfl\nimport tensorflow as tf\nc = tfl.TFLiteConverterV2.from_saved_model(\"sm\")\n"
            "c.optimizations = [tf.lite.Optimize.DEFAULT]\n"
            "setattr(c.target_spec, \"supported_ops\", [tfl.OpsSet.TFLITE_BUILTINS_INT8])\nc.representative_dataset = rep\n"
            "setattr(c, \"inference_output_type\", tf.int8)\nc.convert()\n",
            applicability=Applicability.SAFE, target="int8", message="must be tf.float32",
        ),
        Invalid(  # `lite = tf.lite`, and the converter class from its defining module
            "import tensorflow as tf\nfrom tensorflow.lite.python.lite import TFLiteConverterV2\nlite = tf.lite\n"
            "conv = TFLiteConverterV2.from_keras_model(model)\nconv.representative_dataset = rep\n"
            "conv.target_spec.supported_ops = [lite.OpsSet.TFLITE_BUILTINS_INT8]\nconv.inference_input_type = tf.int8\nconv.convert()\n",
            expected="import tensorflow as tf\nfrom tensorflow.lite.python.lite import TFLiteConverterV2\nlite = tf.lite\n"
            "conv = TFLiteConverterV2.from_keras_model(model)\nconv.optimizations = [tf.lite.Optimize.DEFAULT]\nconv.representative_dataset = rep\n"
            "conv.target_spec.supported_ops = [lite.OpsSet.TFLITE_BUILTINS_INT8]\nconv.inference_input_type = tf.int8\nconv.convert()\n",
            applicability=Applicability.SAFE, message="must be tf.float32",
        ),
        Invalid(  # the helper sets the dataset, the caller the op set and the I/O types (issue 11 (c))
            "import tensorflow as tf\ndef make(model):\n    c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "    c.representative_dataset = rep\n    return c\nconverter = make(model)\n"
            "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
            "converter.inference_input_type = tf.int8\nconverter.inference_output_type = tf.int8\nconverter.convert()\n",
            expected="import tensorflow as tf\ndef make(model):\n    c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "    c.representative_dataset = rep\n    return c\nconverter = make(model)\n"
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
            "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
            "converter.inference_input_type = tf.int8\nconverter.inference_output_type = tf.int8\nconverter.convert()\n",
            applicability=Applicability.SAFE, message="must be tf.float32", count=1,
        ),
        Invalid(  # and the other way round: the helper's optimizations are not there in the caller
            "import tensorflow as tf\ndef make(model):\n    c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "    c.inference_input_type = tf.uint8\n    c.inference_output_type = tf.uint8\n    return c\n"
            "def main():\n    conv = make(model)\n    conv.representative_dataset = rep\n    conv.convert()\n",
            expected="import tensorflow as tf\ndef make(model):\n    c = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "    c.inference_input_type = tf.uint8\n    c.inference_output_type = tf.uint8\n    return c\n"
            "def main():\n    conv = make(model)\n    conv.optimizations = [tf.lite.Optimize.DEFAULT]\n"
            "    conv.representative_dataset = rep\n    conv.convert()\n",
            applicability=Applicability.SAFE, message="must be tf.float32", count=1,
        ),
        # issue 11 (d): `optimizations = None` raises TypeError, whatever else is set
        Invalid(
            _HEAD + "converter.optimizations = None\n" + _DS + _INT8 + _IO8 + _END,
            expected=_HEAD + _OPT + _DS + _INT8 + _IO8 + _END,
            applicability=Applicability.SAFE, message="TypeError: argument of type 'NoneType' is not iterable",
        ),
        Invalid(  # the default is a set: `.append` raises AttributeError
            _HEAD + "converter.optimizations.append(tf.lite.Optimize.DEFAULT)\n" + _DS + _END,
            expected=_HEAD + "converter.optimizations.add(tf.lite.Optimize.DEFAULT)\n" + _DS + _END,
            applicability=Applicability.SAFE, message="'set' object has no attribute 'append'",
        ),
        Invalid(  # a float model: None meant no optimization
            _HEAD + "setattr(converter, \"optimizations\", None)\n" + _END,
            expected=_HEAD + "setattr(converter, \"optimizations\", [])\n" + _END,
            applicability=Applicability.SAFE, message="`optimizations = None`",
        ),
        Invalid(  # int16 I/O with the 8-bit op set
            _HEAD + _OPT + _DS + _INT8 + "converter.inference_input_type = tf.int16\n" + _END,
            message="tf.int16",
        ),
    ]

    def finish(self) -> None:
        if self.ctx.activity.test:
            return  # a unit test may build a rejected combination on purpose (assertRaises)
        for b in self.converter_blocks():
            for call in b.list_calls:
                self._report_list_call(b, call)
            s = self.settings_of(b)
            if s is None:
                continue
            if s.optimized and not s.dataset and (not s.integer_model or s.ops == {"TFLITE_BUILTINS_INT8"}):
                # a missing dataset is QF401's finding (QF404's for a QAT model with the INT8
                # op set); judge the rest as if it were there
                s = replace(s, dataset=True)
            row = table_verdict(s)
            if row is not None:
                self._report(b, s, row)
            elif self._float16_for_integer_target(s) and not self.not_for_integer(b):
                self._report_float16(b)

    def _float16_for_integer_target(self, s: ConverterSettings) -> bool:
        tgt = self.ctx.target
        return tgt is not None and tgt.integer and s.optimized and "float16" in (s.types or ()) and not s.int16x8

    def _report_float16(self, b: ConverterBlock) -> None:
        types = b.settings["target_spec.supported_types"]
        msg = (
            f"Converter `{b.var}`: `supported_types = [tf.float16]` is the float16 recipe (float16 weights, float "
            f"activations); target {self.ctx.target.id} needs a fully integer model"  # type: ignore[union-attr]
        )
        if len(types.stmt.body) == 1:
            self.report(
                types.node, msg, fix="Remove the `supported_types` line (full integer quantization with the dataset)",
                applicability=Applicability.UNSAFE, edits=[RemoveStatement(types.stmt)],
            )
        else:
            self.report(types.node, msg, fix="Remove `supported_types = [tf.float16]`", applicability=Applicability.DISPLAY_ONLY)

    def _report(self, b: ConverterBlock, s: ConverterSettings, row) -> None:
        if row.key == "optimizations-none":
            self._report_none(b, s, row)
            return
        setting = b.settings.get(_WHERE.get(row.key, "")) or b.settings.get("inference_output_type")
        node = setting.node if setting is not None else b.create_call
        if row.error is None:
            msg = f"Converter `{b.var}`: {TF} accepts these settings but makes {row.result}"
        else:
            msg = f"Converter `{b.var}`: these settings make {TF} raise `{row.error}`"
        if not s.optimized and table_verdict(replace(s, optimized=True)) is None:
            tf, imports = self.spelling("tensorflow", "tf")
            line = f"{b.var}.optimizations = [{tf}.lite.Optimize.DEFAULT]"
            self.report(
                node, msg + ("" if row.error is None else " (no `optimizations`: not a full integer conversion)"),
                fix=f"Set `{line}`",
                applicability=Applicability.SAFE if row.error is not None else Applicability.UNSAFE,
                # after an `optimizations = []` the script already has, which would otherwise win
                edits=[InsertStatements(_anchor(b), statements(line + "\n")), *imports],
            )
            return
        hint = _HINT.get(row.key)
        if hint is None:  # integer I/O without full integer quantization
            if "float16" in (s.types or ()) and s.optimized and s.dataset:
                msg += " (`supported_types = [tf.float16]` is the float16 recipe)"
                hint = "float16 quantization keeps float32 I/O: remove `supported_types = [tf.float16]` for an integer model, or leave the I/O types float32"
            else:
                msg += " (no representative dataset: not a full integer conversion)"
                hint = "Integer I/O needs full integer quantization: set `optimizations` and a `representative_dataset`, or leave the I/O types float32"
        self.report(node, msg, fix=hint, applicability=Applicability.DISPLAY_ONLY)


    def _report_list_call(self, b: ConverterBlock, call: cst.Call) -> None:
        """`converter.optimizations.append(...)` on the default: a set in TF 2.21."""
        method = call.func.attr.value  # type: ignore[attr-defined]
        instead = {"append": "add", "extend": "update"}.get(method)
        if instead is None:
            return  # add / update / discard: set methods, they work
        msg = (
            f"Converter `{b.var}`: `optimizations` is a set until the script assigns it ({TF}), so "
            f"`.{method}(...)` raises `AttributeError: 'set' object has no attribute '{method}'`"
        )
        self.report(
            call, msg, fix=f"Use `.{instead}(...)`", applicability=Applicability.SAFE,
            edits=[Replace(call.func, call.func.with_changes(attr=cst.Name(instead)))],  # type: ignore[attr-defined]
        )

    def _report_none(self, b: ConverterBlock, s: ConverterSettings, row) -> None:
        """`optimizations = None`: a list that keeps the rest valid, `[]` (what None meant: no
        optimization) when the rest converts without, else `[DEFAULT]` when that makes it valid."""
        opt = b.settings["optimizations"]
        msg = f"Converter `{b.var}`: `optimizations = None` makes {TF} raise `{row.error}` (the converter reads it as a list)"
        plain = replace(s, optimizations_none=False)
        if table_verdict(plain) is None:
            new, imports, why = "[]", [], "no optimization, as `None` meant"
        elif table_verdict(replace(plain, optimized=True)) is None:
            tf, imports = self.spelling("tensorflow", "tf")
            new, why = f"[{tf}.lite.Optimize.DEFAULT]", "what the other settings need"
        else:
            self.report(opt.node, msg, fix="Give `optimizations` a list (`[tf.lite.Optimize.DEFAULT]` for an integer model)",
                        applicability=Applicability.DISPLAY_ONLY)
            return
        self.report(
            opt.node, msg, fix=f"Set `{b.var}.optimizations = {new}` ({why})", applicability=Applicability.SAFE,
            edits=[Replace(opt.value, cst.parse_expression(new)), *imports],
        )


def _anchor(b: ConverterBlock):
    """The statement the `optimizations` line goes after: the script's own `optimizations = ...`
    (an empty list there would override a line inserted above it), else the converter's creation."""
    opt = b.settings.get("optimizations")
    return opt.stmt if opt is not None and opt.stmt is not None else b.create_stmt
