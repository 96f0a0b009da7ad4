"""QF204 nonexistent-quantize-api: quantization APIs that do not exist (source).

## What it does
Flags quantization APIs that do not exist but are common in advice found online and in
generated code: `tf.keras.layers.Quantize` / `Dequantize` (and `from tensorflow.keras.layers
import Quantize`), `keras.quantization.quantize_model`, `tfmot.quantization.quantize_model`
(missing `.keras`), `tf.lite.constants.INT8` (TF1 only), `OpsSet.TFLITE_BUILTINS_UINT8`,
`TFLiteConverter.from_keras_model_file` (TF1 only).

## Why is this bad?
The script dies with `AttributeError` / `ImportError` before anything is quantized, and
the usual reaction (guessing other names) leads nowhere: quantization in Keras is done to
the whole model by tfmot (QAT) or by the TFLite converter (post-training).

## Example
```python
import tensorflow_model_optimization as tfmot
q = tfmot.quantization.quantize_model(model)
converter.inference_input_type = tf.lite.constants.INT8
```

## Use instead
```python
q = tfmot.quantization.keras.quantize_model(model)
converter.inference_input_type = tf.int8
```

## Fix safety
Safe where the real API is the same function under its right name (the `.keras` path in
tfmot, `tf.lite.constants.X` -> `tf.x`, `TFLITE_BUILTINS_UINT8` -> `TFLITE_BUILTINS_INT8`).
Unsafe where the replacement adds a dependency (`keras.quantization.quantize_model` ->
`tfmot.quantization.keras.quantize_model`: tfmot only accepts tf_keras models, see QF501).
Display-only for `layers.Quantize` and friends: there is no layer to swap in.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

import libcst as cst

from qfix.source.names import canonical, dotted
from qfix.source.rule import AddImport, Invalid, Replace, SourceRule, Valid
from qfix.source.util import expr
from qfix.types import Applicability

_ADVICE = (
    "Keras has no quantize layer: quantize the whole model with "
    "`tfmot.quantization.keras.quantize_model` (quantization-aware training) or with the TFLite "
    "converter (post-training: `optimizations=[tf.lite.Optimize.DEFAULT]` + `representative_dataset`)"
)
# canonical name -> advice, for names with no drop-in replacement
NO_REPLACEMENT = {
    f"keras.layers.{n}": _ADVICE
    for n in ("Quantize", "Dequantize", "QuantizeLayer", "QuantizationLayer", "FakeQuant", "Quantization", "QuantizeAndDequantize")
}
NO_REPLACEMENT.update(
    {
        "tensorflow.lite.TFLiteConverter.from_keras_model_file": (
            "`from_keras_model_file` exists only in the TF1 API: load the model and use "
            "`tf.lite.TFLiteConverter.from_keras_model(model)`"
        ),
        "tensorflow.lite.TocoConverter": "TocoConverter was removed: use `tf.lite.TFLiteConverter`",
    }
)
_TFMOT_KERAS_API = (
    "quantize_model", "quantize_annotate_layer", "quantize_annotate_model", "quantize_apply",
    "quantize_scope", "QuantizeConfig", "QuantizeWrapper", "QuantizeWrapperV2", "default_8bit",
    "quantizers", "experimental", "fix_input_output_range", "remove_input_range",
)
# canonical name -> (canonical replacement, applicability)
REPLACEMENTS: dict[str, tuple[str, Applicability]] = {
    f"tfmot.quantization.{n}": (f"tfmot.quantization.keras.{n}", Applicability.SAFE) for n in _TFMOT_KERAS_API
}
for _wrong in (
    "keras.quantization.quantize_model", "keras.quantize_model", "keras.models.quantize_model",
    "keras.utils.quantize_model", "tensorflow.quantization.quantize_model", "tensorflow.lite.quantize_model",
    "tensorflow.quantization.keras.quantize_model", "tensorflow.keras.quantization.quantize_model",
):
    REPLACEMENTS[_wrong] = ("tfmot.quantization.keras.quantize_model", Applicability.UNSAFE)
REPLACEMENTS["tensorflow.lite.OpsSet.TFLITE_BUILTINS_UINT8"] = ("tensorflow.lite.OpsSet.TFLITE_BUILTINS_INT8", Applicability.SAFE)
# tf.lite.constants is TF1 only: the dtypes are plain tf dtypes in TF2
_CONSTANTS = {
    "INT8": "int8", "QUANTIZED_UINT8": "uint8", "UINT8": "uint8", "FLOAT": "float32",
    "FLOAT16": "float16", "INT16": "int16", "INT32": "int32", "INT64": "int64", "STRING": "string",
}
for _k, _v in _CONSTANTS.items():
    REPLACEMENTS[f"tensorflow.lite.constants.{_k}"] = (f"tensorflow.{_v}", Applicability.SAFE)

_LAST = {k.rsplit(".", 1)[-1] for k in (*NO_REPLACEMENT, *REPLACEMENTS)}
_MODULE_SPELLING = {
    "tfmot": ("tensorflow_model_optimization", "tfmot"),
    "tensorflow": ("tensorflow", "tf"),
}


class NonexistentQuantizeApi(SourceRule):
    """Source side of QF204 nonexistent-quantize-api; documented once, in the module docstring
    (`qfix rule QF204`)."""

    code = "QF204"
    name = "nonexistent-quantize-api"
    TRIGGERS = (
        "Quantize", "Dequantize", "FakeQuant", "Quantization", "quantize_", "lite.constants",
        "lite import constants", "UINT8", "from_keras_model_file", "TocoConverter", "quantization.",
    )

    VALID = [
        Valid("import tensorflow_model_optimization as tfmot\nq = tfmot.quantization.keras.quantize_model(m)\n"),
        Valid("import tensorflow as tf\nc.inference_input_type = tf.int8\n"),
        Valid("import tensorflow as tf\nc = tf.compat.v1.lite.TFLiteConverter.from_keras_model_file('m.h5')\nx = tf.compat.v1.lite.constants.INT8\n"),
        Valid("import tensorflow as tf\ny = tf.quantization.quantize(x, 0.0, 1.0, tf.quint8)\n"),
        Valid("from mylib.layers import Quantize\nQuantize()\n"),
        Valid(
            "import tensorflow as tf\nif not compat.is_v1_apis():\n    c = tf.lite.TFLiteConverter.from_keras_model(m)\n"
            "else:\n    c = tf.lite.TFLiteConverter.from_keras_model_file(f)\n    c.inference_type = tf.lite.constants.INT8\n"
        ),
    ]
    INVALID = [
        Invalid(
            "import tensorflow_model_optimization as tfmot\nq = tfmot.quantization.quantize_model(m)\n",
            expected="import tensorflow_model_optimization as tfmot\nq = tfmot.quantization.keras.quantize_model(m)\n",
            applicability=Applicability.SAFE,
        ),
        Invalid(
            "import tensorflow as tf\nc.inference_input_type = tf.lite.constants.INT8\nc.inference_output_type = tf.lite.constants.QUANTIZED_UINT8\n",
            expected="import tensorflow as tf\nc.inference_input_type = tf.int8\nc.inference_output_type = tf.uint8\n",
            applicability=Applicability.SAFE,
            count=2,
        ),
        Invalid(
            "from tensorflow.lite import constants\nc.inference_input_type = constants.INT8\n",
            expected="from tensorflow.lite import constants\nimport tensorflow as tf\n\nc.inference_input_type = tf.int8\n",
            applicability=Applicability.SAFE,
        ),
        Invalid(
            "import tensorflow as tf\nx = tf.keras.layers.Quantize()(x)\n",
            applicability=Applicability.DISPLAY_ONLY,
            message="no quantize layer",
        ),
        Invalid("from tensorflow.keras.layers import Dense, Quantize\n", applicability=Applicability.DISPLAY_ONLY),
        Invalid(
            "import keras\nq = keras.quantization.quantize_model(m)\n",
            expected="import keras\nimport tensorflow_model_optimization as tfmot\n\nq = tfmot.quantization.keras.quantize_model(m)\n",
            applicability=Applicability.UNSAFE,
        ),
        Invalid(
            "from tensorflow_model_optimization.quantization import quantize_model\n",
            expected="from tensorflow_model_optimization.quantization.keras import quantize_model\n",
            applicability=Applicability.SAFE,
        ),
        Invalid(
            "import tensorflow as tf\nc.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_UINT8]\n",
            expected="import tensorflow as tf\nc.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n",
            applicability=Applicability.SAFE,
        ),
    ]

    def _spell(self, canon_name: str) -> tuple[str, list[AddImport]]:
        head, _, rest = canon_name.partition(".")
        module, local = _MODULE_SPELLING[head]
        spelled, imports = self.spelling(module, local)
        return f"{spelled}.{rest}", imports

    # Code gated on TF1 (`if compat.is_v1_apis():` / the `else:` of `if not tf1:`) may use
    # the TF1 API legitimately.
    def visit_If(self, node: cst.If) -> None:
        test = self.code_for(node.test).lower()
        if not any(k in test for k in ("v1", "tf1", "tf_1", "tf2", "v2")):
            return
        negated = isinstance(node.test, cst.UnaryOperation) and isinstance(node.test.operator, cst.Not)
        tf1_when_true = ("v1" in test or "tf1" in test or "tf_1" in test) != negated
        block = node.body if tf1_when_true else (node.orelse.body if isinstance(node.orelse, cst.Else) else None)
        if block is not None:
            self.__dict__.setdefault("_gated", set()).add(id(block))

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        if id(node) in self.__dict__.get("_gated", ()):
            self.__dict__["_depth"] = self.__dict__.get("_depth", 0) + 1

    def leave_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        if id(node) in self.__dict__.get("_gated", ()):
            self.__dict__["_depth"] -= 1

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value not in _LAST or self.__dict__.get("_depth"):
            return
        q = self.names.qualified(node)
        if q is None:
            return
        if q.startswith("tensorflow.compat.v1."):
            return  # the TF1 API still has these
        c = canonical(q)
        if c in NO_REPLACEMENT:
            self.report(node, f"`{dotted(node)}` does not exist. {NO_REPLACEMENT[c]}.", fix=NO_REPLACEMENT[c], applicability=Applicability.DISPLAY_ONLY)
            return
        hit = REPLACEMENTS.get(c)
        if hit is None:
            return
        new_name, app = hit
        text, imports = self._spell(new_name)
        self.report(
            node,
            f"`{dotted(node)}` does not exist; use `{text}`.",
            fix=f"Replace with `{text}`",
            applicability=app,
            edits=[Replace(node, expr(text)), *imports],
        )

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        mod = dotted(node.module)
        if mod is None:
            return
        bad = []
        for alias in node.names:
            c = canonical(f"{mod}.{dotted(alias.name)}")
            if c in NO_REPLACEMENT or c in REPLACEMENTS:
                bad.append((alias, c))
        if not bad:
            return
        module_fix = {REPLACEMENTS.get(c, (None,))[0] for _, c in bad}
        cmod = canonical(mod)
        if (
            len(bad) == len(node.names)
            and cmod == "tfmot.quantization"
            and all(r is not None and r.startswith("tfmot.quantization.keras.") for r in module_fix)
        ):
            new_mod = mod + ".keras"
            self.report(
                node,
                f"`{mod}` has no `{dotted(bad[0][0].name)}`; import it from `{new_mod}`.",
                fix=f"Import from `{new_mod}`",
                applicability=Applicability.SAFE,
                edits=[Replace(node.module, expr(new_mod))],
            )
            return
        for alias, c in bad:
            advice = NO_REPLACEMENT.get(c) or f"use `{REPLACEMENTS[c][0]}`"
            self.report(alias, f"`{mod}.{dotted(alias.name)}` does not exist. {advice}.", fix=advice, applicability=Applicability.DISPLAY_ONLY)
