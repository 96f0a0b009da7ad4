"""QF205 tfmot-unsupported-layer: quantize_model on a model tfmot cannot quantize (source).

## What it does
Flags `tfmot.quantization.keras.quantize_model(model)` (and `quantize_annotate_model`)
when the model, as built in the same file, contains a `hub.KerasLayer`, a nested model
(a `keras.applications` / `Sequential` / `Model` object called as a layer or listed in a
Sequential), a `Lambda` layer, or a layer tfmot's default 8-bit registry rejects. The
registry is qfix's one table of QAT support (`qfix/model/tfmot_registry.py`, which the model
rules QF502-QF504 use too): every `keras.layers` class the table knows is looked up
(Conv1D, Rescaling, Normalization, Multiply, LayerNormalization, MultiHeadAttention, ...), and
so are a string `activation=` tfmot does not wrap (`Conv2D(activation="relu6")`), an
`Activation("hard_sigmoid")` it refuses, and a BatchNormalization it does not fold (after a
layer with an activation, such as `Conv2D(activation="relu")`, or after a non-folding layer).
The fix text is the table's remedy: what `qfix model.keras --mode qat` does with that layer in
the saved model. The model is followed through local variables and through calls of functions
defined in the file, in Sequential and functional spelling.

## Why is this bad?
`quantize_model` refuses them: "Quantizing a keras Model inside another keras Model is not
supported.", "Layer KerasLayer ... is not supported", "Layer conv1d:<class '...Conv1D'> is not
supported. You can quantize this layer by passing a `tfmot.quantization.keras.QuantizeConfig`
instance to the `quantize_annotate_layer` API.", "Only some Keras activations under
`keras.activations` are supported", and for Lambda a warning followed by "Requested the
deserialization of a Lambda layer with a Python `lambda` inside it".

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

from qfix.model import tfmot_registry as reg
from qfix.source.names import last_name
from qfix.source.rule import InsertStatements, Invalid, SourceRule, Valid, statements
from qfix.source.util import arg
from qfix.types import Applicability

QUANTIZERS = {"tfmot.quantization.keras.quantize_model", "tfmot.quantization.keras.quantize_annotate_model"}
SEQUENTIAL = ("keras.Sequential", "keras.models.Sequential")
FUNCTIONAL = ("keras.Model", "keras.models.Model")
MODEL_MAKERS = (*SEQUENTIAL, *FUNCTIONAL, "keras.models.load_model", "keras.saving.load_model")
INPUTS = ("keras.Input", "keras.layers.Input")
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
_LABEL = {"hub": "a hub.KerasLayer", "nested": "a nested model", "lambda": "a Lambda layer"}
BN = "BatchNormalization"
# Names worth resolving (a cheap last-name test first: most calls in a file are none of these).
_LAST = {"KerasLayer", "Lambda", "quantize_model", "quantize_annotate_model", *reg.LAYERS}
QAT_MODE = " (`qfix model.keras --mode qat` does this in the saved model)"


def _string(a: cst.Arg | None) -> str | None:
    if a is not None and isinstance(a.value, cst.SimpleString):
        return a.value.evaluated_value if isinstance(a.value.evaluated_value, str) else None
    return None


def _activation_remedy(act: str) -> str:
    """What qfix does with `activation=act` that tfmot does not wrap (QF504's split)."""
    then = "ReLU(6.0)" if act in reg.SPLIT_AS else f"Activation({act!r})"
    return f"make the layer linear and apply {then} after it (the same function){QAT_MODE}"


def _activation_layer_remedy(act: str) -> str:
    stays = "" if act in reg.INTEGER_WHEN_ANNOTATED else "; the activation itself stays float"
    return f"annotate it with qfix's {reg.activation_qconfig(act)}{stays}{QAT_MODE}"


class TfmotUnsupportedLayer(SourceRule):
    """Source side of QF205 tfmot-unsupported-layer; documented once, in the module docstring
    (`qfix rule QF205`)."""

    code = "QF205"
    name = "tfmot-unsupported-layer"
    TRIGGERS = ("quantize_model", "quantize_annotate_model")

    _H = "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
    _Q = "q = tfmot.quantization.keras.quantize_model(m)\n"
    _IN = "i = tf.keras.Input((16, 16, 3))\n"
    VALID = [
        Valid(_H + "m = tf.keras.Sequential([tf.keras.layers.Dense(2)])\n" + _Q),
        Valid(_H + "base = tf.keras.applications.MobileNetV2()\nq = tfmot.quantization.keras.quantize_model(base)\n"),
        Valid(_H + "i = tf.keras.Input((8,))\nx = tf.keras.layers.Lambda(lambda t: t)(i)\nm = tf.keras.Model(i, x)\n"),
        # A BN right after a linear Conv2D is folded; relu6 in an Activation layer is quantized.
        Valid(_H + "m = tf.keras.Sequential([tf.keras.Input((16, 16, 3)), tf.keras.layers.Conv2D(8, 3), "
              "tf.keras.layers.BatchNormalization(), tf.keras.layers.Activation('relu6')])\n" + _Q),
        Valid(_H + _IN + "x = tf.keras.layers.Conv2D(8, 3)(i)\nx = tf.keras.layers.BatchNormalization()(x)\n"
              "x = tf.keras.layers.ReLU(6.0)(x)\nm = tf.keras.Model(i, x)\n" + _Q),
        # Rejected layers in a model that is not quantized.
        Valid(_H + "m = tf.keras.Sequential([tf.keras.layers.Conv1D(4, 3)])\nm.fit()\n"),
    ]
    INVALID = [
        Invalid(
            _H + "import tensorflow_hub as hub\nm = tf.keras.Sequential([hub.KerasLayer('https://tfhub.dev/x'), tf.keras.layers.Dense(5)])\n"
            + _Q,
            applicability=Applicability.DISPLAY_ONLY,
            message="hub.KerasLayer",
        ),
        Invalid(
            _H + "def build():\n    base = tf.keras.applications.MobileNetV2(include_top=False)\n    i = tf.keras.Input((224, 224, 3))\n"
            "    o = tf.keras.layers.Dense(2)(base(i))\n    return tf.keras.Model(i, o)\n\nq = tfmot.quantization.keras.quantize_model(build())\n",
            message="nested model",
        ),
        Invalid(
            _H + "i = tf.keras.Input((8,))\nx = tf.keras.layers.Lambda(lambda t: t[:, :4])(i)\nm = tf.keras.Model(i, x)\n" + _Q,
            message="Lambda",
            expected=_H + "i = tf.keras.Input((8,))\nx = tf.keras.layers.Lambda(lambda t: t[:, :4])(i)\nm = tf.keras.Model(i, x)\n"
            + UNSAFE_LAMBDA + _Q,
            applicability=Applicability.UNSAFE,
        ),
        # The table's rows, Sequential spelling: issue 10's Rescaling(1/255) before a Conv2D.
        Invalid(
            _H + "m = tf.keras.Sequential([tf.keras.Input((16, 16, 3)), tf.keras.layers.Rescaling(1 / 255), "
            "tf.keras.layers.Conv2D(8, 3)])\n" + _Q,
            applicability=Applicability.DISPLAY_ONLY, count=1, message="a Rescaling layer",
        ),
        Invalid(
            _H + "from tensorflow.keras import layers\nm = tf.keras.Sequential([layers.Conv1D(8, 3), layers.MaxPooling1D()])\n" + _Q,
            count=1, message="a Conv1D layer, a MaxPooling1D layer",
        ),
        # Functional spelling, through a builder function.
        Invalid(
            _H + "def build():\n    i = tf.keras.Input((10, 32))\n"
            "    x = tf.keras.layers.MultiHeadAttention(2, 16)(i, i)\n"
            "    x = tf.keras.layers.LayerNormalization()(x)\n    return tf.keras.Model(i, x)\n\n"
            "q = tfmot.quantization.keras.quantize_model(build())\n",
            count=1, message="a MultiHeadAttention layer, a LayerNormalization layer",
        ),
        # Issue 10's Conv2D(16, 3, activation="relu") then BatchNormalization(), both spellings.
        Invalid(
            _H + _IN + "x = tf.keras.layers.Conv2D(16, 3, activation='relu')(i)\n"
            "x = tf.keras.layers.BatchNormalization()(x)\nm = tf.keras.Model(i, x)\n" + _Q,
            count=1, message="a BatchNormalization after Conv2D(activation='relu')",
        ),
        Invalid(
            _H + "m = tf.keras.Sequential([tf.keras.Input((16, 16, 3)), tf.keras.layers.Conv2D(16, 3, activation='relu'), "
            "tf.keras.layers.BatchNormalization()])\n" + _Q,
            count=1, message="a BatchNormalization after Conv2D(activation='relu')",
        ),
        # String activations tfmot refuses: relu6 on a Conv2D, hard_sigmoid in an Activation layer.
        Invalid(
            _H + _IN + "x = tf.keras.layers.Conv2D(8, 3, activation='relu6')(i)\n"
            "x = tf.keras.layers.Activation('hard_sigmoid')(x)\nm = tf.keras.Model(i, x)\n" + _Q,
            count=1, message="Conv2D(activation='relu6'), Activation('hard_sigmoid')",
        ),
    ]

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.events: dict[Any, dict[str, str]] = {}  # scope -> {what tfmot refuses: advice}
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

    def leave_Assign(self, node: cst.Assign) -> None:
        # After the value's calls are visited: `x = BatchNormalization()(x)` reads the `x` before it.
        for t in node.targets:
            if isinstance(t.target, cst.Name):
                self.bindings[(self._scope(), t.target.value)] = node.value
                if isinstance(node.value, cst.Call):
                    c = self.names.canon(node.value.func) or ""
                    if c.startswith("keras.applications.") or c in MODEL_MAKERS:
                        self.model_names.add(t.target.value)

    def visit_Call(self, node: cst.Call) -> None:
        scope = self._scope()
        if isinstance(node.func, cst.Call):  # a layer called on a tensor: BN(...)(x)
            if last_name(node.func.func) == BN and self._layer_class(node.func) == BN and node.args:
                self._add(scope, self._batchnorm(self._producer(scope, node.args[0].value)))
            return
        ln = last_name(node.func)
        if ln not in _LAST and not (isinstance(node.func, cst.Name) and node.func.value in self.model_names):
            return
        c = self.names.canon(node.func)
        if c in HUB:
            self._add(scope, [("hub", ADVICE["hub"])])
        elif c in LAMBDA:
            self._add(scope, [("lambda", ADVICE["lambda"])])
        elif c in QUANTIZERS:
            a = arg(node, 0, "to_quantize") or arg(node, 0, "to_annotate")
            if a is not None:
                direct = self.stmt is not None and any(getattr(small, "value", None) is node for small in self.stmt.body)
                self.calls.append((scope, node, a.value, self.stmt if direct else None))
        elif isinstance(node.func, cst.Name) and node.func.value in self.model_names and node.args:
            self._add(scope, [("nested", ADVICE["nested"])])
        else:
            self._add(scope, self._table(node))

    def _add(self, scope: Any, found: list[tuple[str, str]]) -> None:
        for what, advice in found:
            self.events.setdefault(scope, {}).setdefault(what, advice)

    def _layer_class(self, call: cst.Call) -> str | None:
        """The keras.layers class a constructor call builds, when the table knows it."""
        c = self.names.canon(call.func) or ""
        cls = c.rpartition(".")[2]
        return cls if c.startswith("keras.layers.") and cls in reg.LAYERS else None

    def _table(self, call: cst.Call) -> list[tuple[str, str]]:
        """What tfmot's registry (qfix's table) refuses in one layer constructor, but a BN's
        fold, which depends on the layer before it."""
        cls = self._layer_class(call)
        if cls is None or cls == BN:
            return []
        out = []
        entry = reg.entry(cls)
        if entry.rejected:
            out.append((f"a {cls} layer", entry.advice + (QAT_MODE if entry.remedy else "")))
        if cls in reg.ACTIVATED:
            act = _string(arg(call, None, "activation"))
            if not reg.layer_activation_ok(act):
                out.append((f"{cls}(activation={act!r})", _activation_remedy(act)))
        elif cls == "Activation":
            act = _string(arg(call, 0, "activation"))
            if not reg.activation_layer_ok(act):
                out.append((f"Activation({act!r})", _activation_layer_remedy(act)))
        return out

    def _producer(self, scope: Any, value: cst.BaseExpression) -> cst.Call | None:
        """The constructor of the layer whose output `value` is (`Conv2D(...)` for the `x` of
        `x = Conv2D(...)(i)`), or the `keras.Input(...)` call; None when unknown."""
        if isinstance(value, cst.Name):
            value = self.bindings.get((scope, value.value)) or self.bindings.get((None, value.value))
        if not isinstance(value, cst.Call):
            return None
        if isinstance(value.func, cst.Call):
            return value.func
        return value if self.names.canon(value.func) in INPUTS else None

    def _batchnorm(self, prev: cst.Call | None) -> list[tuple[str, str]]:
        """A BatchNormalization after the layer `prev` builds: tfmot folds it only into a
        linear Conv2D/DepthwiseConv2D/Dense (else quantize_model rejects it)."""
        if prev is None:
            return []
        cls = self._layer_class(prev)
        if cls is None and self.names.canon(prev.func) not in INPUTS:
            return []  # a layer the table does not know: no claim
        act = _string(arg(prev, None, "activation")) if cls in reg.ACTIVATED else None
        if reg.folds_batchnorm(cls, act):
            return []
        after = f"{cls}(activation={act!r})" if act not in (None, "linear") else cls or "the input"
        return [(f"a BatchNormalization after {after}", reg.entry(BN).advice + QAT_MODE)]

    def _found(self, scope: Any, value: cst.BaseExpression, depth: int = 0) -> dict[str, str]:
        if depth > 5:
            return {}
        if isinstance(value, cst.Name):
            bound = self.bindings.get((scope, value.value)) or self.bindings.get((None, value.value))
            if bound is None:
                return {}
            return self._found(scope if (scope, value.value) in self.bindings else None, bound, depth + 1)
        if isinstance(value, cst.Call):
            c = self.names.canon(value.func) or ""
            if c in SEQUENTIAL:
                return self._sequential(arg(value, 0, "layers"))
            if c in FUNCTIONAL:
                return dict(self.events.get(scope, {}))
            if isinstance(value.func, cst.Name) and value.func.value in self.functions:
                return dict(self.events.get(self.functions[value.func.value], {}))
        return {}

    def _sequential(self, layers: cst.Arg | None) -> dict[str, str]:
        out: dict[str, str] = {}
        if layers is None or not isinstance(layers.value, (cst.List, cst.Tuple)):
            return out
        prev = None
        for e in layers.value.elements:
            v = e.value
            found: list[tuple[str, str]] = []
            if isinstance(v, cst.Call):
                ec = self.names.canon(v.func)
                if ec in HUB:
                    found = [("hub", ADVICE["hub"])]
                elif ec in LAMBDA:
                    found = [("lambda", ADVICE["lambda"])]
                elif self._layer_class(v) == BN:
                    found = self._batchnorm(prev)
                else:
                    found = self._table(v)
            elif isinstance(v, cst.Name) and v.value in self.model_names:
                found = [("nested", ADVICE["nested"])]
            for what, advice in found:
                out.setdefault(what, advice)
            prev = v if isinstance(v, cst.Call) else None
        return out

    def finish(self) -> None:
        for scope, call, value, stmt in self.calls:
            found = self._found(scope, value)
            if not found:
                continue
            order = [k for k in ("nested", "hub", "lambda") if k in found] + [k for k in found if k not in ADVICE]
            label = lambda k: _LABEL.get(k, k)  # noqa: E731
            if set(found) == {"lambda"} and stmt is not None and "enable_unsafe_deserialization" not in self.ctx.code:
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
                f"`{self.code_for(call.func)}` on a model that contains {', '.join(label(k) for k in order)}: "
                "tfmot cannot quantize it",
                fix="; ".join(f"{label(k)}: {found[k]}" for k in order),
                applicability=Applicability.DISPLAY_ONLY,
            )
