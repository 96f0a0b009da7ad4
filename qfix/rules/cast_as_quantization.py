"""QF104 cast-as-quantization: a plain cast used as "quantization" (source).

## What it does
Flags "quantization" done with a plain cast - `tf.cast(x, tf.uint8)`, `keras.ops.cast(x,
"int8")`, `x.astype(np.int8)` - where `x` is float data: on a model's output (the converter
should own the I/O type), inside the representative-dataset generator (calibration data
must be float), on data fed to an integer interpreter with `set_tensor`, or on a value
that was just divided (`x / 255.0` cast to uint8 is all zeros).

## Why is this bad?
A cast truncates towards zero and forgets the scale: 0.73 becomes 0, 200.0 as int8
overflows. A quantized tensor means `real = scale * (q - zero_point)`; only the converter
(for the model) or the input tensor's `quantization` parameters (for data) know scale and
zero point. The model runs and answers garbage.

## Example
```python
outputs = tf.cast(tf.keras.layers.Dense(10)(x), tf.uint8)
model = tf.keras.Model(inputs, outputs)
```

## Use instead
```python
outputs = tf.keras.layers.Dense(10)(x)
model = tf.keras.Model(inputs, outputs)
converter.inference_output_type = tf.uint8  # the converter quantizes with the right scale
```

## Fix safety
Unsafe where the cast is removed (model output, representative dataset): it changes the
model's interface or the calibration data. Display-only for data fed to an interpreter:
the fix is `round(x / scale + zero_point)` with the input tensor's parameters.

## Targets
Every target: the rule reads no property of the target's profile (a cast is never a
quantization, whatever the model runs on).
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from qfix.source.names import last_name
from qfix.source.rule import Invalid, Replace, SourceRule, Valid
from qfix.source.util import arg, iter_nodes, string_value
from qfix.types import Applicability

CASTS = {"tensorflow.cast", "keras.ops.cast", "keras.backend.cast", "tensorflow.saturate_cast"}
Q_DTYPES = {"int8", "uint8"}
MODELS = {"keras.Model", "keras.models.Model"}
_INTERESTING = {"cast", "saturate_cast", "astype", "set_tensor", "Model", "RepresentativeDataset"}
SCALE_TEMPLATE = (
    'scale, zero_point = input_details[0]["quantization"]\n'
    "x_q = np.clip(np.round(x / scale + zero_point), -128, 127).astype(np.int8)  # 0..255 for uint8"
)


class CastAsQuantization(SourceRule):
    """Source side of QF104 cast-as-quantization; documented once, in the module docstring
    (`qfix rule QF104`)."""

    code = "QF104"
    name = "cast-as-quantization"
    TRIGGERS = ("cast", "astype")

    VALID = [
        Valid("import tensorflow as tf\nimg = tf.cast(img * 255.0, tf.uint8)\n"),
        Valid("import tensorflow as tf\nx = tf.cast(x, tf.float32) / 255.0\n"),
        Valid("import numpy as np\nlabels = labels.astype(np.int64)\n"),
        Valid("import tensorflow as tf\ndef representative_dataset():\n    for x in data:\n        yield [tf.cast(x, tf.float32)]\n"),
    ]
    INVALID = [
        Invalid(
            "import tensorflow as tf\nout = tf.cast(tf.keras.layers.Dense(10)(x), tf.uint8)\nmodel = tf.keras.Model(inputs, out)\n",
            expected="import tensorflow as tf\nout = tf.keras.layers.Dense(10)(x)\nmodel = tf.keras.Model(inputs, out)\n",
            applicability=Applicability.UNSAFE,
        ),
        Invalid(
            "import numpy as np\ndef representative_dataset():\n    for x in data:\n        yield [x.astype(np.uint8)]\nconverter.representative_dataset = representative_dataset\n",
            expected="import numpy as np\ndef representative_dataset():\n    for x in data:\n        yield [x]\nconverter.representative_dataset = representative_dataset\n",
            applicability=Applicability.UNSAFE,
        ),
        Invalid(
            "import numpy as np\ninterpreter.set_tensor(inp['index'], frame.astype(np.int8))\n",
            applicability=Applicability.DISPLAY_ONLY,
            message="scale",
        ),
        Invalid("import tensorflow as tf\nq = tf.cast(x / 255.0, 'uint8')\n", applicability=Applicability.DISPLAY_ONLY),
    ]

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.casts: list[tuple[Any, cst.Call, cst.BaseExpression]] = []  # (function, call, operand)
        self.cast_names: dict[str, tuple[cst.Call, cst.BaseExpression]] = {}
        self.rep_functions: set[str] = set()
        self.model_outputs: list[cst.BaseExpression] = []
        self.set_tensor_args: set[int] = set()
        self.done: set[int] = set()

    def _int_dtype(self, node: cst.BaseExpression | None) -> bool:
        if node is None:
            return False
        s = string_value(node)
        if s is None:
            c = self.names.canon(node) or ""
            s = c.rsplit(".", 1)[-1] if c.startswith(("tensorflow.", "numpy.")) else None
        return s in Q_DTYPES

    def _cast(self, node: cst.BaseExpression) -> cst.BaseExpression | None:
        """The operand if `node` is a cast to int8/uint8."""
        if not isinstance(node, cst.Call):
            return None
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "astype":
            d = arg(node, 0, "dtype")
            return node.func.value if d is not None and self._int_dtype(d.value) else None
        if self.names.canon(node.func) in CASTS:
            x, d = arg(node, 0, "x"), arg(node, 1, "dtype")
            if x is not None and d is not None and self._int_dtype(d.value):
                return x.value
        return None

    def visit_Call(self, node: cst.Call) -> None:
        if last_name(node.func) not in _INTERESTING:
            return
        operand = self._cast(node)
        if operand is not None:
            fn = self.ctx.scope.name.value if self.ctx.scope is not None else None
            self.casts.append((fn, node, operand))
            return
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "set_tensor" and len(node.args) >= 2:
            self.set_tensor_args.add(id(node.args[1].value))
        elif self.names.canon(node.func) in MODELS:
            o = arg(node, 1, "outputs")
            if o is not None:
                self.model_outputs.append(o.value)
        elif self.names.canon(node.func) == "tensorflow.lite.RepresentativeDataset" and node.args:
            v = node.args[0].value
            if isinstance(v, cst.Name):
                self.rep_functions.add(v.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            tgt = t.target
            if isinstance(tgt, cst.Name):
                op = self._cast(node.value) if isinstance(node.value, cst.Call) and last_name(node.value.func) in _INTERESTING else None
                if op is not None:
                    self.cast_names[tgt.value] = (node.value, op)  # type: ignore[assignment]
            elif isinstance(tgt, cst.Attribute) and tgt.attr.value == "representative_dataset" and isinstance(node.value, cst.Name):
                self.rep_functions.add(node.value.value)

    def _remove(self, call: cst.Call, operand: cst.BaseExpression, msg: str, fix: str) -> None:
        self.done.add(id(call))
        self.report(call, msg, fix=fix, applicability=Applicability.UNSAFE, edits=[Replace(call, operand)])

    def finish(self) -> None:
        for out in self.model_outputs:
            items = [e.value for e in out.elements] if isinstance(out, (cst.List, cst.Tuple)) else [out]
            for item in items:
                hit = None
                if isinstance(item, cst.Name) and item.value in self.cast_names:
                    hit = self.cast_names[item.value]
                elif (op := self._cast(item)) is not None:
                    hit = (item, op)
                if hit and id(hit[0]) not in self.done:
                    self._remove(
                        hit[0], hit[1],  # type: ignore[arg-type]
                        "Model output cast to an integer type: a cast truncates and loses the scale; let the converter quantize the output",
                        "Remove the cast and set `converter.inference_output_type` instead",
                    )
        for fn, call, operand in self.casts:
            if id(call) in self.done:
                continue
            if fn is not None and (fn in self.rep_functions or "representative" in fn.lower()):
                self._remove(
                    call, operand,
                    "Representative-dataset data cast to an integer type: calibration data must be float, in the range the model sees in training",
                    "Remove the cast (the converter quantizes)",
                )
            elif id(call) in self.set_tensor_args:
                self.done.add(id(call))
                self.report(
                    call,
                    "Float data cast to an integer type for an integer interpreter: quantize with the input's scale and zero point instead",
                    fix=SCALE_TEMPLATE, applicability=Applicability.DISPLAY_ONLY,
                )
            elif any(isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Divide) for n in iter_nodes(operand)):
                self.done.add(id(call))
                self.report(
                    call,
                    "Cast of divided (float) data to an integer type truncates it (e.g. x / 255.0 -> 0): use round(x / scale + zero_point)",
                    fix=SCALE_TEMPLATE, applicability=Applicability.DISPLAY_ONLY,
                )
