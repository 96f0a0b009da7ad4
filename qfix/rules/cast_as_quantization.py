"""QF104 cast-as-quantization: a plain cast used as "quantization" (source).

## What it does
Flags "quantization" done with a plain cast - `tf.cast(x, tf.uint8)`, `keras.ops.cast(x,
"int8")`, `x.astype(np.int8)`, `np.uint8(x)`, `np.array(x, dtype=np.uint8)` - of float data:
on a model's output (the converter should own the I/O type), inside the
representative-dataset generator (calibration data must be float), on data fed to an integer
interpreter with `set_tensor` (directly or through a name), and wherever the operand is
known to hold float data. Float-ness is followed through the names a function (or the
module) binds: random draws (`tf.random.normal`, `np.random.rand`, `rng.standard_normal`,
...), float literals, `np.zeros` / `np.ones` with a float or default dtype, casts to float, a
model's output (`model(x)`, `model.predict(x)`, a layer call), any true division, and the
arithmetic, subscripts and elementwise functions applied to them. A cast of values known to
lie across the integer range already (`(np.random.rand(8) * 255).astype(np.uint8)`: random
pixels) or of a value that applies a scale (`x / scale + zero_point`) is not flagged.

## Why is this bad?
A cast truncates towards zero and forgets the scale: 0.73 becomes 0, a value in [0, 1)
becomes 0, -3.2 as uint8 wraps to 253, 200.0 as int8 overflows. A quantized tensor means
`real = scale * (q - zero_point)`; only the converter (for the model) or the input tensor's
`quantization` parameters (for data) know scale and zero point. The model runs and answers
garbage.

## Example
```python
outputs = tf.cast(tf.keras.layers.Dense(10)(x), tf.uint8)
model = tf.keras.Model(inputs, outputs)

x = tf.random.normal((1, 10))
q = tf.cast(x * 255.0, tf.uint8)  # negative values wrap, the rest loses its scale
```

## Use instead
```python
outputs = tf.keras.layers.Dense(10)(x)
model = tf.keras.Model(inputs, outputs)
converter.inference_output_type = tf.uint8  # the converter quantizes with the right scale

scale, zero_point = input_details[0]["quantization"]
q = np.clip(np.round(x / scale + zero_point), 0, 255).astype(np.uint8)
```

## Fix safety
Unsafe where the cast is removed (model output, representative dataset): it changes the
model's interface or the calibration data. Display-only elsewhere: the fix is
`round(x / scale + zero_point)` with the input tensor's parameters, which only the converted
model knows.

## Targets
Every target: the rule reads no property of the target's profile (a cast is never a
quantization, whatever the model runs on).
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from qfix.source.float_values import CASTS, DIVISION, FloatValue, FloatValues
from qfix.source.names import last_name
from qfix.source.rule import Invalid, Replace, SourceRule, Valid
from qfix.source.util import arg, dtype_name, iter_nodes
from qfix.types import Applicability

Q_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
MODELS = {"keras.Model", "keras.models.Model"}
ARRAYS = {"numpy.array", "numpy.asarray"}
_INTERESTING = {"cast", "saturate_cast", "astype", "set_tensor", "Model", "RepresentativeDataset", "int8", "uint8", "array", "asarray"}
SCALE_TEMPLATE = (
    'scale, zero_point = input_details[0]["quantization"]\n'
    "x_q = np.clip(np.round(x / scale + zero_point), -128, 127).astype(np.int8)  # 0..255 for uint8"
)
_NO_SCALE = "a cast keeps no scale or zero point (real = scale * (q - zero_point)), so the integers are not quantized data"


class CastAsQuantization(FloatValues, SourceRule):
    """Source side of QF104 cast-as-quantization; documented once, in the module docstring
    (`qfix rule QF104`)."""

    code = "QF104"
    name = "cast-as-quantization"
    TRIGGERS = ("cast", "astype", "int8")

    VALID = [
        Valid("import tensorflow as tf\nimg = tf.cast(img * 255.0, tf.uint8)\n"),
        Valid("import tensorflow as tf\nx = tf.cast(x, tf.float32) / 255.0\n"),
        Valid("import numpy as np\nlabels = labels.astype(np.int64)\n"),
        Valid("import tensorflow as tf\ndef representative_dataset():\n    for x in data:\n        yield [tf.cast(x, tf.float32)]\n"),
        Valid("import numpy as np\nx = np.random.rand(1, 8, 8, 3) * 255\nimg = x.astype(np.uint8)\n"),  # random pixels
        Valid(  # random integers 0..6 for an interpreter comparison (tflite-micro's hello_world/evaluate.py)
            "import numpy as np\nx = np.random.uniform(low=0, high=2 * np.pi, size=1000).astype(np.int8)\n"
        ),
        Valid(  # the parameter hides the module's float `x`
            "import tensorflow as tf\nx = tf.random.normal((4,))\ndef to_bytes(x):\n    return tf.cast(x, tf.uint8)\n"
        ),
        Valid("import tensorflow as tf\nx = tf.random.normal((4,))\nx = tf.cast(x, tf.int32)\ny = tf.cast(x, tf.uint8)\n"),
        Valid("import numpy as np\nx = np.random.randn(4)\nq = np.round(x / scale + zero_point).astype(np.int8)\n"),
        Valid("import numpy as np\nz = np.zeros((1, 4)).astype(np.uint8)\n"),
        # values of unknown range: the firing side of each is in INVALID
        Valid(  # pixels cast to float for a blend and back (an image, not a quantization)
            "import numpy as np\nfg = patch.astype(np.float32)\nbg = roi.astype(np.float32)\n"
            "blended = (bg * (1.0 - alpha) + fg * alpha).astype(np.uint8)\n"
        ),
        Valid("import numpy as np\nout = (total / weights).astype('uint8')\n"),  # an average of pixels
        Valid(  # quantized with the input's parameters (then given to the interpreter)
            "import numpy as np\nscale, zero_point = inp['quantization']\n"
            "q = np.array(x / scale + zero_point, dtype=np.int8)\ninterpreter.set_tensor(i, q)\n"
        ),
        # the file's own function, followed only while that is the function called (issue 11 (g))
        Valid("import numpy as np\ndef load(p):\n    return np.load(p)\nq = np.asarray(load('a.npy'), dtype=np.uint8)\n"),
        Valid("import numpy as np\ndef f(x):\n    return x / 255.0\ndef f(x):\n    return x\nq = f(img).astype(np.uint8)\n"),
        Valid("import numpy as np\ndef f(x):\n    if x is None:\n        return x\n    return x / 255.0\nq = f(img).astype(np.uint8)\n"),
        Valid("import numpy as np\ndef f(x):\n    return x / 255.0\nf = load_other()\nq = f(img).astype(np.uint8)\n"),
    ]
    INVALID = [
        # issue 11 (g): float data from the file's own function, through `np.asarray(..., dtype=)`,
        # `np.array(..., dtype="uint8")` and `np.asarray(...).astype(...)`
        Invalid(
            "from tensorflow import cast, uint8\nimport tensorflow as tf\ndef f(img):\n    return img / 255.0\n"
            "v = f(tf.zeros((2,)))\nq = cast(v, uint8)\n",
            applicability=Applicability.DISPLAY_ONLY, message="truncates to 0 or 1",
        ),
        Invalid(
            "import numpy as np\ndef normalize(img):\n    x = img.astype(np.float32)\n    return (x - 127.5) / 127.5\n"
            "q = np.asarray(normalize(frame), dtype=np.uint8)\n",
            applicability=Applicability.DISPLAY_ONLY, message="cast to uint8 with `np.asarray`",
        ),
        Invalid(
            "import numpy as np\nimport tensorflow as tf\nx = tf.random.normal((1, 10))\nq = np.array(x * 255.0, dtype=\"uint8\")\n",
            applicability=Applicability.DISPLAY_ONLY, message="wrap around",
        ),
        Invalid(
            "import numpy as np\ndef sample():\n    return np.random.randn(1, 10)\nq = np.asarray(sample()).astype(np.int8)\n",
            applicability=Applicability.DISPLAY_ONLY, message="cast to int8 with `.astype`",
        ),

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
        Invalid("import numpy as np\nout = (total / 255).astype('uint8')\n", message="[0, 1]"),  # a quotient by a literal
        Invalid(  # data cast to float and normalised by a literal, through a name
            "import tensorflow as tf\nx = tf.cast(img, tf.float32) / 255.0\nq = tf.cast(x, tf.uint8)\n", message="[0, 1]",
        ),
        # issue 11 kind 4: the float comes from a name bound to a float-producing call
        Invalid(
            "import tensorflow as tf\nx = tf.random.normal((1, 10))\nq = tf.cast(x, tf.uint8)\n",
            applicability=Applicability.DISPLAY_ONLY, message="scale or zero point", count=1,
        ),
        Invalid("import tensorflow as tf\nx = tf.random.normal((1, 10))\nq = tf.cast(x * 255.0, tf.uint8)\n", message="wrap"),
        Invalid("import numpy as np\nx = np.random.rand(1, 8, 8, 3)\nq = x.astype(np.uint8)\n", message="truncate to 0 or 1"),
        Invalid(  # a bound written with a constant: [-pi, pi] wraps below 0 in uint8
            "import math\nimport numpy as np\nq = np.random.uniform(-math.pi, math.pi, 8).astype(np.uint8)\n", message="wrap",
        ),
        Invalid("import numpy as np\nrng = np.random.default_rng(0)\nq = np.int8(rng.standard_normal((1, 4)))\n"),
        Invalid("import numpy as np\nx = 0.75\nq = np.array(x, dtype=np.uint8)\n", message="a float literal"),
        Invalid(
            "import keras\nmodel = keras.models.load_model(path)\ny = model.predict(x)\nlabels = keras.ops.cast(y, 'uint8')\n",
            message="model.predict",
        ),
        Invalid(
            "import keras\nimport tensorflow as tf\ndef sample():\n    x = keras.random.normal((4,))\n    x *= 0.5\n    return tf.saturate_cast(x, tf.int8)\n",
        ),
        Invalid(  # through a name, in the generator
            "import tensorflow as tf\ndef representative_dataset():\n    x = tf.random.normal((1, 4))\n    q = tf.cast(x, tf.uint8)\n    yield [q]\n",
            expected="import tensorflow as tf\ndef representative_dataset():\n    x = tf.random.normal((1, 4))\n    q = x\n    yield [q]\n",
            applicability=Applicability.UNSAFE,
        ),
        Invalid(  # through a name, to the interpreter
            "import numpy as np\nq = frame.astype(np.int8)\ninterpreter.set_tensor(i, q)\n",
            applicability=Applicability.DISPLAY_ONLY, message="integer interpreter",
        ),
    ]

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        # (function name, cast call, operand, dtype, what the operand is known to hold)
        self.casts: list[tuple[str | None, cst.Call, cst.BaseExpression, str, FloatValue | None]] = []
        self.cast_names: dict[tuple[Any, str], tuple[cst.Call, cst.BaseExpression]] = {}
        self.rep_functions: set[str] = set()
        self.model_outputs: list[tuple[Any, cst.BaseExpression]] = []
        self.set_tensor_casts: set[int] = set()
        self.done: set[int] = set()

    def _q_dtype(self, node: cst.BaseExpression | None) -> str | None:
        d = dtype_name(node, self.names)
        return d if d in Q_RANGES else None

    def _cast(self, node: cst.BaseExpression) -> tuple[cst.BaseExpression, str] | None:
        """(operand, dtype) if `node` converts a value to int8/uint8."""
        if not isinstance(node, cst.Call) or last_name(node.func) not in _INTERESTING:
            return None
        d = None
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "astype":
            a = arg(node, 0, "dtype")
            d = self._q_dtype(a.value) if a is not None else None
            return (node.func.value, d) if d else None
        c = self.names.canon(node.func)
        if c in CASTS:
            x, a = arg(node, 0, "x"), arg(node, 1, "dtype")
            d = self._q_dtype(a.value) if a is not None else None
        elif c in ("numpy.uint8", "numpy.int8") and len(node.args) == 1:
            x, d = node.args[0], c.rsplit(".", 1)[-1]
        elif c in ARRAYS:
            x, a = arg(node, 0, "object" if c == "numpy.array" else "a"), arg(node, 1, "dtype")
            d = self._q_dtype(a.value) if a is not None else None
        else:
            return None
        return (x.value, d) if x is not None and d else None

    def _scope(self) -> Any:
        return id(self.ctx.scope) if self.ctx.scope is not None else None

    def visit_Call(self, node: cst.Call) -> None:
        if last_name(node.func) not in _INTERESTING:
            return
        cast = self._cast(node)
        if cast is not None:
            fn = self.ctx.scope.name.value if self.ctx.scope is not None else None
            # judged now: the names the operand uses may be rebound further down
            self.casts.append((fn, node, cast[0], cast[1], self.float_value(cast[0])))
            return
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "set_tensor" and len(node.args) >= 2:
            v = node.args[1].value
            hit = self.cast_names.get((self._scope(), v.value)) if isinstance(v, cst.Name) else None
            self.set_tensor_casts.add(id(hit[0]) if hit else id(v))
        elif self.names.canon(node.func) in MODELS:
            o = arg(node, 1, "outputs")
            if o is not None:
                self.model_outputs.append((self._scope(), o.value))
        elif self.names.canon(node.func) == "tensorflow.lite.RepresentativeDataset" and node.args:
            v = node.args[0].value
            if isinstance(v, cst.Name):
                self.rep_functions.add(v.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            tgt = t.target
            if isinstance(tgt, cst.Name):
                cast = self._cast(node.value)
                if cast is not None:
                    self.cast_names[(self._scope(), tgt.value)] = (node.value, cast[0])  # type: ignore[assignment]
            elif isinstance(tgt, cst.Attribute) and tgt.attr.value == "representative_dataset" and isinstance(node.value, cst.Name):
                self.rep_functions.add(node.value.value)

    def _remove(self, call: cst.Call, operand: cst.BaseExpression, msg: str, fix: str) -> None:
        self.done.add(id(call))
        self.report(call, msg, fix=fix, applicability=Applicability.UNSAFE, edits=[Replace(call, operand)])

    def finish(self) -> None:
        for scope, out in self.model_outputs:
            items = [e.value for e in out.elements] if isinstance(out, (cst.List, cst.Tuple)) else [out]
            for item in items:
                hit = None
                if isinstance(item, cst.Name) and (scope, item.value) in self.cast_names:
                    hit = self.cast_names[(scope, item.value)]
                elif (cast := self._cast(item)) is not None:
                    hit = (item, cast[0])
                if hit and id(hit[0]) not in self.done:
                    self._remove(
                        hit[0], hit[1],  # type: ignore[arg-type]
                        "Model output cast to an integer type: a cast truncates and loses the scale; let the converter quantize the output",
                        "Remove the cast and set `converter.inference_output_type` instead",
                    )
        for fn, call, operand, dtype, value in self.casts:
            if id(call) in self.done:
                continue
            if fn is not None and (fn in self.rep_functions or "representative" in fn.lower()):
                self._remove(
                    call, operand,
                    "Representative-dataset data cast to an integer type: calibration data must be float, in the range the model sees in training",
                    "Remove the cast (the converter quantizes)",
                )
            elif self._scaled(operand):
                continue  # `x / scale + zero_point`: quantized with the tensor's parameters
            elif id(call) in self.set_tensor_casts or id(operand) in self.set_tensor_casts:
                self.done.add(id(call))
                self.report(
                    call,
                    "Float data cast to an integer type for an integer interpreter: quantize with the input's scale and zero point instead",
                    fix=SCALE_TEMPLATE, applicability=Applicability.DISPLAY_ONLY,
                )
            elif value is not None and not self._unknown_range(value, operand):
                loss = self._loss(value, dtype)
                if loss is not None:
                    self.done.add(id(call))
                    self.report(
                        call,
                        f"Float data ({value.source}) cast to {dtype} with `{self._spelled(call)}`: {loss}; {_NO_SCALE}",
                        fix=SCALE_TEMPLATE, applicability=Applicability.DISPLAY_ONLY,
                    )

    @staticmethod
    def _loss(value: FloatValue, dtype: str) -> str | None:
        """What the cast destroys, or None for data already spread over the integer range
        (`np.random.rand(8) * 255` cast to uint8: random pixels, not a quantization)."""
        lo, hi = Q_RANGES[dtype]
        if value.bounded():
            a, b = value.low, value.high
            if a == b and float(a).is_integer() and lo <= a <= hi:  # type: ignore[arg-type, operator]
                return None  # np.zeros(...): exact
            if b - a < 2:  # type: ignore[operator]
                ints = sorted({int(a), int(b)})  # type: ignore[arg-type]
                return f"its values, in [{a:g}, {b:g}], truncate to {' or '.join(map(str, ints))}"
            if a < lo or b > hi + 1:  # type: ignore[operator]
                return f"its values in [{a:g}, {b:g}] do not fit {dtype}'s [{lo}, {hi}] and wrap around"
            return None
        if value.source == DIVISION:
            return "a quotient such as x / 255.0 lies in [0, 1] and truncates to 0 or 1"
        return f"fractions truncate toward zero and values outside [{lo}, {hi}] wrap around"

    @staticmethod
    def _unknown_range(value: FloatValue, operand: cst.BaseExpression) -> bool:
        """Float dtype, but nothing says the values are fractions: data cast to float for
        arithmetic (`img.astype(np.float32)` blended and cast back: pixels in [0, 255]), or a
        quotient by a variable (`total / count`: an average of pixels). A quotient by a literal
        (`x / 255.0`) and random draws stay flagged."""
        if value.bounded():
            return False
        if value.source.startswith("a cast to"):
            return True
        if value.source == DIVISION and isinstance(operand, cst.BinaryOperation) and isinstance(operand.operator, cst.Divide):
            return not isinstance(operand.right, (cst.Float, cst.Integer))
        return False

    def _spelled(self, call: cst.Call) -> str:
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "astype":
            return ".astype"
        return self.code_for(call.func)

    @staticmethod
    def _scaled(operand: cst.BaseExpression) -> bool:
        """The operand already applies a quantization scale (`x / scale + zero_point`)."""
        return any(isinstance(n, cst.Name) and ("scale" in n.value.lower() or n.value.lower() in ("zero_point", "zp")) for n in iter_nodes(operand))
