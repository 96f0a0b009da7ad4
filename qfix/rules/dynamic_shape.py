"""QF301 dynamic-shape: unknown batch or spatial dimensions for a static-shape target (model and source).

## What it does
Model side: finds model inputs with unknown (`None`) dimensions in a `.keras` config.

Source side: flags `keras.Input(...)` / `keras.layers.InputLayer(...)` without a fixed batch
size, and input shapes with `None` dimensions (`Input((None, None, 3))`).

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

Source: unsafe for the batch size. Batch 1 computes the same outputs per sample and changes
no weight, but source that builds the model usually trains it too, and a model whose input
batch is fixed to 1 no longer accepts larger batches. `None` height/width/length need values
only the user knows: display-only.

## Targets
A target whose profile sets `static_shapes = true` (the batch it runs is the profile's
`batch`). Targets with dynamic shapes (the int8 CPU) never get it. With `--mode qat` a dynamic
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


class DynamicShape(SourceRule):
    """Source side of QF301 dynamic-shape; documented once, in the module docstring
    (`qfix rule QF301`)."""

    code = "QF301"
    name = "dynamic-shape"
    TARGET_NEEDS = "static_shapes"
    TRIGGERS = ("Input",)

    VALID = [
        Valid("import keras\ni = keras.Input((224, 224, 3), batch_size=1)\n", target="edgetpu"),
        Valid("import keras\ni = keras.Input((224, 224, 3))\n"),
        Valid("import keras\ni = keras.Input((224, 224, 3))\n", target="int8"),
        Valid("import keras\ni = keras.Input(batch_shape=(1, 8))\n", target="edgetpu"),
    ]
    INVALID = [
        Invalid(
            "import keras\ni = keras.Input((224, 224, 3))\n",
            target="edgetpu",
            expected="import keras\ni = keras.Input((224, 224, 3), batch_size=1)\n",
            applicability=Applicability.UNSAFE,
        ),
        Invalid(
            "import tensorflow as tf\ni = tf.keras.layers.Input(shape=(None, None, 3), name='img')\n",
            target="tflm",
            expected="import tensorflow as tf\ni = tf.keras.layers.Input(shape=(None, None, 3), name='img', batch_size=1)\n",
            count=2,
        ),
        Invalid(
            "import keras\ni = keras.Input((8,), batch_size=None)\n",
            target="edgetpu",
            expected="import keras\ni = keras.Input((8,), batch_size=1)\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if last_name(node.func) not in ("Input", "InputLayer") or self.names.canon(node.func) not in INPUTS:
            return
        if any(a.star for a in node.args):
            return
        tgt = self.ctx.target.id  # type: ignore[union-attr]
        bshape = arg(node, None, "batch_shape") or arg(node, None, "batch_input_shape")
        shape = arg(node, 0, "shape") or arg(node, 0, "input_shape")
        dims: list[cst.BaseExpression] = []
        if bshape is not None:
            if isinstance(bshape.value, (cst.Tuple, cst.List)):
                dims = [e.value for e in bshape.value.elements]
                if dims and isinstance(dims[0], cst.Name) and dims[0].value == "None":
                    self.report(node, f"Dynamic batch dimension in `batch_shape`: target {tgt} needs static shapes", fix="Use 1 as the batch dimension", applicability=Applicability.DISPLAY_ONLY)
                dims = dims[1:]
        else:
            bs = arg(node, 1, "batch_size")
            if bs is None or (isinstance(bs.value, cst.Name) and bs.value.value == "None" and bs.keyword is not None):
                new_arg = cst.Arg(keyword=cst.Name("batch_size"), value=cst.Integer("1"), equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
                if bs is None:
                    edit = Replace(node, append_arg(node, new_arg))
                else:
                    edit = Replace(bs.value, cst.Integer("1"))
                self.report(
                    node, f"Input without a fixed batch size: the converted model has a dynamic batch dimension, and target {tgt} needs static shapes",
                    fix="Add `batch_size=1` (use a separate inference model if this one is also trained)", applicability=Applicability.UNSAFE, edits=[edit],
                )
            if shape is not None and isinstance(shape.value, (cst.Tuple, cst.List)):
                dims = [e.value for e in shape.value.elements]
        if any(isinstance(d, cst.Name) and d.value == "None" for d in dims):
            self.report(
                node, f"Input shape has `None` dimensions: target {tgt} needs every dimension fixed",
                fix="Give the concrete size (e.g. the image height and width the model is deployed with)",
                applicability=Applicability.DISPLAY_ONLY,
            )


# --- model side ----------------------------------------------------------------------------


class DynamicShapeModel(ModelRule):
    """Model side of QF301 dynamic-shape; documented once, in the module docstring
    (`qfix rule QF301`)."""

    code = "QF301"
    name = "dynamic-shape"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        if not ctx.target.static_shapes:
            return
        for inp in graph.input_layers():
            shape = inp.out_shape
            if shape is None:
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
            elif shape and shape[0] is None and ctx.target.batch and ctx.mode != "qat":
                # --mode qat: a model meant for training keeps its dynamic batch (the batch is
                # fixed when the QAT model is converted)
                yield self.violation(
                    f"input {inp.name!r} has a dynamic batch {_fmt(shape)}; {ctx.target.name} runs batch "
                    f"{ctx.target.batch} (qfix's recipe fixes it at conversion)",
                    inp.name,
                    fix=f"fix the batch dimension to {ctx.target.batch}",
                    severity=Severity.WARNING,
                    pointer=inp.pointer,
                    # A Sequential without an InputLayer entry has no input to give a batch.
                    rewrite=Rewrite(rewrites.static_batch, (), inp.name) if inp.pointer else None,
                )

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
