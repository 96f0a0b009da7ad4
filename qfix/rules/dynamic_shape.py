"""QF301 dynamic-shape: unknown batch or spatial dimensions for a static-shape target, or a batch the target does not run (model and source).

## What it does
Model side: finds model inputs with unknown (`None`) dimensions in a `.keras` config, and
inputs whose fixed batch differs from the batch the target's recipe converts at.

Source side: in a file that converts its model (a `TFLiteConverter`) or exports it for a
converter (`model.export`, `tf.saved_model.save`), flags `keras.Input(...)` /
`keras.layers.InputLayer(...)` without a fixed batch size, and input shapes with `None`
dimensions (`Input((None, None, 3))`). Library code, unit tests, float-only examples and
training or QAT scripts that convert nothing are not reported: a dynamic batch is right
there, and the model reaches the target through another file (whose saved model the model
side checks).

## Why is this bad?
`keras.Input(shape)` leaves the batch dimension `None`, so the converted model has
`shape_signature [-1, ...]`, and shape-dependent layers (Reshape, LayerNormalization,
EfficientNet's squeeze-excite, ...) add SHAPE / STRIDED_SLICE / PACK / FILL chains. A
static-shape target refuses dynamic tensors outright (the Edge TPU: "Attempting to use a
delegate that only supports static-sized tensors with a graph that has dynamic-sized
tensors"); microcontroller and NPU compilers need static shapes too.

## Example
```python
inputs = keras.Input((224, 224, 3))
```
In a saved model: `Input((None, None, 3))`.

## Use instead
```python
inputs = keras.Input((224, 224, 3), batch_size=1)
```

## Fix safety
Model: safe for the batch dimension (qfix's recipe converts with the profile's batch, 1);
display-only for a spatial size, which only you can choose.

Source: unsafe for the batch size (`batch_size=1`, added in the call's own layout). Batch 1
computes the same outputs per sample and changes no weight, but a model whose input batch is
fixed to 1 no longer accepts larger batches; in a file that also trains the model (`fit`, a
`GradientTape` loop, tfmot) the fix is display-only: fix the batch at conversion or build a
separate inference model. `None` height/width/length need values only the user knows:
display-only.

## Targets
A target whose profile sets `static_shapes = true` (the batch it runs is the profile's
`batch`). Targets with dynamic shapes (the int8 CPU) never get it for a dynamic dimension.
A fixed batch other than the recipe's (an input built with `batch_size=4`) is reported on every
target whose recipe pins the batch, the int8 CPU's included: the `.tflite` takes the recipe's
batch, not the model's, and a runtime that feeds the model's batch would fail. Both sides report a
dynamic batch as a warning and an unknown spatial dimension as a blocker. With `--mode qat` a dynamic
batch is not reported: a model meant for training keeps it (the batch is fixed at conversion).
"""

from __future__ import annotations

import libcst as cst

from qfix.source.names import last_name
from qfix.source.rule import Invalid, Replace, SourceRule, Valid
from qfix.source.util import append_arg, arg
from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.rewrites import Rewrite
from qfix.types import Applicability, Severity
from qfix.rules.base import ModelCase, ModelRule

INPUTS = {"keras.Input", "keras.layers.Input", "keras.layers.InputLayer"}


_CONVERT = "converter = tf.lite.TFLiteConverter.from_keras_model(model)\nconverter.optimizations = [tf.lite.Optimize.DEFAULT]\n"


class DynamicShape(SourceRule):
    """Source side of QF301 dynamic-shape; documented once, in the module docstring
    (`qfix rule QF301`)."""

    code = "QF301"
    name = "dynamic-shape"
    TARGET_NEEDS = "static_shapes"
    TRIGGERS = ("Input",)

    VALID = [
        Valid("import keras\nimport tensorflow as tf\ni = keras.Input((224, 224, 3), batch_size=1)\nmodel = keras.Model(i, i)\n" + _CONVERT, target="edgetpu"),
        Valid("import keras\nimport tensorflow as tf\ni = keras.Input((224, 224, 3))\nmodel = keras.Model(i, i)\n" + _CONVERT),
        Valid("import keras\nimport tensorflow as tf\ni = keras.Input((224, 224, 3))\nmodel = keras.Model(i, i)\n" + _CONVERT, target="int8"),
        Valid("import keras\nimport tensorflow as tf\ni = keras.Input(batch_shape=(1, 8))\nmodel = keras.Model(i, i)\n" + _CONVERT, target="edgetpu"),
        # library code: builds a model, never converts it
        Valid("import keras\n\ndef backbone():\n    i = keras.Input((224, 224, 3))\n    return keras.Model(i, keras.layers.Conv2D(8, 3)(i))\n", target="edgetpu"),
        # a training script: a dynamic batch is right there
        Valid("import keras\ni = keras.Input((8,))\nmodel = keras.Model(i, keras.layers.Dense(2)(i))\nmodel.compile('adam', 'mse')\nmodel.fit(x, y, batch_size=32)\n", target="edgetpu"),
        # a QAT script
        Valid("import tf_keras as keras\nimport tensorflow_model_optimization as tfmot\ni = keras.Input((8,))\nq = tfmot.quantization.keras.quantize_model(keras.Model(i, keras.layers.Dense(2)(i)))\n", target="edgetpu"),
        # trains a model, then converts a separate fixed-batch inference model
        Valid("import tensorflow as tf\ni = tf.keras.Input((28, 28))\nmodel = tf.keras.Model(i, i)\nmodel.fit(x, y)\n"
              "j = tf.keras.Input((28, 28), batch_size=1)\nmodel = tf.keras.Model(j, j)\n" + _CONVERT, target="edgetpu"),
        # a float conversion (a CPU post-processing model) is not for an integer accelerator
        Valid("import tensorflow as tf\ni = tf.keras.Input((2,), dtype=tf.int64)\nmodel = tf.keras.Model(i, i)\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
              "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]\n", target="edgetpu"),
        # a unit test that converts
        Valid("import tensorflow as tf\n\nclass ConvertTest(tf.test.TestCase):\n    def test_it(self):\n        i = tf.keras.Input((8,))\n        model = tf.keras.Model(i, i)\n        tf.lite.TFLiteConverter.from_keras_model(model).convert()\n", target="edgetpu"),
    ]
    INVALID = [
        Invalid(
            "import keras\nimport tensorflow as tf\ni = keras.Input((224, 224, 3))\nmodel = keras.Model(i, keras.layers.Conv2D(8, 3)(i))\n" + _CONVERT,
            target="edgetpu",
            expected="import keras\nimport tensorflow as tf\ni = keras.Input((224, 224, 3), batch_size=1)\nmodel = keras.Model(i, keras.layers.Conv2D(8, 3)(i))\n" + _CONVERT,
            applicability=Applicability.UNSAFE,
            count=1,
        ),
        Invalid(
            "import tensorflow as tf\ni = tf.keras.layers.Input(shape=(None, None, 3), name='img')\nmodel = tf.keras.Model(i, i)\n" + _CONVERT,
            target="tflm",
            expected="import tensorflow as tf\ni = tf.keras.layers.Input(shape=(None, None, 3), name='img', batch_size=1)\nmodel = tf.keras.Model(i, i)\n" + _CONVERT,
            count=2,
        ),
        Invalid(  # exported for a converter
            "import keras\ni = keras.Input((8,), batch_size=None)\nmodel = keras.Model(i, i)\nmodel.export('saved')\n",
            target="edgetpu",
            expected="import keras\ni = keras.Input((8,), batch_size=1)\nmodel = keras.Model(i, i)\nmodel.export('saved')\n",
        ),
        Invalid(  # multi-line call: the fix keeps the layout and leaves no trailing whitespace
            "import keras\nimport tensorflow as tf\ni = keras.Input(\n    (8,),\n    name='x',\n)\nmodel = keras.Model(i, i)\n" + _CONVERT,
            target="edgetpu",
            expected="import keras\nimport tensorflow as tf\ni = keras.Input(\n    (8,),\n    name='x',\n    batch_size=1,\n)\nmodel = keras.Model(i, i)\n" + _CONVERT,
        ),
        Invalid(  # trains and converts: the batch is fixed at conversion, not in the training model
            "import keras\nimport tensorflow as tf\ni = keras.Input((8,))\nmodel = keras.Model(i, keras.layers.Dense(2)(i))\nmodel.fit(x, y)\n" + _CONVERT,
            target="edgetpu",
            applicability=Applicability.DISPLAY_ONLY,
            message="also trains",
        ),
    ]

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._inputs: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        if last_name(node.func) not in ("Input", "InputLayer") or self.names.canon(node.func) not in INPUTS:
            return
        if not any(a.star for a in node.args):
            self._inputs.append(node)

    def finish(self) -> None:
        if not self._inputs:
            return
        act = self.ctx.activity
        if not act.deploys:
            return  # library code, a unit test, a training / QAT or float-only script
        # a file that trains one model and builds a fixed-batch one has its inference model
        separate = (act.trains or act.qat) and any(_fixed_batch(n) for n in self._inputs)
        for node in self._inputs:
            self._check(node, act, batch=not separate)

    def _check(self, node: cst.Call, act, *, batch: bool) -> None:
        tgt = self.ctx.target.id  # type: ignore[union-attr]
        trains = act.trains or act.qat
        batch_fix = (
            "Fix the batch at conversion (a concrete function with a `TensorSpec([1, ...])`) or build the "
            "inference model with `batch_size=1`: this file also trains, where a dynamic batch is right"
        )
        bshape = arg(node, None, "batch_shape") or arg(node, None, "batch_input_shape")
        shape = arg(node, 0, "shape") or arg(node, 0, "input_shape")
        dims: list[cst.BaseExpression] = []
        if bshape is not None:
            if isinstance(bshape.value, (cst.Tuple, cst.List)):
                dims = [e.value for e in bshape.value.elements]
                if batch and dims and isinstance(dims[0], cst.Name) and dims[0].value == "None":
                    self.report(node, f"Dynamic batch dimension in `batch_shape`: the converted model keeps it, and target {tgt} needs static shapes",
                                fix=batch_fix if trains else "Use 1 as the batch dimension", applicability=Applicability.DISPLAY_ONLY, severity=Severity.WARNING)
                dims = dims[1:]
        else:
            bs = arg(node, 1, "batch_size")
            if batch and (bs is None or (isinstance(bs.value, cst.Name) and bs.value.value == "None" and bs.keyword is not None)):
                msg = f"Input without a fixed batch size: the model this file converts has a dynamic batch dimension, and target {tgt} needs static shapes"
                if trains:
                    self.report(node, msg + " (this file also trains it)", fix=batch_fix, applicability=Applicability.DISPLAY_ONLY, severity=Severity.WARNING)
                else:
                    self.report(node, msg, fix="Add `batch_size=1`", applicability=Applicability.UNSAFE, edits=[_batch_edit(node, bs)], severity=Severity.WARNING)
            if shape is not None and isinstance(shape.value, (cst.Tuple, cst.List)):
                dims = [e.value for e in shape.value.elements]
        if any(isinstance(d, cst.Name) and d.value == "None" for d in dims):
            self.report(
                node, f"Input shape has `None` dimensions: target {tgt} needs every dimension fixed",
                fix="Give the concrete size (e.g. the image height and width the model is deployed with)",
                applicability=Applicability.DISPLAY_ONLY,
            )


def _fixed_batch(node: cst.Call) -> bool:
    """`batch_size=<not None>` or `batch_shape=(<not None>, ...)`."""
    bs = arg(node, None, "batch_size")
    if bs is not None:
        return not (isinstance(bs.value, cst.Name) and bs.value.value == "None")
    bshape = arg(node, None, "batch_shape") or arg(node, None, "batch_input_shape")
    if bshape is not None and isinstance(bshape.value, (cst.Tuple, cst.List)) and bshape.value.elements:
        first = bshape.value.elements[0].value
        return not (isinstance(first, cst.Name) and first.value == "None")
    return False


def _batch_edit(node: cst.Call, bs: cst.Arg | None) -> Replace:
    """`batch_size=1` replacing `batch_size=None`, or added as the last argument in the call's
    own layout (`util.append_arg`: one argument per line stays so, comments stay where they
    were, no line ends in whitespace)."""
    if bs is not None:
        return Replace(bs.value, cst.Integer("1"))
    new_arg = cst.Arg(
        keyword=cst.Name("batch_size"), value=cst.Integer("1"),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    return Replace(node, append_arg(node, new_arg))


# --- model side ----------------------------------------------------------------------------


class DynamicShapeModel(ModelRule):
    """Model side of QF301 dynamic-shape; documented once, in the module docstring
    (`qfix rule QF301`)."""

    code = "QF301"
    name = "dynamic-shape"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        for inp in graph.input_layers():
            shape = inp.out_shape
            if shape is None:
                continue
            batch = ctx.target.batch
            if shape and shape[0] is not None and batch and shape[0] != batch and ctx.mode != "qat":
                # Any target whose recipe pins the batch (the int8 CPU's too): the .tflite takes
                # `batch` samples per call whatever the model says, so a runtime that feeds the
                # model's own batch fails (or reads one sample) - say so, never silently.
                yield self._batch(inp, f"input {inp.name!r} has a fixed batch of {shape[0]} {_fmt(shape)}; "
                                       f"{ctx.target.name} runs batch {batch}: qfix's recipe converts at batch "
                                       f"{batch}, so the .tflite takes {batch} sample(s) per inference, not "
                                       f"{shape[0]}", f"fix the batch dimension to {batch} (same outputs per sample)")
                return  # one input tells it: every input shares the batch
            if not ctx.target.static_shapes:
                continue
            spatial = [i for i, d in enumerate(shape) if d is None and i > 0]
            if spatial:
                yield self.violation(
                    f"input {inp.name!r} has shape {_fmt(shape)}: dimension(s) {spatial} are unknown and "
                    f"{ctx.target.name} needs static shapes",
                    inp.name,
                    fix="give the input a fixed size (e.g. the training resolution)",
                    applicability=Applicability.DISPLAY_ONLY,
                    pointer=inp.pointer,
                )
            elif shape and shape[0] is None and batch and ctx.mode != "qat":
                # --mode qat: a model meant for training keeps its dynamic batch (the batch is
                # fixed when the QAT model is converted)
                yield self._batch(inp, f"input {inp.name!r} has a dynamic batch {_fmt(shape)}; {ctx.target.name} "
                                       f"runs batch {batch} (qfix's recipe fixes it at conversion)",
                                       f"fix the batch dimension to {batch}")

    def _batch(self, inp, message: str, fix: str):
        """A batch warning with the safe rewrite that gives every input the recipe's batch."""
        return self.violation(message, inp.name, fix=fix, severity=Severity.WARNING, pointer=inp.pointer,
                              # A Sequential without an InputLayer entry has no input to give a batch.
                              rewrite=Rewrite(rewrites.static_batch, (), inp.name) if inp.pointer else None)

    CASES = [
        ModelCase(
            "dynamic-spatial",
            functional_config([("x", (None, None, None, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=True,
            count=1,
        ),
        ModelCase(
            "dynamic-batch",
            functional_config([("x", (None, 8, 8, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=True,
            count=1,
            expected={"class_name": "InputLayer", "config": {"batch_shape": [1, 8, 8, 3]}},
        ),
        ModelCase(  # Vela: "Tensors must have constant shape"; a MEAN needs batch 1 (the profile's batch)
            "dynamic-batch-ethos-u",
            functional_config([("x", (None, 8, 8, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=True,
            count=1,
            targets=("ethos-u55", "ethos-u85"),
            expected={"class_name": "InputLayer", "config": {"batch_shape": [1, 8, 8, 3]}},
        ),
        ModelCase(
            "sequential-dynamic-batch",
            sequential_config(("x", (None, 8), "float32"), [("d", "Dense", {"units": 2}, (None, 8))]),
            fires=True,
            count=1,
            expected={"class_name": "InputLayer", "config": {"batch_shape": [1, 8]}},
        ),
        ModelCase(
            "static",
            functional_config([("x", (1, 8, 8, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=False,
        ),
        ModelCase(  # a fixed batch other than the target's: the .tflite would take batch 1, silently
            "fixed-batch-four",
            functional_config([("x", (4, 8, 8, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=True,
            count=1,
            expected={"class_name": "InputLayer", "config": {"batch_shape": [1, 8, 8, 3]}},
        ),
        ModelCase(  # the int8 CPU runs dynamic shapes, but its recipe converts at batch 1 too
            "fixed-batch-four-int8",
            sequential_config(("x", (4, 8), "float32"), [("d", "Dense", {"units": 2}, (4, 8))]),
            fires=True,
            count=1,
            targets=("int8", "ethos-u55"),
            expected={"class_name": "InputLayer", "config": {"batch_shape": [1, 8]}},
        ),
        ModelCase(  # a model meant for training keeps its batch
            "fixed-batch-four-qat",
            functional_config([("x", (4, 8, 8, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=False,
            mode="qat",
        ),
        ModelCase(  # a model meant for training keeps its dynamic batch
            "dynamic-batch-qat",
            functional_config([("x", (None, 8, 8, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=False,
            mode="qat",
        ),
        ModelCase(
            "sequential-dynamic-batch-qat",
            sequential_config(("x", (None, 8), "float32"), [("d", "Dense", {"units": 2}, (None, 8))]),
            fires=False,
            mode="qat",
        ),
        ModelCase(
            "dynamic-ok-on-int8-cpu",
            functional_config([("x", (None, None, None, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=False,
            targets=("int8",),
        ),
    ]


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
