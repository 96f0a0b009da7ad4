"""QF202 lambda-layer: Lambda layers (model and source).

## What it does
Model side: finds Lambda layers in a `.keras` config and reads what each one computes from
its stored bytecode, without running it: the bytes are unmarshalled and disassembled in a
short-lived plain-Python child process and evaluated symbolically (`qfix.model.bytecode`).
When the body is in qfix's table (`qfix.model.lambda_table`: scale and offset, relu/relu6/clip
from 0, sigmoid/tanh/softmax/swish, resize, spatial and channel slices, spatial mean, reshape
keeping the batch), the Lambda is replaced by the built-in layer computing the same thing, in
every mode. Otherwise the finding shows the decompiled expression and how to write it as a
layer; a body that cannot be read (another Python version, not code, a closure, control flow)
says why.

Source side: flags `keras.layers.Lambda` layers. When the body is a simple expression of
its one input - a scale and/or offset (`x / 127.5 - 1`), `relu6`, `relu`, a clip from 0, or
`tf.image.resize` - it rewrites the Lambda into the built-in layer that computes the same
thing (`Rescaling`, `ReLU`, `Resizing`). Other Lambdas are reported (with display-only
guidance) in files that train the model quantization-aware (`quantize_model`,
`quantize_apply`, `quantize_annotate_*`: `qfix.source.rule.Activity.qat`), where tfmot fails on
them. A post-training integer conversion quantizes a Lambda's TensorFlow ops like any others
(verified on TF 2.21: `tf.image.resize`, `tf.split` and arithmetic in Lambdas convert to int8
RESIZE_BILINEAR, SPLIT, MUL, ADD), so scripts that only convert, library code and translators
are left alone. Unit tests are never reported (they use Lambdas on purpose).

## Why is this bad?
A Lambda stores Python bytecode: loading it means running code from the file (Keras refuses
in safe mode), and the bytecode only loads on the Python version that wrote it. tfmot skips
Lambda layers with a warning and then fails to re-serialize the model (`Requested the
deserialization of a Lambda layer with a Python lambda inside it`); a Lambda cannot be
annotated with a QuantizeConfig (TF 2.21 / tfmot 0.8: `quantize_model` warns "Lambda layers
are not supported by automatic model annotation" and raises `ValueError: Requested the
deserialization of a Lambda layer with a Python lambda inside it`).

## Example
```python
x = keras.layers.Lambda(lambda t: t / 127.5 - 1.0)(inputs)
x = keras.layers.Lambda(lambda t: tf.nn.relu6(t))(x)
```

## Use instead
```python
x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
x = keras.layers.ReLU(max_value=6.0)(x)
```
Or a registered custom layer (with a QuantizeConfig for tfmot).

## Fix safety
Source: safe, the built-in layer computes the same values (`x / c` becomes `x * (1 / c)`,
which differs by at most one float32 ulp) and neither layer has weights, so no weight is
re-keyed. Lambdas with other bodies get display-only guidance.

Model: safe for a body in the table: the rewrite reads the bytecode and never runs it, and
each row is the same float function (a channel slice becomes a non-trainable 1×1 Conv2D or
Dense with a 0/1 selection kernel and no bias, written into model.weights.h5: exact). The
written model has no Lambda, so it loads without `--trust-lambdas`; proving the rewrite still
loads the original, which needs `--trust-lambdas` (`--diff` shows the rewrite without loading).
Other bodies: display-only; fix the source that builds the model (`qfix train.py`), or pass
`--trust-lambdas` to convert a model you trust as it is.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

import base64
import marshal

import libcst as cst

from qfix.source.names import last_name
from qfix.source.rule import AddImport, Invalid, RemoveUnusedImport, Replace, SourceRule, Valid
from qfix.source.util import arg, expr, is_const, number, string_value, uses_name
from qfix.types import Applicability
from qfix.model import rewrites
from qfix.model.bytecode import Expr, Input, Unreadable, read_lambda, render, walk
from qfix.model.cases import functional_config, sequential_config
from qfix.model.lambda_plan import Plan, plan, recorded_input_shape
from qfix.model.rewrites import Rewrite
from qfix.rules.base import ModelCase, ModelRule

_RELU6 = {"tensorflow.nn.relu6", "keras.activations.relu6", "keras.ops.relu6", "keras.ops.nn.relu6", "keras.backend.relu6"}
_RELU = {"tensorflow.nn.relu", "keras.activations.relu", "keras.ops.relu", "keras.ops.nn.relu", "keras.backend.relu"}
_CLIP = {"tensorflow.clip_by_value": ("t", "clip_value_min", "clip_value_max"), "keras.ops.clip": ("x", "x_min", "x_max"), "keras.backend.clip": ("x", "min_value", "max_value")}
_RESIZE = {"tensorflow.image.resize": "method", "keras.ops.image.resize": "interpolation"}
_METHODS = {
    "BILINEAR": "bilinear", "NEAREST_NEIGHBOR": "nearest", "BICUBIC": "bicubic", "AREA": "area",
    "LANCZOS3": "lanczos3", "LANCZOS5": "lanczos5", "GAUSSIAN": "gaussian", "MITCHELLCUBIC": "mitchellcubic",
}
_INTERPOLATIONS = set(_METHODS.values())
_ALLOWED_KW = {"name", "output_shape"}


def _paren(code: str, node: cst.BaseExpression) -> str:
    return code if isinstance(node, (cst.Integer, cst.Float, cst.Name, cst.Attribute)) else f"({code})"


def _neg(code: str, node: cst.BaseExpression) -> str:
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return code[1:].lstrip()
    return f"-{_paren(code, node)}"


class LambdaLayer(SourceRule):
    """Source side of QF202 lambda-layer; documented once, in the module docstring
    (`qfix rule QF202`)."""

    code = "QF202"
    name = "lambda-layer"
    TRIGGERS = ("Lambda",)

    VALID = [
        Valid("import keras\nx = keras.layers.Rescaling(1.0 / 255)(inputs)\n"),
        Valid("import keras\nx = keras.layers.Lambda(lambda t: t[:, 0])(inputs)\n"),  # no quantization in this file
        Valid("from mylib import Lambda\nx = Lambda(lambda t: t * 2.0)(inputs)\n"),
        Valid("import keras\nx = keras.layers.Lambda(lambda t: t * 2.0, arguments={'a': 1})(inputs)\n"),
        Valid("import keras\nscale = 2.0\nx = keras.layers.Lambda(lambda t: t * scale)(inputs)\n"),
        # gates (`Activity`): the firing side of each is in INVALID
        Valid(  # library code importing tfmot, quantizing nothing (tfmot's own transforms)
            "import keras\nimport tensorflow_model_optimization as tfmot\nx = keras.layers.Lambda(lambda t: t[:, 0])(inputs)\n"
        ),
        Valid(  # a float conversion (CPU post-processing)
            "import keras\nimport tensorflow as tf\nx = keras.layers.Lambda(lambda t: t[:, 0])(inputs)\n"
            "converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, x))\n"
        ),
        Valid(  # a post-training integer conversion quantizes the Lambda's ops like any others
            "import keras\nimport tensorflow as tf\nx = keras.layers.Lambda(lambda t: t[:, 0])(inputs)\n"
            "converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, x))\n"
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\nconverter.representative_dataset = rep\n"
        ),
        Valid(  # a unit test: no rewrite of a simple body either
            "import unittest\nimport keras\nimport tensorflow_model_optimization as tfmot\n"
            "x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)\nq = tfmot.quantization.keras.quantize_model(keras.Model(inputs, x))\n"
        ),
    ]
    INVALID = [
        Invalid(
            "import tensorflow as tf\nx = tf.keras.layers.Lambda(lambda t: t / 127.5 - 1.0)(inputs)\n",
            expected="import tensorflow as tf\nx = tf.keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)\n",
            applicability=Applicability.SAFE,
        ),
        Invalid(
            "import keras\nx = keras.layers.Lambda(lambda t: t * 2.0, name='double')(inputs)\n",
            expected="import keras\nx = keras.layers.Rescaling(2.0, name='double')(inputs)\n",
            applicability=Applicability.SAFE,
        ),
        Invalid(
            "import tf_keras as keras\nx = keras.layers.Lambda(lambda t: t + 3)(inputs)\n",
            expected="import tf_keras as keras\nx = keras.layers.Rescaling(1.0, offset=3)(inputs)\n",
        ),
        Invalid(
            "import tensorflow as tf\nfrom tensorflow.keras.layers import Lambda\nx = Lambda(lambda t: tf.nn.relu6(t))(inputs)\n",
            expected="import tensorflow as tf\nfrom tensorflow.keras.layers import ReLU\nx = ReLU(max_value=6.0)(inputs)\n",
        ),
        Invalid(
            "from tensorflow import keras\nimport tensorflow as tf\nx = keras.layers.Lambda(lambda t: tf.clip_by_value(t, 0.0, 6.0))(inputs)\n",
            expected="from tensorflow import keras\nimport tensorflow as tf\nx = keras.layers.ReLU(max_value=6.0)(inputs)\n",
        ),
        Invalid(
            "import tensorflow as tf\nx = tf.keras.layers.Lambda(lambda t: tf.image.resize(t, (224, 224), method='nearest'))(inputs)\n",
            expected="import tensorflow as tf\nx = tf.keras.layers.Resizing(224, 224, interpolation='nearest')(inputs)\n",
        ),
        Invalid(
            "import keras\nx = keras.layers.Lambda(lambda t: keras.ops.image.resize(t, [64, 64]))(inputs)\n",
            expected="import keras\nx = keras.layers.Resizing(64, 64, interpolation='bilinear')(inputs)\n",
        ),
        Invalid(  # a QAT script
            "import keras\nimport tensorflow_model_optimization as tfmot\nx = keras.layers.Lambda(lambda t: t[:, 0])(inputs)\n"
            "q = tfmot.quantization.keras.quantize_model(keras.Model(inputs, x))\n",
            applicability=Applicability.DISPLAY_ONLY,
        ),
        Invalid(  # QAT of a model loaded in the same file, then converted
            "import tf_keras as keras\nimport tensorflow_model_optimization as tfmot\n"
            "y = keras.layers.Lambda(lambda t: tf.split(t, 2, axis=-1))(x)\n"
            "qat = tfmot.quantization.keras.quantize_apply(tfmot.quantization.keras.quantize_annotate_model(m))\n",
            applicability=Applicability.DISPLAY_ONLY, message="tfmot",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if last_name(node.func) != "Lambda":
            return
        c = self.names.canon(node.func)
        if c not in ("keras.layers.Lambda", "keras.layers.core.Lambda") or self.ctx.activity.test:
            return  # a unit test may use a Lambda on purpose (safe-mode, serialization tests)
        fn = arg(node, 0, "function")
        plan = None
        if fn is not None and all(a is fn or (a.keyword is not None and a.keyword.value in _ALLOWED_KW) for a in node.args):
            plan = self._plan(fn.value)
        if plan is None:
            # only where tfmot meets it: a post-training conversion quantizes the Lambda's ops
            if self.ctx.activity.qat:
                self.report(
                    node,
                    "Lambda layer: tfmot cannot annotate it for quantization-aware training, and quantize_model fails to re-serialize it",
                    fix="Replace it with a built-in layer, or a registered custom layer with a QuantizeConfig",
                    applicability=Applicability.DISPLAY_ONLY,
                )
            return
        layer, args_code = plan
        kw = [a for a in node.args if a is not fn and a.keyword is not None and a.keyword.value == "name"]
        call_args = args_code + [self.code_for(a).rstrip(", ") for a in kw]
        edits: list = []
        if isinstance(node.func, cst.Attribute):
            func_code = f"{self.code_for(node.func.value)}.{layer}"
        else:
            q = self.names.qualified(node.func) or ""
            module = q.rsplit(".", 1)[0]
            func_code = layer
            edits.append(AddImport(module, layer))
            if isinstance(node.func, cst.Name):
                real = q.rsplit(".", 1)[-1]
                alias = node.func.value if node.func.value != real else None
                edits.append(RemoveUnusedImport(module, real, alias))
        new = expr(f"{func_code}({', '.join(call_args)})")
        self.report(
            node,
            f"Lambda layer with a simple body: use the built-in `{layer}` layer (tfmot cannot quantize a Lambda)",
            fix=f"Replace the Lambda with `{layer}`",
            applicability=Applicability.SAFE,
            edits=[Replace(node, new), *edits],
        )

    # ------------------------------------------------------------------------------------
    def _plan(self, fn: cst.BaseExpression) -> tuple[str, list[str]] | None:
        if not isinstance(fn, cst.Lambda):
            return None
        params = fn.params
        if (
            len(params.params) != 1
            or params.posonly_params
            or params.kwonly_params
            or not isinstance(params.star_arg, cst.MaybeSentinel)
            or params.star_kwarg is not None
            or params.params[0].default is not None
        ):
            return None
        p = params.params[0].name.value
        body = fn.body
        return self._affine(body, p) or self._call(body, p)

    def _const_code(self, node: cst.BaseExpression) -> str | None:
        return self.code_for(node).strip() if is_const(node) else None

    def _scale(self, node: cst.BaseExpression, p: str) -> str | None:
        """`p * c`, `c * p`, `p / c` -> scale code; `p` -> "1.0"."""
        if isinstance(node, cst.Name) and node.value == p and not node.lpar:
            return "1.0"
        if not isinstance(node, cst.BinaryOperation):
            return None
        left, right, op = node.left, node.right, node.operator
        if isinstance(op, cst.Multiply):
            if isinstance(left, cst.Name) and left.value == p and (c := self._const_code(right)):
                return c
            if isinstance(right, cst.Name) and right.value == p and (c := self._const_code(left)):
                return c
        if isinstance(op, cst.Divide) and isinstance(left, cst.Name) and left.value == p:
            c = self._const_code(right)
            if c and number(right) not in (0.0, None):
                return f"1.0 / {_paren(c, right)}"
        return None

    def _affine(self, body: cst.BaseExpression, p: str) -> tuple[str, list[str]] | None:
        s = self._scale(body, p)
        if s is not None and s != "1.0":
            return "Rescaling", [s]
        if not isinstance(body, cst.BinaryOperation) or not isinstance(body.operator, (cst.Add, cst.Subtract)):
            return None
        left, right = body.left, body.right
        add = isinstance(body.operator, cst.Add)
        s = self._scale(left, p)
        c = self._const_code(right)
        if s is not None and c is not None:
            return "Rescaling", [s, f"offset={c if add else _neg(c, right)}"]
        if add:
            s = self._scale(right, p)
            c = self._const_code(left)
            if s is not None and c is not None:
                return "Rescaling", [s, f"offset={c}"]
        return None

    def _call(self, body: cst.BaseExpression, p: str) -> tuple[str, list[str]] | None:
        if not isinstance(body, cst.Call):
            return None
        c = self.names.canon(body.func)
        if c is None:
            return None
        first = arg(body, 0, None)
        if first is None or not (isinstance(first.value, cst.Name) and first.value.value == p):
            return None
        rest = [a for a in body.args if a is not first]
        if c in _RELU6 and not rest:
            return "ReLU", ["max_value=6.0"]
        if c in _RELU:
            if not rest:
                return "ReLU", []
            if len(rest) == 1 and rest[0].keyword is not None and rest[0].keyword.value == "max_value":
                mv = self._const_code(rest[0].value)
                return ("ReLU", [f"max_value={mv}"]) if mv else None
            return None
        if c in _CLIP:
            _, kmin, kmax = _CLIP[c]
            lo, hi = arg(body, 1, kmin), arg(body, 2, kmax)
            if lo is None or hi is None or len(body.args) != 3:
                return None
            hi_code = self._const_code(hi.value)
            if number(lo.value) == 0.0 and hi_code is not None and (number(hi.value) or 0) > 0:
                return "ReLU", [f"max_value={hi_code}"]
            return None
        if c in _RESIZE:
            size = arg(body, 1, "size")
            if size is None or not isinstance(size.value, (cst.Tuple, cst.List)) or len(size.value.elements) != 2:
                return None
            if any(uses_name(e.value, p) for e in size.value.elements):
                return None
            method = "bilinear"
            for a in body.args:
                if a is first or a is size:
                    continue
                if a.keyword is None or a.keyword.value != _RESIZE[c]:
                    return None  # antialias, preserve_aspect_ratio, ...: no exact built-in
                m = string_value(a.value)
                if m is None and isinstance(a.value, cst.Attribute):
                    m = _METHODS.get(a.value.attr.value)
                if m not in _INTERPOLATIONS:
                    return None
                method = m
            h, w = (self.code_for(e.value).strip() for e in size.value.elements)
            return "Resizing", [h, w, f"interpolation={method!r}"]
        return None


# --- model side ----------------------------------------------------------------------------


def _lambda_case(body, *, sequential: bool = False, shape=(None, 8, 8, 4)) -> dict:
    """An embedded case: one Lambda on input `x` holding the marshalled code of `body` (a
    lambda compiled here, by this interpreter, as Keras would store it)."""
    code = base64.b64encode(marshal.dumps(body.__code__)).decode("ascii")
    cfg = {"function": {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": None}},
           "arguments": {}}
    if sequential:
        return sequential_config(("x", shape, "float32"), [("lam", "Lambda", cfg, shape)])
    return functional_config([("x", shape, "float32")], [("lam", "Lambda", cfg, ["x"])], ["lam"])


class LambdaLayerModel(ModelRule):
    """Model side of QF202 lambda-layer; documented once, in the module docstring
    (`qfix rule QF202`)."""

    code = "QF202"
    name = "lambda-layer"
    fix_applicability = Applicability.SAFE
    blocks_loading = True
    opt_in = "trust_lambdas"
    refusal = "Lambda {layer!r} would run bytecode from the file (--trust-lambdas)"

    def check(self, graph, ctx):
        trusted = ctx.trust_lambdas
        for path, layer in graph.walk():
            if layer.class_name != "Lambda":
                continue
            tail = "loaded because --trust-lambdas was given" if trusted else \
                "qfix never runs it; the model cannot be loaded without --trust-lambdas"
            body = read_lambda(layer.config)
            if isinstance(body, Unreadable):
                yield self.violation(
                    f"Lambda {layer.name!r}: {body.reason}; {tail}", layer.name, pointer=layer.pointer,
                    applicability=Applicability.DISPLAY_ONLY,
                    fix="replace the Lambda with a built-in layer in the code that builds the model",
                )
                continue
            shown = render(body)
            p = plan(body, recorded_input_shape(layer), graph.dialect)
            if isinstance(p, Plan):
                yield self.violation(
                    f"Lambda {layer.name!r} computes `{shown}` (read from its bytecode, not run), which the "
                    f"built-in {p.spelled()} computes exactly; {tail}", layer.name, pointer=layer.pointer,
                    fix=f"replace the Lambda with {p.spelled()}",
                    rewrite=Rewrite(rewrites.lambda_to_builtin, path, layer.name),
                )
            else:
                yield self.violation(
                    f"Lambda {layer.name!r} computes `{shown}` (read from its bytecode, not run); qfix has no "
                    f"built-in layer for it ({p}); {tail}", layer.name, pointer=layer.pointer,
                    applicability=Applicability.DISPLAY_ONLY,
                    fix=("write it as a layer in the code that builds the model: `class Op(keras.layers.Layer): "
                         f"def call(self, {_param(body)}): return {shown}` registered with "
                         "@keras.saving.register_keras_serializable() (and a QuantizeConfig for tfmot)"),
                )

    CASES = [
        ModelCase(
            "garbage-code",
            functional_config(
                [("x", (None, 4), "float32")],
                [("lam", "Lambda", {"function": {"class_name": "__lambda__", "config": {"code": "4wEA"}}}, ["x"])],
                ["lam"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase("scale-offset", _lambda_case(lambda x: x / 127.5 - 1.0), fires=True, count=1,
                  expected={"class_name": "Rescaling", "config": {"name": "lam", "scale": 1 / 127.5, "offset": -1.0}}),
        ModelCase("sequential-relu6", _lambda_case(lambda t: tf.nn.relu6(t), sequential=True),  # noqa: F821
                  fires=True, count=1,
                  expected={"class_name": "ReLU", "config": {"name": "lam", "max_value": 6.0}}),
        ModelCase("spatial-slice", _lambda_case(lambda x: x[:, 1:7, 2:6, :]), fires=True, count=1, mode="qat",
                  expected={"class_name": "Cropping2D", "config": {"cropping": [[1, 1], [2, 2]]}}),
        ModelCase("not-in-table", _lambda_case(lambda x: x * x), fires=True, count=1),
        ModelCase(
            "builtin",
            functional_config([("x", (None, 4), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=False,
        ),
    ]


def _param(body: Expr) -> str:
    """The name the lambda gave its input."""
    return next((e.name for e in walk(body) if isinstance(e, Input)), "x")
