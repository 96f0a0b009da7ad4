"""QF205 tfmot-unsupported-layer: quantize_model on a model tfmot cannot quantize (source).

## What it does
Flags `tfmot.quantization.keras.quantize_model(model)` (and `quantize_annotate_model`)
when the model, as built in the same file, contains a `hub.KerasLayer`, a nested model
(a `keras.applications` / `Sequential` / `Model` object called as a layer or listed in a
Sequential), or a `Lambda` layer. The model is followed through local variables and
through calls of functions defined in the file.

## Why is this bad?
`quantize_model` refuses them: "Quantizing a keras Model inside another keras Model is not
supported.", "Layer KerasLayer ... is not supported", and for Lambda a warning followed by
"Requested the deserialization of a Lambda layer with a Python `lambda` inside it".

## Example
```python
base = tf.keras.applications.MobileNetV2(include_top=False)
inputs = tf.keras.Input((224, 224, 3))
model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(base(inputs)))
q = tfmot.quantization.keras.quantize_model(model)
```

## Use instead
```python
inputs = tf.keras.Input((224, 224, 3))
base = tf.keras.applications.MobileNetV2(include_top=False, input_tensor=inputs)
model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(base.output))
q = tfmot.quantization.keras.quantize_model(model)
```

## Fix safety
For a model whose only problem is Lambda layers, an unsafe fix inserts
`serialization_lib.enable_unsafe_deserialization()` before the call (the documented
unblock, verified on tf_keras 2.21): quantization then proceeds with the Lambdas left in
float. Unsafe because it lets tf_keras rebuild Python lambdas (trusted code only) and the
Lambda ops stay float. Otherwise display-only: the change is to the model's structure
(which layers exist and how they are wired), which qfix does not rewrite in source; the
message names the model-level fix.

## Targets
Every target: the rule reads no property of the target's profile (it concerns
quantization-aware training with tfmot).
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from qfix.source.names import last_name
from qfix.source.rule import InsertStatements, Invalid, SourceRule, Valid, statements
from qfix.source.util import arg
from qfix.types import Applicability

QUANTIZERS = {"tfmot.quantization.keras.quantize_model", "tfmot.quantization.keras.quantize_annotate_model"}
MODEL_MAKERS = ("keras.Sequential", "keras.models.Sequential", "keras.Model", "keras.models.Model", "keras.models.load_model", "keras.saving.load_model")
HUB = {"tensorflow_hub.KerasLayer", "tensorflow_hub.keras_layer.KerasLayer"}
LAMBDA = {"keras.layers.Lambda", "keras.layers.core.Lambda"}
ADVICE = {
    "hub": (
        "hub.KerasLayer is an opaque SavedModel tfmot cannot see into: build the backbone from "
        "keras.applications (tf_keras) instead, or annotate only the other layers - "
        "clone_model(model, clone_function=lambda l: l if isinstance(l, hub.KerasLayer) else "
        "quantize_annotate_layer(l)), then quantize_apply inside "
        "quantize_scope({'KerasLayer': hub.KerasLayer}) - and leave the backbone to post-training quantization"
    ),
    "nested": (
        "inline the inner model: keras.Model(base.input, head(base.output)), or pass "
        "input_tensor=inputs to keras.applications.X(...); `qfix model.keras` flattens nested models in saved files"
    ),
    "lambda": "replace the Lambda with a built-in layer (QF202) or a registered custom layer with a QuantizeConfig",
}
UNSAFE_LAMBDA = (
    "from tf_keras.src.saving import serialization_lib\n"
    "serialization_lib.enable_unsafe_deserialization()  # qfix QF205: tfmot re-serializes the model; Lambda layers stay float\n"
)
_LAST = {"KerasLayer", "Lambda", "quantize_model", "quantize_annotate_model"}
_LABEL = {"hub": "a hub.KerasLayer", "nested": "a nested model", "lambda": "a Lambda layer"}


class TfmotUnsupportedLayer(SourceRule):
    """Source side of QF205 tfmot-unsupported-layer; documented once, in the module docstring
    (`qfix rule QF205`)."""

    code = "QF205"
    name = "tfmot-unsupported-layer"
    TRIGGERS = ("quantize_model", "quantize_annotate_model")

    _H = "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
    VALID = [
        Valid(_H + "m = tf.keras.Sequential([tf.keras.layers.Dense(2)])\nq = tfmot.quantization.keras.quantize_model(m)\n"),
        Valid(_H + "base = tf.keras.applications.MobileNetV2()\nq = tfmot.quantization.keras.quantize_model(base)\n"),
        Valid(_H + "i = tf.keras.Input((8,))\nx = tf.keras.layers.Lambda(lambda t: t)(i)\nm = tf.keras.Model(i, x)\n"),
    ]
    INVALID = [
        Invalid(
            _H + "import tensorflow_hub as hub\nm = tf.keras.Sequential([hub.KerasLayer('https://tfhub.dev/x'), tf.keras.layers.Dense(5)])\n"
            "q = tfmot.quantization.keras.quantize_model(m)\n",
            applicability=Applicability.DISPLAY_ONLY,
            message="hub.KerasLayer",
        ),
        Invalid(
            _H + "def build():\n    base = tf.keras.applications.MobileNetV2(include_top=False)\n    i = tf.keras.Input((224, 224, 3))\n"
            "    o = tf.keras.layers.Dense(2)(base(i))\n    return tf.keras.Model(i, o)\n\nq = tfmot.quantization.keras.quantize_model(build())\n",
            message="nested model",
        ),
        Invalid(
            _H + "i = tf.keras.Input((8,))\nx = tf.keras.layers.Lambda(lambda t: t[:, :4])(i)\nm = tf.keras.Model(i, x)\n"
            "q = tfmot.quantization.keras.quantize_model(m)\n",
            message="Lambda",
            expected=_H + "i = tf.keras.Input((8,))\nx = tf.keras.layers.Lambda(lambda t: t[:, :4])(i)\nm = tf.keras.Model(i, x)\n"
            + UNSAFE_LAMBDA + "q = tfmot.quantization.keras.quantize_model(m)\n",
            applicability=Applicability.UNSAFE,
        ),
    ]

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.events: dict[Any, set[str]] = {}  # scope -> kinds seen in it
        self.bindings: dict[tuple[Any, str], cst.BaseExpression] = {}
        self.model_names: set[str] = set()
        self.functions: dict[str, Any] = {}  # name -> scope key
        self.calls: list[tuple[Any, cst.Call, cst.BaseExpression, Any]] = []
        self.stmt: cst.SimpleStatementLine | None = None

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self.stmt = node

    def _scope(self) -> Any:
        return id(self.ctx.scope) if self.ctx.scope is not None else None

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions[node.name.value] = id(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            if isinstance(t.target, cst.Name):
                self.bindings[(self._scope(), t.target.value)] = node.value
                if isinstance(node.value, cst.Call):
                    c = self.names.canon(node.value.func) or ""
                    if c.startswith("keras.applications.") or c in MODEL_MAKERS:
                        self.model_names.add(t.target.value)

    def visit_Call(self, node: cst.Call) -> None:
        ln = last_name(node.func)
        if ln not in _LAST and not (isinstance(node.func, cst.Name) and node.func.value in self.model_names):
            return
        c = self.names.canon(node.func)
        scope = self._scope()
        kind = None
        if c in HUB:
            kind = "hub"
        elif c in LAMBDA:
            kind = "lambda"
        elif c in QUANTIZERS:
            a = arg(node, 0, "to_quantize") or arg(node, 0, "to_annotate")
            if a is not None:
                direct = self.stmt is not None and any(getattr(small, "value", None) is node for small in self.stmt.body)
                self.calls.append((scope, node, a.value, self.stmt if direct else None))
        elif isinstance(node.func, cst.Name) and node.func.value in self.model_names and node.args:
            kind = "nested"
        if kind:
            self.events.setdefault(scope, set()).add(kind)

    def _kinds(self, scope: Any, value: cst.BaseExpression, depth: int = 0) -> set[str]:
        if depth > 5:
            return set()
        if isinstance(value, cst.Name):
            bound = self.bindings.get((scope, value.value)) or self.bindings.get((None, value.value))
            if bound is None:
                return set()
            return self._kinds(scope if (scope, value.value) in self.bindings else None, bound, depth + 1)
        if isinstance(value, cst.Call):
            c = self.names.canon(value.func) or ""
            if c in ("keras.Sequential", "keras.models.Sequential"):
                layers = arg(value, 0, "layers")
                out: set[str] = set()
                if layers is not None and isinstance(layers.value, (cst.List, cst.Tuple)):
                    for e in layers.value.elements:
                        v = e.value
                        if isinstance(v, cst.Call):
                            ec = self.names.canon(v.func)
                            if ec in HUB:
                                out.add("hub")
                            elif ec in LAMBDA:
                                out.add("lambda")
                        elif isinstance(v, cst.Name) and v.value in self.model_names:
                            out.add("nested")
                return out
            if c in ("keras.Model", "keras.models.Model"):
                return set(self.events.get(scope, set()))
            if isinstance(value.func, cst.Name) and value.func.value in self.functions:
                return set(self.events.get(self.functions[value.func.value], set()))
        return set()

    def finish(self) -> None:
        for scope, call, value, stmt in self.calls:
            kinds = self._kinds(scope, value)
            if not kinds:
                continue
            order = [k for k in ("nested", "hub", "lambda") if k in kinds]
            what = ", ".join(_LABEL[k] for k in order)
            if kinds == {"lambda"} and stmt is not None and "enable_unsafe_deserialization" not in self.ctx.code:
                self.report(
                    call,
                    f"`{self.code_for(call.func)}` on a model that contains a Lambda layer: tfmot skips it, then cannot re-serialize the model",
                    fix="Allow tf_keras to re-create the Lambda (it stays float; trusted code only): " + ADVICE["lambda"],
                    applicability=Applicability.UNSAFE,
                    edits=[InsertStatements(stmt, statements(UNSAFE_LAMBDA), before=True)],
                )
                continue
            self.report(
                call,
                f"`{self.code_for(call.func)}` on a model that contains {what}: tfmot cannot quantize it",
                fix="; ".join(f"{_LABEL[k]}: {ADVICE[k]}" for k in order),
                applicability=Applicability.DISPLAY_ONLY,
            )
