"""QF302 unsupported-activation: an activation the target has no kernel for (model and source).

## What it does
Model side: finds activations in a `.keras` config whose TFLite op the target does not run -
hard_swish (HARD_SWISH, also when spelled out as `x * relu6(x + 3) / 6` ops), gelu (GELU),
LeakyReLU (LEAKY_RELU), elu, ... - as an `activation=` argument, an Activation layer or a
layer of its own.

Source side: flags the same activations as written in model-building code:
`activation="hard_swish"` / `"gelu"` / `"leaky_relu"` on any layer, `Activation("gelu")`,
`layers.LeakyReLU(...)`, and calls such as `tf.nn.gelu(x)`, in files that take the model
towards a target: an integer conversion, an export without a float conversion, or
quantization-aware training (`qfix.source.rule.Activity`). Library code, unit tests and
float training scripts are not reported; their saved models are, by the model side. Nor are
layers built in an arm of a dispatch over names (a translator's `elif op_type == 'Elu':`, a
builder's `if activation == 'gelu':` among three or more such arms, `qfix.source.dispatch`):
the layer is in the model only when its input asks for it, and the model side sees the choice.

## Why is this bad?
The op is not in the target's op set. A single-cut compiler (the Edge TPU's) stops mapping at
the first such op ("Operation not supported"): everything after a hard_swish in
MobileNetV3's stem runs on the CPU. Other targets fail to compile or fall back to slow
reference kernels.

## Example
```python
x = keras.layers.Dense(64, activation="gelu")(x)
x = keras.layers.LeakyReLU(0.1)(x)
x = keras.layers.Conv2D(16, 3, activation="hard_swish")(x)
```

## Use instead
```python
x = keras.layers.Dense(64, activation="relu")(x)  # or swish; retrain
x = keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.1), shared_axes=[1, 2])(x)
x = keras.layers.Conv2D(16, 3)(x)
x = x * keras.layers.ReLU(max_value=1.0)(x / 6.0 + 0.5)  # hard_swish the converter keeps unfused
```

## Fix safety
Model: safe for hard_swish (x * clip(x / 6 + 1/2, 0, 1), written so the converter keeps it
unfused and int8 keeps its precision; a spelled-out hard_swish gets its 1/6 moved onto x for the same reason) and
LeakyReLU (PReLU with a constant alpha, shared over H and W), which compute the same values,
with the weights migrated; unsafe for gelu (the tanh approximation: close, not exact; the
report states the float delta); no fix for the others (elu, selu, ...: retrain).

Source: display-only. Swapping an activation changes the numbers (gelu, elu) or adds
trainable weights and depends on the input rank (LeakyReLU -> PReLU); the exact rewrites are
done on saved models by `qfix model.keras`, where the weights are migrated.

## Targets
A target whose profile's op table does not run the activation's TFLite op (the source side
reads the same fact as the target's missing activations). Targets with the op never get it.
"""

from __future__ import annotations

import libcst as cst

from qfix.source.names import last_name
from qfix.source.rule import Invalid, SourceRule, Valid
from qfix.source.util import arg, string_value
from qfix.types import Applicability
from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.opmap import ACTIVATION_OPS, LAYER_OPS, activations_of
from qfix.model.patterns import leaky_relu_slope, spelled_hard_swish
from qfix.model.rewrites import Rewrite
from qfix.rules.base import ModelCase, ModelRule, consequence

ALIASES = {"hard_silu": "hard_swish", "leaky_relu": "leaky_relu", "leakyrelu": "leaky_relu"}
FUNCS = {
    "tensorflow.nn.gelu": "gelu", "keras.activations.gelu": "gelu", "keras.ops.gelu": "gelu",
    "tensorflow.nn.leaky_relu": "leaky_relu", "keras.activations.leaky_relu": "leaky_relu", "keras.ops.leaky_relu": "leaky_relu",
    "keras.activations.hard_swish": "hard_swish", "keras.activations.hard_silu": "hard_swish", "keras.ops.hard_silu": "hard_swish",
    "keras.ops.hard_swish": "hard_swish", "tensorflow.nn.elu": "elu", "keras.activations.elu": "elu", "keras.ops.elu": "elu",
    "tensorflow.nn.selu": "selu", "keras.activations.selu": "selu", "keras.ops.selu": "selu",
    "keras.activations.mish": "mish", "keras.ops.mish": "mish",
}
LAYERS = {"keras.layers.LeakyReLU": "leaky_relu", "keras.layers.ELU": "elu"}
_LAST = {k.rsplit(".", 1)[-1] for k in (*FUNCS, *LAYERS)} | {"Activation"}
ADVICE = {
    "hard_swish": "use `x * ReLU(6)(x + 3) / 6` as separate layers (`qfix model.keras` rewrites saved models exactly)",
    "gelu": "use relu or swish (retrain), or keep gelu on the CPU",
    "leaky_relu": "use `PReLU(alpha_initializer=Constant(alpha), shared_axes=[1, 2])` (one PRELU op) or ReLU",
    "elu": "use relu or swish (retrain)",
    "selu": "use relu or swish (retrain)",
    "mish": "use swish (retrain)",
}


def _norm(name: str) -> str:
    n = name.lower()
    return ALIASES.get(n, n)


class UnsupportedActivation(SourceRule):
    """Source side of QF302 unsupported-activation; documented once, in the module docstring
    (`qfix rule QF302`)."""

    code = "QF302"
    name = "unsupported-activation"
    TARGET_NEEDS = "missing_activations"

    VALID = [
        Valid("import keras\nx = keras.layers.Dense(8, activation='relu')(x)\n", target="edgetpu"),
        Valid("import keras\nx = keras.layers.Dense(8, activation='gelu')(x)\n"),
        Valid("import keras\nx = keras.layers.Dense(8, activation='gelu')(x)\n", target="int8"),
        Valid("import keras\nx = keras.layers.LeakyReLU()(x)\n", target="tflm"),
        Valid("import keras\nx = keras.layers.Dense(8, activation='mish')(x)\n", target="ethos-u"),  # EXP, LOG, TANH... all on the NPU
        Valid("import tensorflow as tf\ndef gelu(x):\n    return tf.nn.gelu(x)\n", target="edgetpu"),
        # library code and float training scripts: the model side checks what they save
        Valid("import keras\ndef block(x):\n    return keras.layers.Dense(8, activation='gelu')(x)\n", target="edgetpu"),
        Valid("import keras\nx = keras.layers.Dense(8, activation='elu')(x)\nmodel.fit(x, y)\nmodel.save('m.h5')\n", target="edgetpu"),
        # a translator's dispatch over op types (openvino2tensorflow): built only for models that have the op
        Valid(
            "import tensorflow as tf\nfor layer in layers:\n    t = layer.attrib['type']\n"
            "    if t == 'Relu':\n        x = tf.nn.relu(x)\n    elif t == 'Elu':\n        x = tf.nn.elu(x)\n"
            "    elif t == 'Gelu':\n        x = tf.nn.gelu(x)\nmodel.export('saved')\n",
            target="edgetpu",
        ),
        Valid(  # a configurable builder: `match` over the option's names
            "import keras\ndef act(x, name):\n    match name:\n        case 'relu':\n            return keras.layers.ReLU()(x)\n"
            "        case 'gelu':\n            return keras.layers.Activation('gelu')(x)\n"
            "        case 'swish':\n            return keras.layers.Activation('swish')(x)\nmodel.export('saved')\n",
            target="edgetpu",
        ),
    ]
    INVALID = [
        Invalid(  # a QAT script takes the model to the target too
            "import tf_keras as keras\nimport tensorflow_model_optimization as tfmot\nx = keras.layers.Dense(8, activation='gelu')(x)\n"
            "q = tfmot.quantization.keras.quantize_model(model)\n", target="edgetpu"),
        Invalid("import keras\nx = keras.layers.Dense(8, activation='gelu')(x)\nmodel.export('saved')\n", target="edgetpu", applicability=Applicability.DISPLAY_ONLY, message="gelu"),
        Invalid("import tensorflow as tf\nx = tf.keras.layers.Activation('hard_swish')(x)\nmodel.export('saved')\n", target="edgetpu"),
        Invalid("import tensorflow as tf\nx = tf.keras.layers.LeakyReLU(alpha=0.1)(x)\nmodel.export('saved')\n", target="edgetpu", message="leaky_relu"),
        Invalid("import tensorflow as tf\nx = tf.keras.layers.Conv2D(8, 3, activation=tf.nn.gelu)(x)\ny = tf.nn.gelu(x)\nmodel.export('saved')\n", target="edgetpu", count=2),
        Invalid(  # a two-way switch is not a dispatch over names: the gelu branch is the model's
            "import tensorflow as tf\nif mode == 'train':\n    x = tf.keras.layers.Dense(8)(x)\nelif mode == 'export':\n"
            "    x = tf.keras.layers.Dense(8, activation='gelu')(x)\nif __name__ == '__main__':\n    model.export('saved')\n",
            target="edgetpu", message="gelu",
        ),
        Invalid(  # arms comparing different subjects are no dispatch either
            "import tensorflow as tf\nif a == 'x':\n    y = 1\nelif b == 'y':\n    y = 2\nelif c == 'z':\n"
            "    y = tf.nn.gelu(x)\nmodel.export('saved')\n",
            target="edgetpu", message="gelu",
        ),
        Invalid("import keras\nx = keras.layers.Dense(8, activation='log_softmax')(x)\nmodel.export('saved')\n", target="ethos-u",
                message="falls back to the CPU"),
        Invalid("import keras\nx = keras.layers.Dense(8, activation='gelu')(x)\nmodel.export('saved')\n", target="tflm",
                message="will not run on the target at all"),
    ]

    def _activation_name(self, node: cst.BaseExpression) -> str | None:
        s = string_value(node)
        if s is not None:
            return _norm(s)
        c = self.names.canon(node)
        return FUNCS.get(c) if c else None

    def _flag(self, node: cst.CSTNode, act: str, how: str, host: str | None = None) -> None:
        missing = self.ctx.target.missing_activations  # type: ignore[union-attr]
        if act not in missing or not self.ctx.activity.for_target or self.ctx.dispatched(node):
            return
        if host is not None and self.ctx.target.runs_activation(act, host):  # type: ignore[union-attr]
            return  # fused into the host's op (a CONV_2D with RELU), as the op check reads the profile  # a layer built only when the input names it: the model side sees the choice
        tgt = self.ctx.target.id  # type: ignore[union-attr]
        self.report(
            node, f"{how} `{act}` has no kernel on target {tgt}: {consequence(self.ctx.target)}",
            fix=ADVICE.get(act, "use an activation the target supports"), applicability=Applicability.DISPLAY_ONLY,
        )

    def visit_Call(self, node: cst.Call) -> None:
        ln = last_name(node.func)
        if ln not in _LAST and not any(a.keyword is not None and a.keyword.value == "activation" for a in node.args):
            return
        c = self.names.canon(node.func)
        if c is None:
            return
        if c in FUNCS:
            fn = self.ctx.scope
            if fn is not None and _norm(fn.name.value) in (FUNCS[c], c.rsplit(".", 1)[-1]):
                return  # the definition of an activation wrapper, not a use in a model
            self._flag(node, FUNCS[c], "Activation")
            return
        if c in LAYERS:
            self._flag(node, LAYERS[c], "Layer")
            return
        if not c.startswith("keras.layers."):
            return
        if c == "keras.layers.Activation":
            a = arg(node, 0, "activation")
        else:
            a = arg(node, None, "activation")
        if a is None:
            return
        act = self._activation_name(a.value)
        if act is not None:
            self._flag(a, act, "Activation", c.rsplit(".", 1)[-1])


# --- model side ----------------------------------------------------------------------------


# How qfix replaces each activation, and how safe that is.
REPLACEMENT = {
    "hard_swish": ("x·clip(x/6+1/2, 0, 1), which the converter keeps unfused", Applicability.SAFE),
    "hard_silu": ("x·clip(x/6+1/2, 0, 1), which the converter keeps unfused", Applicability.SAFE),
    "leaky_relu": ("PReLU with constant alpha, shared over H and W", Applicability.SAFE),
    "LeakyReLU": ("PReLU with constant alpha, shared over H and W", Applicability.SAFE),
    "gelu": ("the tanh approximation built from TANH and MUL (changes numbers)", Applicability.UNSAFE),
}


def _rewrite(act: str, layer, scope: tuple[str, ...]) -> Rewrite | None:
    """The rewrite that replaces `act` at `layer` (see REPLACEMENT), if it handles this spelling."""
    if act in ("hard_swish", "hard_silu"):
        return Rewrite(rewrites.hard_swish, scope, layer.name)
    if act == "gelu":
        return Rewrite(rewrites.gelu_tanh, scope, layer.name)
    if act in ("leaky_relu", "LeakyReLU") and leaky_relu_slope(layer.raw) is not None:
        return Rewrite(rewrites.leaky_relu_to_prelu, scope, layer.name)
    return None


class UnsupportedActivationModel(ModelRule):
    """Model side of QF302 unsupported-activation; documented once, in the module docstring
    (`qfix rule QF302`)."""

    code = "QF302"
    name = "unsupported-activation"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        yield from self._spelled_hard_swish(graph, ctx)
        for path, layer in graph.walk():
            found: list[tuple[str, tuple[str, ...]]] = []
            for act in activations_of(layer):
                if act in ACTIVATION_OPS and not ctx.target.runs_activation(act, layer.class_name):
                    found.append((act, ACTIVATION_OPS[act]))
            if layer.class_name in ("LeakyReLU", "ELU"):
                found.append((layer.class_name, LAYER_OPS[layer.class_name]))
            for act, ops in found:
                missing = [op for op in ops if not ctx.target.supports(op)]
                if not missing:
                    continue
                how, app = REPLACEMENT.get(act, (None, None))
                yield self.violation(
                    f"{layer.class_name} {layer.name!r} uses {act} ({', '.join(missing)}), which "
                    f"{ctx.target.name} does not run: {consequence(ctx.target)}",
                    layer.name,
                    fix=f"replace {act} by {how}" if how else None,
                    applicability=app,
                    pointer=layer.pointer,
                    rewrite=_rewrite(act, layer, path),
                    ops=tuple(missing),
                )

    def _spelled_hard_swish(self, graph, ctx):
        """`Multiply([x, relu6(x + 3) / 6])` (tf_keras MobileNetV3, hand-written code): no
        activation says hard_swish, but the converter fuses the pattern into HARD_SWISH."""
        if ctx.target.supports("HARD_SWISH"):
            return
        for scope, g in graph.models():
            for multiply, _ in spelled_hard_swish(g):
                layer = g.layers[multiply]
                yield self.violation(
                    f"Multiply {multiply!r} spells out hard_swish, x·relu6(x+3)/6: the converter fuses it into "
                    f"HARD_SWISH, which {ctx.target.name} does not run: {consequence(ctx.target)}",
                    multiply,
                    fix="move the 1/6 onto x, relu6(x+3)·(x/6), which the converter keeps unfused",
                    pointer=layer.pointer,
                    rewrite=Rewrite(rewrites.hard_swish_spelled, scope, multiply),
                )

    CASES = [
        ModelCase(
            "spelled-out-hard-swish",
            functional_config(
                [("x", (1, 8), "float32")],
                [("plus3", "Rescaling", {"scale": 1.0, "offset": 3.0}, ["x"]),
                 ("relu6", "ReLU", {"max_value": 6.0}, ["plus3"]),
                 ("div6", "Rescaling", {"scale": 1 / 6, "offset": 0.0}, ["relu6"]),
                 ("hswish", "Multiply", {}, ["x", "div6"])],
                ["hswish"],
            ),
            fires=True,
            count=1,
            # Rewired, not rebuilt: the 1/6 scales x and the product reads relu6(x + 3).
            expected={"name": "div6", "inbound_nodes": [{"args": [{"config": {"keras_history": ["x", 0, 0]}}]}]},
        ),
        ModelCase(
            "conv-hard-swish",
            functional_config(
                [("x", (1, 8, 8, 3), "float32")], [("c", "Conv2D", {"filters": 4, "kernel_size": 3,
                                                                    "activation": "hard_silu"}, ["x"])], ["c"]
            ),
            fires=True,
            count=1,
            # The model output keeps its name: the Conv2D becomes c_pre.
            expected=[("x", "InputLayer"), ("c_pre", "Conv2D"), ("c_div6_plus_half", "Rescaling"),
                      ("c_clip01", "ReLU"), ("c", "Multiply")],
        ),
        ModelCase(
            "hard-swish-activation-layer",
            functional_config(
                [("x", (1, 8, 8, 3), "float32")],
                [("c", "Conv2D", {"filters": 4, "kernel_size": 1}, ["x"], "float32", (1, 8, 8, 4)),
                 ("act", "Activation", {"activation": "hard_swish"}, ["c"], "float32", (1, 8, 8, 4))],
                ["act"],
            ),
            fires=True,
            count=1,
            # The Activation goes; its name goes to the product readers use.
            expected=[("x", "InputLayer"), ("c", "Conv2D"), ("act_div6_plus_half", "Rescaling"),
                      ("act_clip01", "ReLU"), ("act", "Multiply")],
        ),
        ModelCase(
            "leaky-relu-layer",
            functional_config([("x", (1, 8), "float32")], [("l", "LeakyReLU", {"negative_slope": 0.1}, ["x"])], ["l"]),
            fires=True,
            count=1,
            expected=[("x", "InputLayer"), ("l", "PReLU")],
        ),
        ModelCase(  # the same layer where the target runs LEAKY_RELU and HARD_SWISH (Vela 5.2.0): left as it is
            "leaky-relu-and-hard-swish-on-ethos-u",
            functional_config([("x", (1, 8, 8, 3), "float32")],
                              [("c", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "hard_silu"}, ["x"]),
                               ("l", "LeakyReLU", {"negative_slope": 0.1}, ["c"])], ["l"]),
            fires=False,
            targets=("ethos-u55", "ethos-u65", "ethos-u85"),
        ),
        ModelCase(
            "sequential-leaky-relu",
            sequential_config(("x", (1, 4, 4, 3), "float32"), [("l", "LeakyReLU", {"negative_slope": 0.1})]),
            fires=True,
            count=1,
            expected={"class_name": "PReLU", "config": {"name": "l", "shared_axes": [1, 2],
                                                        "alpha_initializer": {"config": {"value": 0.1}}}},
        ),
        ModelCase(
            "sequential-conv-hard-swish",
            sequential_config(("x", (1, 8, 8, 3), "float32"),
                              [("c", "Conv2D", {"filters": 4, "kernel_size": 3, "activation": "hard_silu"},
                                (1, 8, 8, 3)),
                               ("f", "Flatten", {})]),
            fires=True,
            count=1,
            # The Sequential becomes the Functional it stands for: the new layers read x and each other.
            expected=[("x", "InputLayer"), ("c", "Conv2D"), ("c_div6_plus_half", "Rescaling"), ("c_clip01", "ReLU"),
                      ("c_hswish", "Multiply"), ("f", "Flatten")],
        ),
        ModelCase(
            "sequential-leaky-relu-activation-output",
            sequential_config(("x", (1, 8, 8, 3), "float32"),
                              [("c", "Conv2D", {"filters": 4, "kernel_size": 3, "padding": "valid",
                                                "activation": "leaky_relu"}, (1, 8, 8, 3))]),
            fires=True,
            count=1,
            # No layer reads the output: its shape (the alpha's) is derived from the Conv2D's config.
            expected={"class_name": "PReLU", "build_config": {"input_shape": [1, 6, 6, 4]},
                      "config": {"name": "c_prelu", "shared_axes": [1, 2]}},
        ),
        ModelCase(
            "sequential-gelu-activation-output",
            sequential_config(("x", (1, 8), "float32"), [("d", "Dense", {"units": 4}, (1, 8)),
                                                         ("act", "Activation", {"activation": "gelu"})]),
            fires=True,
            count=1,
            expected=[("x", "InputLayer"), ("d", "Dense"), ("act_cube", "Multiply"), ("act_cubic", "Rescaling"),
                      ("act_inner", "Add"), ("act_scaled", "Rescaling"), ("act_tanh", "Activation"),
                      ("act_gate", "Rescaling"), ("act", "Multiply")],
        ),
        ModelCase(
            "gelu-dense",
            functional_config([("x", (1, 8), "float32")], [("d", "Dense", {"units": 4, "activation": "gelu"}, ["x"])], ["d"]),
            fires=True,
            count=1,
            expected=[("x", "InputLayer"), ("d_pre", "Dense"), ("d_cube", "Multiply"), ("d_cubic", "Rescaling"),
                      ("d_inner", "Add"), ("d_scaled", "Rescaling"), ("d_tanh", "Activation"), ("d_gate", "Rescaling"),
                      ("d", "Multiply")],
        ),
        ModelCase(
            "relu6",
            functional_config([("x", (1, 8), "float32")], [("d", "Dense", {"units": 4, "activation": "relu6"}, ["x"])], ["d"]),
            fires=False,
        ),
        ModelCase(
            "hard-swish-fine-on-int8-cpu",
            functional_config(
                [("x", (1, 8, 8, 3), "float32")], [("c", "Conv2D", {"filters": 4, "kernel_size": 3,
                                                                    "activation": "hard_silu"}, ["x"])], ["c"]
            ),
            fires=False,
            targets=("int8",),
        ),
    ]
