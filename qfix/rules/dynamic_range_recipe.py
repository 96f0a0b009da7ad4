"""QF401 dynamic-range-recipe: full-integer conversion without a representative dataset (source).

## What it does
Flags a TFLite converter set up with `optimizations = [tf.lite.Optimize.DEFAULT]` but no
`representative_dataset` when the model must be fully integer: a `--target` that
needs a fully integer model, or a converter that itself asks for integer ops or types
(`TFLITE_BUILTINS_INT8`, `inference_input_type = tf.uint8`, `supported_types = [tf.int8]`).
With an integer target it also flags a converter with no optimizations at all, where the file
expects an integer model from it. Converters of quantization-aware-trained models (tfmot, or
TF1's quantized inference with `quantized_input_stats`) are left to QF404.

## Why is this bad?
Without calibration data the converter can only do dynamic-range quantization: weights
become int8 but activations stay float, so the Edge TPU compiler rejects the model ("Model
not quantized") and microcontroller targets cannot run it. When integer ops or types are
requested the conversion fails outright: `ValueError: For full integer quantization, a
representative_dataset must be specified.`

## Example
```python
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
tflite = converter.convert()
```

## Use instead
```python
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset  # yields [float32 batch of 1]
tflite = converter.convert()
```

## Fix safety
Display-only by default: qfix cannot know which data is representative. When
`[tool.qfix] representative-dataset = "module.generator"` (or `"module:generator"`) names the
calibration generator, the fix inserts `converter.representative_dataset = module.generator`
and `import module` (unless the file already imports it; a bare name must be defined in the
file before the converter). When the module is neither beside the script nor installed, does
not define the generator, or the bare name is not defined, the fix stays display-only and
says why: the inserted line would end the script with NameError or ImportError. It is unsafe
because it changes the produced model from dynamic-range to full-integer (different numbers).

## Targets
A target that needs a fully integer model (its profile allows only integer activation
dtypes); without a target, any converter that itself requests integer ops or I/O types.
Quiet where the converter is not meant to make the integer model (`Activity.not_for_integer`):
a unit test, the float16 recipe, a float model with SELECT_TF_OPS, a sparse model
(`Optimize.EXPERIMENTAL_SPARSITY`), one of several variants the file writes when another is
integer, an optimized variant whose `.tflite` name says it is float / dynamic-range
(`model_weight_quant.tflite`), or a converter handed to a function that may set its recipe
(`converter = config.with_quantization(converter)`). A bare converter (no optimizations) makes
a float model, a complete deliverable for a CPU or a GPU: it is reported only where the file
expects an integer model from it - a `.tflite` name saying so (`model_int8.tflite`,
`m_full_integer_quant.tflite`, `m_edgetpu.tflite`), a read of the converted model's
`quantization` parameters, quantization-aware training, the target's compiler named in the
file (`edgetpu_compiler`), or a representative dataset configured in `[tool.qfix]`. Elsewhere the compiler of an integer target rejects the float
model loudly ("Model not quantized"), and qfix cannot tell the choice from an oversight.
"""

from __future__ import annotations

from qfix.source.converter import ConverterAnalysis
from qfix.source.importable import reference
from qfix.source.rule import AddImport, InsertStatements, Invalid, SourceRule, Valid, statements
from qfix.types import Applicability

_TEMPLATE = (
    "def representative_dataset():\n"
    "    for x in calibration_samples[:200]:  # real, preprocessed inputs, batch of 1, float32\n"
    "        yield [x[None].astype(\"float32\")]\n"
    "converter.representative_dataset = representative_dataset"
)


class DynamicRangeRecipe(ConverterAnalysis, SourceRule):
    """Source side of QF401 dynamic-range-recipe; documented once, in the module docstring
    (`qfix rule QF401`)."""

    code = "QF401"
    name = "dynamic-range-recipe"

    _BASE = (
        "import tensorflow as tf\n"
        "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    )
    VALID = [
        Valid(_BASE + "tflite = converter.convert()\n"),  # no integer target: dynamic range is a choice
        Valid(  # a QAT script converting a model passed in: cannot tell, stay quiet
            "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n\ndef export(m):\n"
            "    converter = tf.lite.TFLiteConverter.from_keras_model(m)\n"
            "    converter.optimizations = [tf.lite.Optimize.DEFAULT]\n    return converter.convert()\n\n"
            "export(tfmot.quantization.keras.quantize_model(base))\n",
            target="edgetpu",
        ),
        Valid(_BASE + "converter.representative_dataset = rep\ntflite = converter.convert()\n", target="edgetpu"),
        # gates (`Activity.not_for_integer`); the firing side of each is in INVALID
        Valid("import unittest\n" + _BASE + "tflite = converter.convert()\n", target="edgetpu"),  # a unit test
        Valid(  # the float16 recipe
            _BASE + "converter.target_spec.supported_types = [tf.float16]\ntflite = converter.convert()\n", target="edgetpu",
        ),
        Valid(  # a float post-processing model with TensorFlow ops
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(nms)\n"
            "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]\n"
            "tflite = converter.convert()\n",
            target="edgetpu",
        ),
        Valid(  # several variants, one of them integer: the float one is deliberate
            _BASE + "float_model = converter.convert()\n"
            "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\nconverter.representative_dataset = rep\n"
            "int_model = converter.convert()\n",
            target="edgetpu",
        ),
        Valid(  # the artifact names the dynamic-range variant
            _BASE + "tflite = converter.convert()\nopen(\"model_weight_quant.tflite\", \"wb\").write(tflite)\n", target="edgetpu",
        ),
        Valid(
            "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
            "q = tfmot.quantization.keras.quantize_model(model)\n"
            "converter = tf.lite.TFLiteConverter.from_keras_model(q)\n"
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\ntflite = converter.convert()\n",
            target="edgetpu",
        ),
        Valid("import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\ntflite = converter.convert()\n"),  # no integer target: a float model is a choice
        Valid(  # a float conversion nothing in the file expects to be integer (an app's model, a float demo)
            "import tensorflow as tf\n\ndef export(model):\n    conv = tf.lite.TFLiteConverter.from_keras_model(model)\n    return conv.convert()\n",
            target="edgetpu",
        ),
        Valid(  # the same, its artifact named float32
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "open(\"model_float32.tflite\", \"wb\").write(converter.convert())\n",
            target="edgetpu",
        ),
        Valid(  # a sparse model for the CPU's sparse kernels (tfmot's pruning examples)
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(pruned)\n"
            "converter.optimizations = {tf.lite.Optimize.EXPERIMENTAL_SPARSITY}\nopen('sparse_int8.tflite', 'wb').write(converter.convert())\n",
            target="edgetpu",
        ),
        Valid(  # handed to code that sets the recipe (Model Maker's QuantizationConfig)
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_saved_model(d)\n"
            "converter = config.get_converter_with_quantization(converter, spec)\nm = converter.convert()\nopen('m_int8.tflite', 'wb').write(m)\n",
            target="edgetpu",
        ),
        Valid(  # TF1's quantized inference converts a QAT model (fake-quant ranges): no dataset needed
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\nconverter.inference_type = tf.lite.constants.INT8\n"
            "converter.quantized_input_stats = {'input': (0., 1.)}\ntflite = converter.convert()\n",
            target="edgetpu",
        ),
        Valid(  # a QAT model returned by the file's own function (cluster-preserving QAT)
            "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n\ndef cqat(m):\n"
            "    return tfmot.quantization.keras.quantize_apply(m)\n\nq = cqat(base)\n"
            "converter = tf.lite.TFLiteConverter.from_keras_model(q)\nconverter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
            "tflite = converter.convert()\n",
            target="edgetpu",
        ),
    ]
    INVALID = [
        Invalid(_BASE + "tflite = converter.convert()\n", target="edgetpu", applicability=Applicability.DISPLAY_ONLY),
        Invalid(
            _BASE + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\ntflite = converter.convert()\n",
            message="representative_dataset",
        ),
        Invalid(  # the inserted name is imported: `calib` would be a NameError
            _BASE + "tflite = converter.convert()\n",
            target="int8",
            options={"representative_dataset": "calib.representative_dataset"},
            expected=_BASE.replace("tf\n", "tf\nimport calib\n\n", 1)
            + "converter.representative_dataset = calib.representative_dataset\ntflite = converter.convert()\n",
            applicability=Applicability.UNSAFE,
        ),
        Invalid(  # `package.module:object`, as --calibration spells it
            _BASE + "tflite = converter.convert()\n",
            target="edgetpu",
            options={"representative_dataset": "tools.data:calibration_gen"},
            expected=_BASE.replace("tf\n", "tf\nimport tools.data\n\n", 1)
            + "converter.representative_dataset = tools.data.calibration_gen\ntflite = converter.convert()\n",
        ),
        Invalid(  # already imported under another name: that name, no new import
            "from calib import representative_dataset as rep\n" + _BASE + "tflite = converter.convert()\n",
            target="int8",
            options={"representative_dataset": "calib.representative_dataset"},
            expected="from calib import representative_dataset as rep\n" + _BASE
            + "converter.representative_dataset = rep\ntflite = converter.convert()\n",
        ),
        Invalid(  # a bare name the file defines before the converter
            "def gen():\n    yield [x]\n" + _BASE + "tflite = converter.convert()\n",
            target="int8",
            options={"representative_dataset": "gen"},
            expected="def gen():\n    yield [x]\n" + _BASE + "converter.representative_dataset = gen\ntflite = converter.convert()\n",
        ),
        Invalid(  # a bare name nothing defines: inserting it would be a NameError
            _BASE + "tflite = converter.convert()\n",
            target="int8",
            options={"representative_dataset": "representative_dataset"},
            applicability=Applicability.DISPLAY_ONLY,
        ),
        Invalid(  # a bare converter in a file that expects an integer model: it forgot the recipe
            "import tensorflow as tf\n\ndef export(model):\n    conv = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "    open('model_int8.tflite', 'wb').write(conv.convert())\n",
            target="edgetpu",
            message="no optimizations",
        ),
        Invalid(  # ... that reads the converted model's quantization parameters
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "interpreter = tf.lite.Interpreter(model_content=converter.convert())\n"
            "scale, zero_point = interpreter.get_input_details()[0]['quantization']\n",
            target="tflm",
            message="no optimizations",
        ),
        Invalid(  # ... that runs the target's compiler
            "import subprocess\nimport tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "open('model.tflite', 'wb').write(converter.convert())\nsubprocess.run(['edgetpu_compiler', 'model.tflite'])\n",
            target="edgetpu",
            message="no optimizations",
        ),
        Invalid(  # ... in a project that configures its calibration data
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\ntflite = converter.convert()\n",
            target="edgetpu",
            options={"representative_dataset": "calib.representative_dataset"},
            message="no optimizations",
        ),
        Invalid(  # a QAT file converting a model Keras built here, not tfmot: a float model to calibrate
            "import keras\nimport tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
            "base = keras.Sequential([keras.layers.Dense(2)])\nq = tfmot.quantization.keras.quantize_model(other)\n"
            "converter = tf.lite.TFLiteConverter.from_keras_model(base)\nconverter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
            "tflite = converter.convert()\n",
            target="edgetpu",
            message="dynamic-range",
        ),
        Invalid(  # the converter's own `convert()` inside a call does not hand it away
            "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\nopen('m.tflite', 'wb').write(converter.convert())\n",
            target="edgetpu",
            message="dynamic-range",
        ),
        Invalid(  # several variants, none integer: each is reported
            _BASE + "a = converter.convert()\n" + _BASE.split("\n", 1)[1].replace("converter", "conv2") + "b = conv2.convert()\n",
            target="edgetpu",
            count=2,
        ),
        Invalid(  # an artifact name that says nothing about the recipe
            _BASE + "tflite = converter.convert()\nopen(\"model.tflite\", \"wb\").write(tflite)\n", target="edgetpu",
        ),
    ]

    def finish(self) -> None:
        tgt = self.ctx.target
        for b in self.converter_blocks():
            if self.maybe_qat(b) or "representative_dataset" in b.settings or self.not_for_integer(b):
                continue
            integer_target = tgt is not None and tgt.integer
            if not self.optimized(b):
                if integer_target and not self.full_int_requested(b):
                    self.report(
                        b.create_call,
                        f"Converter `{b.var}` has no optimizations: the model stays float, but target {tgt.id} needs a fully integer model",  # type: ignore[union-attr]
                        fix="Set `optimizations = [tf.lite.Optimize.DEFAULT]` and a `representative_dataset`",
                        applicability=Applicability.DISPLAY_ONLY,
                    )
                continue
            if not (integer_target or self.full_int_requested(b)):
                continue
            opt = b.settings["optimizations"]
            if self.full_int_requested(b):
                msg = f"Converter `{b.var}` asks for full integer quantization without a `representative_dataset` (the converter raises ValueError)"
            else:
                msg = (
                    f"`Optimize.DEFAULT` without a `representative_dataset` gives dynamic-range quantization (float activations); "
                    f"target {tgt.id} needs full integer (a QAT model needs no dataset: then ignore this line)"  # type: ignore[union-attr]
                )
            data = self.ctx.options.get("representative_dataset")
            if data:
                ref = reference(data, self.names, self.ctx.module, self.ctx.path, before=opt.stmt)
                line = f"{b.var}.representative_dataset = {ref.code}"
                if ref.problem is None:
                    imports = [AddImport(ref.module, asname=ref.asname)] if ref.module else []
                    spelled = f"import {ref.module}" + (f" as {ref.asname}" if ref.asname else "")
                    self.report(
                        opt.node, msg, fix=f"Set `{line}`" + (f" (and `{spelled}`)" if ref.module else ""),
                        applicability=Applicability.UNSAFE, edits=[InsertStatements(opt.stmt, statements(line + "\n")), *imports],
                    )
                else:
                    self.report(
                        opt.node, msg, fix=f"Set `{line}`; qfix does not insert it: {ref.problem}",
                        applicability=Applicability.DISPLAY_ONLY,
                    )
                continue
            self.report(
                opt.node, msg,
                fix="Add a representative dataset (or name one in [tool.qfix] representative-dataset):\n" + _TEMPLATE.replace("converter", b.var),
                applicability=Applicability.DISPLAY_ONLY,
            )
