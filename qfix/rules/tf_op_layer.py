"""QF508 tf-op-layer: a tf_keras TFOpLambda / SlicingOpLambda layer that tfmot cannot quantize.

## What it does
With `--mode qat`, finds the layers tf_keras records for raw TensorFlow calls on Keras
tensors (`x * 2.0`, `x / 255.0`, `tf.nn.relu6(x)`, `tf.image.resize(x, ...)`,
`x[:, :, :, 0:2]`). When the call is one of qfix's table (`qfix.model.lambda_table`: scale and
offset, relu/relu6/clip from 0, sigmoid/tanh/softmax/swish, resize, spatial and channel slices,
spatial mean, reshape keeping the batch), it replaces the layer by the built-in layer that
computes the same thing; otherwise it shows the call and how to write it as a layer.

## Why is this bad?
`tfmot.quantization.keras.quantize_model` cannot handle them. On tf_keras 2.21 / tfmot 0.8 an
op layer fails inside tfmot's clone (`'list' object has no attribute 'dtype'` for
`tf.__operators__.add`), or is rejected (`Layer tf.math.multiply:<class 'TFOpLambda'> is not
supported`); a slice loses its `slice_spec` in tfmot's transform and the next layer's weights
no longer fit (`Cannot assign value to variable ... Shape mismatch`). Sources: research
errors.md B6, B7; tensorflow/model-optimization#867, #1139, #1145.

## Example
```python
x = tf_keras.Input((8, 8, 4))
y = x[:, :, :, 0:2]          # SlicingOpLambda
y = tf.nn.relu6(y * 2.0)     # TFOpLambda ×2
```

## Use instead
```python
x = tf_keras.Input((8, 8, 4))
y = tf_keras.layers.Conv2D(2, 1, use_bias=False, trainable=False,
                           kernel_initializer=selection)(x)   # channels 0:2, or split the model
y = tf_keras.layers.Rescaling(2.0)(y)
y = tf_keras.layers.ReLU(6.0)(y)
```

## Fix safety
Safe: every row of the table computes the same float function (`x / c` becomes
`Rescaling(1/c)`, at most one float32 ulp apart); a channel slice becomes a non-trainable 1×1
Conv2D (4-D) or Dense with a 0/1 selection kernel and no bias, exact in float and quantized
exactly (0 and 1 are representable at any int8 scale of 1/127). Spatial slices become
Cropping1D/2D/3D. Ops of two tensors (`x * y`) and calls outside the table get display-only
guidance.

Only with `--mode qat`: for post-training quantization the converter sees the same TF ops
either way (MUL/ADD, RELU6, STRIDED_SLICE), so the rewrite gains nothing there, and a channel
selection as a convolution costs multiply-adds the STRIDED_SLICE does not.

## Targets
Every target: the rule reads no property of the target's profile (it concerns
quantization-aware training with tfmot).
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.bytecode import Unreadable, render
from qfix.model.cases import functional_config
from qfix.model.lambda_plan import Plan, op_expr, recorded_input_shape
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.lambda_to_builtin import read_plan
from qfix.model.rewrites.tf_op_to_builtin import OP_CLASSES
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability


def _op_case(name: str, function: str, kwargs: dict, shape=(None, 8, 8, 4)) -> dict:
    """An embedded case: one TFOpLambda (SlicingOpLambda for getitem) on input `x`, its constant
    arguments in the call node (in Keras 3's node format, which the cases are written in)."""
    cls = "SlicingOpLambda" if function == "__operators__.getitem" else "TFOpLambda"
    cfg = {"function": function, "__module": "tf_keras.src.layers.core.tf_op_layer", "__registered_name": cls}
    config = functional_config([("x", shape, "float32")], [(name, cls, cfg, ["x"])], [name])
    raw = config["config"]["layers"][1]
    raw["inbound_nodes"][0]["kwargs"] = kwargs
    raw["build_config"] = {"input_shape": list(shape)}
    return config


_FULL = {"start": None, "stop": None, "step": None}


class TfOpLayer(ModelRule):
    """QF508 tf-op-layer; documented in the module docstring (`qfix rule QF508`)."""

    code = "QF508"
    name = "tf-op-layer"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        if ctx.mode != "qat":
            return
        for path, layer in graph.walk():
            if layer.class_name not in OP_CLASSES:
                continue
            call = op_expr(layer.raw)
            p = read_plan(call, recorded_input_shape(layer), graph.dialect)
            shown = render(call) if not isinstance(call, Unreadable) else layer.config.get("function")
            what = f"{layer.class_name} {layer.name!r} computes `{shown}`"
            if isinstance(p, Plan):
                yield self.violation(
                    f"{what}: tfmot's quantize_model cannot handle an op layer; the built-in {p.spelled()} "
                    "computes the same thing", layer.name, pointer=layer.pointer,
                    fix=f"replace it with {p.spelled()}",
                    rewrite=Rewrite(rewrites.tf_op_to_builtin, path, layer.name),
                )
            else:
                yield self.violation(
                    f"{what}: tfmot's quantize_model cannot handle an op layer, and qfix has no built-in layer "
                    f"for it ({p})", layer.name, pointer=layer.pointer,
                    applicability=Applicability.DISPLAY_ONLY,
                    fix=("write it as a layer in the code that builds the model: `class Op(tf_keras.layers.Layer): "
                         f"def call(self, x): return {shown}` registered with "
                         "@tf_keras.utils.register_keras_serializable(), annotated with a QuantizeConfig "
                         "(or left float) for tfmot"),
                )

    CASES = [
        ModelCase("channel-slice", _op_case("tf.__operators__.getitem", "__operators__.getitem", {"slice_spec": [
            _FULL, _FULL, _FULL, {"start": 0, "stop": 2, "step": None}]}),
            fires=True, count=1, mode="qat",
            expected={"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": [1, 1], "use_bias": False,
                                                         "trainable": False}}),
        ModelCase("scale", _op_case("tf.math.truediv", "math.truediv", {"y": 255.0, "name": None}),
                  fires=True, count=1, mode="qat",
                  expected={"class_name": "Rescaling", "config": {"scale": 1 / 255.0, "offset": 0.0}}),
        ModelCase("relu6", _op_case("tf.nn.relu6", "nn.relu6", {}), fires=True, count=1, mode="qat",
                  expected={"class_name": "ReLU", "config": {"name": "tf.nn.relu6", "max_value": 6.0}}),
        ModelCase("not-in-table", _op_case("tf.math.exp", "math.exp", {}), fires=True, count=1, mode="qat"),
        ModelCase("ptq", _op_case("tf.nn.relu6", "nn.relu6", {}), fires=False),
        ModelCase("builtin", functional_config([("x", (None, 4), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
                  fires=False, mode="qat"),
    ]
