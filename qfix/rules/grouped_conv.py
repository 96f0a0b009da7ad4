"""QF306 grouped-conv: a grouped convolution makes every CONV_2D of the model a version the target cannot parse.

## What it does
Finds Conv1D and Conv2D layers with `groups` > 1 when the target's compiler knows CONV_2D only
up to a version below 6.

## Why is this bad?
A grouped convolution converts to CONV_2D version 6 (tensorflow/lite/tools/versioning/
op_version.cc: `is_grouped_convolution` → 6), and a `.tflite` records one version per op type, so
every CONV_2D of the model becomes version 6 - the plain stem conv too (TF 2.21, reproduced).
edgetpu_compiler 16 stops at "Didn't find op for builtin opcode 'CONV_2D' version '6'" and
rejects the whole file (google-coral/edgetpu #631, #845): nothing maps, although only one layer
is grouped. The `experimental_new_converter=False` workaround seen in old threads raises
TypeError on TF 2.21.

## Example
```python
y = keras.layers.Conv2D(32, 3, groups=4)(x)
```

## Use instead
```python
parts = keras.ops.split(x, 4, axis=-1)          # SPLIT
ys = [keras.layers.Conv2D(8, 3)(p) for p in parts]  # one CONV_2D v3 per group
y = keras.layers.Concatenate()(ys)
```

## Fix safety
Safe, in both dialects. A Conv2D whose groups equal its input channels (ConvNeXt's 7×7 blocks) is
a depthwise convolution and becomes a DepthwiseConv2D (`depth_multiplier = filters / groups`,
the kernel (kh, kw, 1, F) reshaped to (kh, kw, C, F/C), output order unchanged): the same
function and the same work. Otherwise, in Keras 3 models the layer is split: each group's convolution gets its
slice of the kernel (`kernel[..., :, i·F/g:(i+1)·F/g]`) and bias, and the activation stays on each
(it is elementwise), so the float outputs are identical; after conversion SPLIT v2, CONV_2D v3 per
group, CONCATENATION v2. A Sequential model is written as the Functional model it stands for (a
split is not a chain). Where the split does not apply (tf_keras models, a layer called more than
once, a softmax activation) the layer becomes `groups=1` with the block-diagonal kernel
(k…, C, F): group i's slice in its block, zeros elsewhere. The zeros add nothing, so it is the same
function (float outputs differ by ~1e-7, summation order) and one CONV_2D v3, at g× the layer's
multiply-adds.

## Targets
Targets whose op table caps CONV_2D below version 6 (the profile's `max_version`).
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.config import activation_name
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.split_grouped_conv import CONVS, NOT_ELEMENTWISE
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability

GROUPED_VERSION = 6  # op_version.cc, BuiltinOperator_CONV_2D


def _splittable(layer) -> bool:
    """What `split_grouped_conv` handles: one call, an elementwise activation, whole groups."""
    cfg = layer.config
    return (len(layer.calls) == 1 and activation_name(layer.raw) not in NOT_ELEMENTWISE
            and isinstance(cfg.get("filters"), int) and cfg["filters"] % cfg["groups"] == 0)


def _depthwise(layer) -> bool:
    """A Conv2D whose groups equal its (static) input channels: a depthwise convolution."""
    cfg = layer.config
    shape = (layer.raw.get("build_config") or {}).get("input_shape")
    if not isinstance(shape, list) and len(layer.inputs) == 1 and layer.inputs[0].shape is not None:
        shape = list(layer.inputs[0].shape)
    if layer.class_name != "Conv2D" or not isinstance(shape, list) or len(shape) != 4:
        return False
    channels = shape[1] if cfg.get("data_format") == "channels_first" else shape[-1]
    return (channels == cfg["groups"] and isinstance(cfg.get("filters"), int) and cfg["filters"] % cfg["groups"] == 0
            and len(layer.calls) == 1)


class GroupedConv(ModelRule):
    """QF306 grouped-conv; documented in the module docstring (`qfix rule QF306`)."""

    code = "QF306"
    name = "grouped-conv"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        spec = ctx.target.op("CONV_2D")
        if spec is None or not spec.supported or not spec.too_new(GROUPED_VERSION):
            return
        for scope, g in graph.models():
            for layer in g:
                groups = layer.config.get("groups")
                if layer.class_name not in CONVS or not isinstance(groups, int) or groups < 2:
                    continue
                split = graph.dialect == "keras3" and _splittable(layer)
                if _depthwise(layer):
                    rewrite = rewrites.depthwise_grouped_conv
                    fix = (f"write it as the DepthwiseConv2D it is (groups={groups} equals its input channels): "
                           f"depth_multiplier={layer.config.get('filters', 0) // groups}, the kernel reshaped")
                elif split:
                    rewrite = rewrites.split_grouped_conv
                    fix = f"split it: one {layer.class_name} per group on its slice of the channels, then Concatenate"
                else:
                    rewrite = rewrites.densify_grouped_conv
                    fix = (f"make it groups=1 with a block-diagonal kernel (zeros outside each group's block): the same "
                           f"function at {groups}× the layer's multiply-adds")
                yield self.violation(
                    f"{layer.class_name} {layer.name!r} has groups={groups}: a grouped convolution is CONV_2D version "
                    f"{GROUPED_VERSION}, which makes every CONV_2D of the model version {GROUPED_VERSION}; "
                    f"{ctx.target.name}'s compiler knows CONV_2D up to version {spec.max_version} and rejects "
                    "the whole model",
                    layer.name, pointer=layer.pointer, fix=fix,
                    rewrite=Rewrite(rewrite, scope, layer.name),
                )

    CASES = [
        ModelCase(
            "grouped-conv2d",
            functional_config(
                [("x", (None, 16, 16, 8), "float32")],
                [("stem", "Conv2D", {"filters": 16, "kernel_size": [3, 3]}, ["x"], "float32", (None, 14, 14, 16)),
                 ("g", "Conv2D", {"filters": 32, "kernel_size": [3, 3], "groups": 4, "activation": "relu"}, ["stem"],
                  "float32", (None, 12, 12, 32))],
                ["g"]),
            fires=True, count=1,
            expected=[("x", "InputLayer"), ("stem", "Conv2D"), ("g_split", "Split"), ("g_g0", "Conv2D"),
                      ("g_g1", "Conv2D"), ("g_g2", "Conv2D"), ("g_g3", "Conv2D"), ("g", "Concatenate")],
        ),
        ModelCase(
            "grouped-conv1d",
            functional_config(
                [("x", (None, 16, 8), "float32")],
                [("g", "Conv1D", {"filters": 4, "kernel_size": [3], "groups": 2}, ["x"], "float32", (None, 14, 4))],
                ["g"]),
            fires=True, count=1,
            expected={"class_name": "Conv1D", "config": {"name": "g_g1", "filters": 2, "groups": 1}},
        ),
        ModelCase(
            "sequential",
            sequential_config(("x", (None, 16, 16, 8), "float32"),
                              [("g", "Conv2D", {"filters": 8, "kernel_size": [3, 3], "groups": 2})]),
            fires=True, count=1,
            expected=[("x", "InputLayer"), ("g_split", "Split"), ("g_g0", "Conv2D"), ("g_g1", "Conv2D"),
                      ("g", "Concatenate")],
        ),
        ModelCase(
            "softmax-gets-the-dense-kernel",
            functional_config([("x", (None, 8, 8, 4), "float32")],
                              [("g", "Conv2D", {"filters": 4, "kernel_size": [3, 3], "groups": 2,
                                                "activation": "softmax"}, ["x"], "float32", (None, 6, 6, 4))], ["g"]),
            fires=True, count=1,
            expected={"class_name": "Conv2D", "config": {"name": "g", "filters": 4, "groups": 1}},
        ),
        ModelCase(
            "groups-equal-channels-is-depthwise",  # ConvNeXt's 7×7 convolutions (keras.applications)
            functional_config([("x", (None, 8, 8, 6), "float32")],
                              [("dw", "Conv2D", {"filters": 12, "kernel_size": [7, 7], "groups": 6,
                                                 "padding": "same"}, ["x"], "float32", (None, 8, 8, 12))], ["dw"]),
            fires=True, count=1,
            expected={"class_name": "DepthwiseConv2D", "config": {"name": "dw", "depth_multiplier": 2}},
        ),
        ModelCase(
            "plain-conv",
            functional_config([("x", (None, 16, 16, 8), "float32")],
                              [("c", "Conv2D", {"filters": 8, "kernel_size": [3, 3], "groups": 1}, ["x"])], ["c"]),
            fires=False,
        ),
        ModelCase(
            "int8-cpu-runs-v6",
            functional_config([("x", (None, 16, 16, 8), "float32")],
                              [("g", "Conv2D", {"filters": 8, "kernel_size": [3, 3], "groups": 2}, ["x"])], ["g"]),
            fires=False, targets=("int8",),
        ),
    ]
