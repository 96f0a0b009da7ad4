"""The op version one TFLite op needs on its own, and which of its settings needs it.

A `.tflite` stores one version per op type (the model's `operator_codes`), the highest any op
of that type needs: one grouped Conv2D makes every CONV_2D version 6. To blame the right layer
when a toolchain rejects a version, each op's own need is recomputed here from its tensors and
options, in the order of TF's `GetBuiltinOperatorVersion`
(tensorflow/lite/tools/versioning/op_version.cc, TF 2.21), for the op types Keras models
produce. Op types not listed return None (their culprit cannot be told apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from qfix.targets.tflite import Op, TfliteModel

# Hints that name the qfix rewrite doing the layer change (owned by the rewrites: QF306, QF307).
GROUPED_CONV_HINT = ("split the grouped convolution into one convolution per group and concatenate the results, "
                     "or make it groups=1 with a block-diagonal kernel (zeros outside each group's block, g× the "
                     "multiply-adds) (qfix rewrite QF306, same float outputs)")
TCONV_ACTIVATION_HINT = ("move the activation out of the transposed convolution into an identity depthwise conv "
                         "after it (qfix rewrite QF307, same float outputs)")


@dataclass(frozen=True)
class Need:
    version: int
    why: str  # the setting that needs this version, in plain words
    fix_hint: str | None = None


@dataclass(frozen=True)
class _Sig:
    """The parts of TF's OpSignature the rules read."""

    ins: list[str | None]  # dtypes of the inputs (None = optional input left out)
    out: str | None
    options: dict
    in_shapes: list[tuple[int, ...]]
    out_scale: list[float]
    mul_rescale: float = 0.0  # input1 scale * input2 scale / output scale (MUL), 0 when unknown


# (version, holds(sig), why (text or sig -> text), fix hint)
_Row = tuple[int, Callable[[_Sig], bool], "str | Callable[[_Sig], str]", "str | None"]


def _is(sig: _Sig, *dtypes: str | None) -> bool:
    """inputs[0], inputs[1], ... and the last given = outputs[0] have these dtypes."""
    *ins, out = dtypes
    return sig.out == out and all(i < len(sig.ins) and sig.ins[i] == d for i, d in enumerate(ins))


def _grouped(sig: _Sig) -> bool:
    # op_version.cc: is_grouped_convolution = input channels != filter input channels.
    if len(sig.in_shapes) < 2 or not sig.in_shapes[0] or len(sig.in_shapes[1]) != 4:
        return False
    return sig.in_shapes[0][-1] != sig.in_shapes[1][3]


def _group_words(sig: _Sig) -> str:
    c_in, k = sig.in_shapes[0][-1], sig.in_shapes[1][3]
    return f"grouped convolution: the input has {c_in} channels, each filter reads {k} (groups={c_in // max(k, 1)})"


def _broadcast_over_4d(sig: _Sig) -> bool:
    shapes = sig.in_shapes[:2]
    return len(shapes) == 2 and shapes[0] != shapes[1] and max(len(sh) for sh in shapes) > 4


def _act(sig: _Sig) -> bool:
    return sig.options.get("fused_activation_function", "NONE") not in ("NONE", 0, None)


def _dilated(sig: _Sig) -> bool:
    return sig.options.get("dilation_w_factor", 1) != 1 or sig.options.get("dilation_h_factor", 1) != 1


# op -> rows in op_version.cc order: the first row that holds gives the version; else 1.
_RULES: dict[str, list[_Row]] = {
    "CONV_2D": [
        (6, _grouped, _group_words, GROUPED_CONV_HINT),
        (4, lambda s: _is(s, "int16", "int16", "int16"), "int16 activations and weights", None),
        (3, lambda s: _is(s, "int8", "int8", "int8"), "int8 activations and weights", None),
        (7, lambda s: _is(s, "int8", "int4", "int8"), "int4 weights", None),
        (2, lambda s: _is(s, "float32", "int8", "float32"), "hybrid float/int8 weights", None),
    ],
    "DEPTHWISE_CONV_2D": [
        (5, lambda s: _is(s, "int16", "int16", "int16"), "int16 activations and weights", None),
        (4, lambda s: _is(s, "float32", "int8", "float32"), "hybrid float/int8 weights", None),
        (3, lambda s: _is(s, "int8", "int8", "int8"), "int8 activations and weights", None),
        (7, lambda s: _is(s, "int8", "int4", "int8"), "int4 weights", None),
        (2, _dilated, "dilation_rate other than 1", None),
    ],
    "TRANSPOSE_CONV": [
        (4, _act, "a fused activation: TRANSPOSE_CONV takes one from version 4", TCONV_ACTIVATION_HINT),
        (3, lambda s: len(s.ins) == 4 and s.ins[3] is not None, "a bias input", None),
        (2, lambda s: len(s.ins) > 1 and s.ins[1] == "int8", "int8 weights", None),
    ],
    "FULLY_CONNECTED": [
        (7, lambda s: _is(s, "int16", "int16", "int16"), "int16 activations and weights", None),
        (6, lambda s: len(s.ins) == 2 or (len(s.ins) > 2 and s.ins[2] is None), "no bias (use_bias=False)", None),
        (5, lambda s: bool(s.options.get("keep_num_dims")), "keep_num_dims (Dense on a rank > 2 input)", None),
        (4, lambda s: _is(s, "int8", "int8", "int8"), "int8 activations and weights", None),
        (10, lambda s: _is(s, "int8", "int4", "int8"), "int4 weights", None),
        (3, lambda s: _is(s, "float32", "int8", "float32"), "hybrid float/int8 weights", None),
    ],
    "RESIZE_BILINEAR": [
        (4, lambda s: s.ins[:1] == ["int16"], "int16 activations", None),
        (3, lambda s: bool(s.options.get("half_pixel_centers")), "half_pixel_centers", None),
        (2, lambda s: s.ins[:1] == ["int8"], "int8 activations", None),
    ],
    "RESIZE_NEAREST_NEIGHBOR": [
        (4, lambda s: s.ins[:1] == ["int16"], "int16 activations", None),
        (3, lambda s: bool(s.options.get("half_pixel_centers") or s.options.get("align_corners")),
         "half_pixel_centers or align_corners", None),
        (2, lambda s: s.ins[:1] == ["int8"], "int8 activations", None),
    ],
    "QUANTIZE": [
        (3, lambda s: len(s.out_scale) > 1, "per-channel quantization", None),
        (2, lambda s: s.out == "int16", "int16 output", None),
    ],
}
_RULES.update({
    "ADD": [
        (4, lambda s: s.ins[:1] == ["int64"], "int64 inputs", None),
        (2, lambda s: s.ins[:1] == ["int8"], "int8 inputs", None),
    ],
    "SUB": [
        (4, lambda s: s.ins[:1] == ["int64"], "int64 inputs", None),
        (3, lambda s: _broadcast_over_4d(s), "a broadcast over more than 4 dimensions", None),
        (2, lambda s: s.ins[:1] == ["int8"], "int8 inputs", None),
    ],
    "MUL": [
        (5, lambda s: s.ins[:1] == ["int64"], "int64 inputs", None),
        (4, lambda s: s.ins[:1] == ["int16"], "int16 inputs", None),
        (3, lambda s: s.mul_rescale >= 1.0, "an output scale at most the product of the input scales", None),
        (2, lambda s: s.ins[:1] == ["int8"], "int8 inputs", None),
    ],
    "STRIDED_SLICE": [
        (8, lambda s: bool(s.options.get("offset")), "offset=True", None),
        (6, lambda s: bool(s.options.get("ellipsis_mask") or s.options.get("new_axis_mask")),
         "an ellipsis or new-axis mask", None),
        (4, lambda s: len(s.in_shapes[0]) > 4, "an input of rank > 4", None),
        (2, lambda s: s.ins[:1] == ["int8"], "int8 input", None),
    ],
    "TRANSPOSE": [
        (6, lambda s: len(s.in_shapes[0]) > 5, "an input of rank > 5", None),
        (5, lambda s: s.ins[:1] == ["int16"], "int16 input", None),
        (4, lambda s: len(s.in_shapes[0]) > 4, "an input of rank 5", None),
        (2, lambda s: s.ins[:1] == ["int8"], "int8 input", None),
    ],
    "SLICE": [
        (5, lambda s: len(s.in_shapes[0]) > 4, "an input of rank > 4", None),
        (4, lambda s: s.ins[:1] == ["int16"], "int16 input", None),
        (2, lambda s: s.ins[:1] == ["int8"], "int8 input", None),
    ],
})
for _op in ("SOFTMAX", "MEAN", "REDUCE_MAX", "REDUCE_MIN", "RELU6", "CONCATENATION", "PAD", "PADV2"):
    _RULES[_op] = [(3, lambda s: s.ins[:1] == ["int16"], "int16 activations", None),
                   (2, lambda s: s.ins[:1] == ["int8"], "int8 activations", None)]
for _op in ("MAX_POOL_2D", "AVERAGE_POOL_2D", "LOGISTIC", "TANH"):
    _RULES[_op] = [(3, lambda s: _is(s, "int16", "int16"), "int16 activations", None),
                   (2, lambda s: s.ins[:1] == ["int8"], "int8 activations", None)]


def own_version(model: TfliteModel, op: Op) -> Need | None:
    """The version `op` alone needs, or None for op types without rules here."""
    rows = _RULES.get(op.name)
    if rows is None:
        return None
    ins = [model.tensors[i] if i >= 0 else None for i in op.inputs]
    out = model.tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
    scales = [t.scale[0] if t is not None and len(t.scale) == 1 else 0.0 for t in ins[:2]]
    out_scale = out.scale[0] if out is not None and len(out.scale) == 1 else 0.0
    rescale = scales[0] * scales[1] / out_scale if len(scales) == 2 and all(scales) and out_scale else 0.0
    sig = _Sig([t.dtype if t else None for t in ins], out.dtype if out else None, op.options,
               [t.shape if t else () for t in ins], out.scale if out else [], rescale)
    for version, holds, why, hint in rows:
        if holds(sig):
            return Need(version, why(sig) if callable(why) else why, hint)
    return Need(1, "")
