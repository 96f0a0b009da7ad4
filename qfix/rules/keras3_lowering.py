"""QF308 keras3-lowering: a Keras 3 layer that converts to ops its user never wrote, which the target lacks.

## What it does
Finds Keras 3 layers whose TFLite lowering (the table in qfix.model.lowerings, one entry per
lowering, each observed on Keras 3.15 / TF 2.21) hurts the target: `UpSampling2D` (nearest),
`UpSampling1D`, `UpSampling3D` and `RepeatVector` (also in tf_keras) all become reshapes and
TILE; `LayerNormalization` writes its shift as -mean·inv, a NEG that full-integer quantization
leaves in float; `GroupNormalization` reshapes to 5-D and leaves a NEG and a SQUARE in float. The
finding explains the lowering in Keras terms, names the ops, and gives the rewrite.

## Why is this bad?
Keras 3 implements these layers with `ops.repeat`, which the converter lowers to a reshape to
one more dimension, a TILE and a reshape back. The Edge TPU has no TILE, and the 5-D reshapes
of UpSampling2D have four dimensions larger than 1 where it allows three: the model is cut at
an unexplained "5-D RESHAPE" though the user wrote a plain 2x upsampling. tf_keras builds the
UpSampling layers on `tf.image.resize` (2-D) or SPLIT/CONCATENATION (1-D, 3-D) and is not
affected; its RepeatVector uses TILE too.

Keras 3's LayerNormalization computes x·inv + (β − mean·inv): the converted model has MEAN,
DEQUANTIZE, NEG, QUANTIZE, SQUARED_DIFFERENCE, ... — a float island (2 float tensors) in every
layer norm, which an integer accelerator cannot run (ConvNeXt has one per block, a transformer
two per block). tf_keras's LayerNormalization converts to int8 ops only.

## Example
```python
x = keras.Input((64, 64, 3))
y = keras.layers.UpSampling2D(2)(x)
```

## Use instead
```python
x = keras.Input((64, 64, 3))
y = keras.layers.Resizing(128, 128, interpolation="nearest")(x)  # one RESIZE_NEAREST_NEIGHBOR
```

## Fix safety
Safe for nearest UpSampling2D with a static input size: `Resizing(k·H, k·W, "nearest")` (no crop,
no pad, the same data_format) gives identical outputs (TF's half-pixel nearest resize reads row
floor((o + 0.5)/k) = floor(o/k), the repeated row) and has no weights. Safe for UpSampling1D
with a static input: `Reshape((T, 1, C))`, `Resizing(k·T, 1, "nearest")`, `Reshape((k·T, C))`,
the same argument on an image of width 1. Safe for RepeatVector(n) with static channels:
`Reshape((1, 1, C))`, `Resizing(n, 1, "nearest")`, `Reshape((n, C))` (every pixel of a nearest
resize from one pixel is that pixel). Safe for LayerNormalization over the last axis of a
static rank 2-4 float32 input: the mean as a 1×1 Conv2D/Conv1D (Dense on rank 2) of weights 1/C,
`Subtract()([x, mean])`, `RMSNormalization(epsilon)` with scale γ (the centred input has mean 0,
so its mean square is the variance) and β added by a 1×1 depthwise conv with bias β: within
1e-6 of the original, all int8. Over other axes the finding is display-only. No fix for
UpSampling3D or GroupNormalization: the finding says what to write instead (display-only).

## Targets
Targets whose op table lacks an op of the lowering, or that limit how many dimensions may be
larger than 1 (`max_innermost_dims`). Targets with TILE and no such limit never get it. The
LayerNormalization finding: every target whose recipe is full-integer (the float NEG island),
none with a float recipe (float16); a blocker where `activation_dtypes` has no float type, a
warning where it has one (TFLite Micro's float kernels run the island: a DEQUANTIZE/QUANTIZE
round trip and float arithmetic per layer norm).
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.lowerings import lowering_of
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.layernorm_decomposed import decomposable
from qfix.model.rewrites.upsampling_to_resizing import resized_size
from qfix.model.shapes import input_shape_of
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability, Severity


def _integer_input(graph, layer) -> str | None:
    """The integer dtype `layer` reads when TensorFlow runs it, or None."""
    from qfix.model.graph import is_integer
    from qfix.model.rewrites.float_kernel_cast import runtime_dtype

    dtype = runtime_dtype(graph, layer.inputs[0]) if layer.inputs else None
    return dtype if is_integer(dtype) else None


def _static(rewrite, shape, cfg) -> bool:
    """Whether the input size the rewrite needs is in the config."""
    if rewrite is rewrites.upsampling_to_resizing:
        return resized_size(shape, cfg) is not None
    if rewrite is rewrites.layernorm_decomposed:
        return decomposable(shape, cfg) is None
    return shape is not None and all(isinstance(d, int) for d in shape[1:])


class Keras3Lowering(ModelRule):
    """QF308 keras3-lowering; documented in the module docstring (`qfix rule QF308`)."""

    code = "QF308"
    name = "keras3-lowering"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        for scope, g in graph.models():
            for layer in g:
                entry = lowering_of(layer.class_name, layer.config, graph.dialect)
                why = entry.hurts(ctx.target) if entry is not None else []
                if not why:
                    continue
                msg = (f"{layer.class_name} {layer.name!r}: {entry.explain} ({', '.join(entry.emits)}); "
                       f"{'; '.join(why)}")
                rewrite = getattr(rewrites, entry.rewrite_fn) if entry.rewrite_fn else None
                fix = f"use {entry.rewrite}" if entry.rewrite_fn else entry.rewrite
                shape = input_shape_of(g, layer)
                if rewrite is not None and not _static(rewrite, shape, layer.config):
                    rewrite = None  # Resizing and Reshape need the static input size
                    if entry.rewrite_fn == "layernorm_decomposed":
                        fix += f" (not applied here: {decomposable(shape, layer.config)})"
                if rewrite is rewrites.layernorm_decomposed and (dtype := _integer_input(g, layer)):
                    # Keras 3 takes an integer input's moments in that type: the float mean of
                    # the decomposition would change the outputs. Once QF102 folds the input to
                    # float32 (an unsafe fix there), the re-lint finds it float and decomposes.
                    rewrite = None
                    fix += (f" (not applied here: its input is {dtype}, whose mean and variance Keras 3 takes "
                            "in that type; QF102's fold of the input comes first)")
                yield self.violation(
                    msg, layer.name, pointer=layer.pointer,
                    fix=fix,
                    applicability=None if rewrite else Applicability.DISPLAY_ONLY,
                    severity=None if entry.blocks(ctx.target) else Severity.WARNING,
                    rewrite=Rewrite(rewrite, scope, layer.name) if rewrite else None,
                )

    CASES = [
        ModelCase(  # Keras 3 takes a uint8 input's moments in uint8: no decomposition (QF102 folds first)
            "layernorm-of-uint8-not-decomposed",
            functional_config([("x", (None, 8), "uint8")],
                              [("ln", "LayerNormalization", {"axis": -1}, ["x"], "float32", (None, 8))], ["ln"]),
            fires=True, count=1, expected=None, targets=("edgetpu",),
        ),
        ModelCase(
            "upsampling2d-nearest",
            functional_config([("x", (None, 64, 64, 3), "float32")],
                              [("up", "UpSampling2D", {"size": [2, 2], "data_format": "channels_last",
                                                       "interpolation": "nearest"}, ["x"], "float32", (None, 128, 128, 3))],
                              ["up"]),
            fires=True, count=1,
            expected={"class_name": "Resizing", "config": {"name": "up", "height": 128, "width": 128,
                                                            "interpolation": "nearest", "crop_to_aspect_ratio": False}},
        ),
        ModelCase(
            "sequential-upsampling2d-2x3",
            sequential_config(("x", (None, 16, 16, 8), "float32"),
                              [("up", "UpSampling2D", {"size": [2, 3], "interpolation": "nearest"})]),
            fires=True, count=1,
            expected={"class_name": "Resizing", "config": {"name": "up", "height": 32, "width": 48}},
        ),
        ModelCase(
            "upsampling1d",
            functional_config([("x", (None, 16, 8), "float32")],
                              [("up", "UpSampling1D", {"size": 2}, ["x"], "float32", (None, 32, 8))], ["up"]),
            fires=True, count=1,
            # The model output keeps its name: the first reshape becomes up_pre.
            expected=[("x", "InputLayer"), ("up_pre", "Reshape"), ("up_resize", "Resizing"), ("up", "Reshape")],
        ),
        ModelCase(
            "sequential-upsampling1d",
            sequential_config(("x", (None, 16, 8), "float32"), [("up", "UpSampling1D", {"size": 3})]),
            fires=True, count=1,
            expected={"class_name": "Resizing", "config": {"name": "up_resize", "height": 48, "width": 1}},
        ),
        ModelCase(
            "repeatvector",
            functional_config([("x", (None, 8), "float32")],
                              [("rep", "RepeatVector", {"n": 3}, ["x"], "float32", (None, 3, 8))], ["rep"]),
            fires=True, count=1,
            expected=[("x", "InputLayer"), ("rep_pre", "Reshape"), ("rep_resize", "Resizing"), ("rep", "Reshape")],
        ),
        ModelCase(
            "sequential-repeatvector",
            sequential_config(("x", (None, 8), "float32"), [("rep", "RepeatVector", {"n": 4})]),
            fires=True, count=1,
            expected={"class_name": "Resizing", "config": {"name": "rep_resize", "height": 4, "width": 1}},
        ),
        ModelCase(
            "upsampling3d-explained",
            functional_config([("x", (None, 4, 4, 4, 8), "float32")],
                              [("up", "UpSampling3D", {"size": [2, 2, 2]}, ["x"], "float32", (None, 8, 8, 8, 8))], ["up"]),
            fires=True, count=1,
        ),
        ModelCase(
            "dynamic-size-explained",
            functional_config([("x", (None, None, None, 3), "float32")],
                              [("up", "UpSampling2D", {"size": [2, 2]}, ["x"], "float32", (None, None, None, 3))], ["up"]),
            fires=True, count=1,
        ),
        ModelCase(  # review of issue 9: cut at an unexplained 5-D RESHAPE and a NEG/SQUARE island
            "groupnorm-explained",
            functional_config([("x", (None, 14, 14, 8), "float32")],
                              [("gn", "GroupNormalization", {"groups": 2}, ["x"], "float32", (None, 14, 14, 8))],
                              ["gn"]),
            fires=True, count=1, targets=("edgetpu", "int8"),
        ),
        ModelCase(
            "bilinear-is-one-resize",
            functional_config([("x", (None, 16, 16, 8), "float32")],
                              [("up", "UpSampling2D", {"size": [2, 2], "interpolation": "bilinear"}, ["x"])], ["up"]),
            fires=False,
        ),
        ModelCase(
            "int8-cpu-runs-tile",
            functional_config([("x", (None, 16, 16, 8), "float32")],
                              [("up", "UpSampling2D", {"size": [2, 2]}, ["x"])], ["up"]),
            fires=False, targets=("int8",),
        ),
        ModelCase(
            "layernorm-channels",
            functional_config([("x", (None, 4, 4, 8), "float32")],
                              [("ln", "LayerNormalization", {"axis": -1, "epsilon": 1e-6, "center": True,
                                                             "scale": True}, ["x"], "float32", (None, 4, 4, 8))],
                              ["ln"]),
            fires=True, count=1, targets=("int8", "edgetpu", "tflm", "ethos-u55"),
            # The model output keeps its name: the mean conv becomes ln_pre.
            expected=[("x", "InputLayer"), ("ln_pre", "Conv2D"), ("ln_centre", "Subtract"), ("ln_rms", "RMSNormalization"),
                      ("ln", "DepthwiseConv2D")],
        ),
        ModelCase(
            "sequential-layernorm-rank2-no-center",
            sequential_config(("x", (None, 8), "float32"),
                              [("ln", "LayerNormalization", {"axis": [1], "center": False}),
                               ("fc", "Dense", {"units": 2})]),
            fires=True, count=1, targets=("int8",),
            expected=[("x", "InputLayer"), ("ln", "Dense"), ("ln_centre", "Subtract"), ("ln_rms", "RMSNormalization"),
                      ("fc", "Dense")],
        ),
        ModelCase(  # NEG over any axis; the decomposition is written for the last axis alone
            "layernorm-spatial-axes-explained",
            functional_config([("x", (None, 4, 4, 8), "float32")],
                              [("ln", "LayerNormalization", {"axis": [1, 2, 3]}, ["x"], "float32", (None, 4, 4, 8))],
                              ["ln"]),
            fires=True, count=1, targets=("int8",),
        ),
        ModelCase(
            "layernorm-rms-scaling-has-no-neg",
            functional_config([("x", (None, 4, 4, 8), "float32")],
                              [("ln", "LayerNormalization", {"axis": -1, "rms_scaling": True}, ["x"])], ["ln"]),
            fires=False, targets=("int8", "edgetpu"),
        ),
        ModelCase(  # float16 recipe: NEG runs on the GPU delegate, no island
            "gpu-runs-layernorm",
            functional_config([("x", (None, 4, 4, 8), "float32")],
                              [("ln", "LayerNormalization", {"axis": -1}, ["x"])], ["ln"]),
            fires=False, targets=("gpu",),
        ),
        ModelCase(  # Vela 5.2.0 maps the 5-D RESHAPEs and TILEs of this lowering to the NPU
            "ethos-u-runs-tile-and-5d-reshapes",
            functional_config([("x", (None, 16, 16, 8), "float32")],
                              [("up", "UpSampling2D", {"size": [2, 2]}, ["x"])], ["up"]),
            fires=False, targets=("ethos-u55", "ethos-u65", "ethos-u85"),
        ),
    ]
