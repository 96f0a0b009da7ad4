"""Keras lowerings that hurt targets: what a layer becomes in TFLite that its user never wrote.

Data, one entry per lowering, read by QF308 keras3-lowering. Every entry was observed by
converting a one-layer Keras 3.15 (and tf_keras 2.21) model with TF 2.21 and the edgetpu recipe
(full-integer PTQ, TFLITE_BUILTINS_INT8) and reading the op list with qfix.targets.tflite (the
shapes in `emits` are those of the observed input shape). Whether an entry hurts a target is
decided from the target's profile (`hurts`): an emitted op the target does not run, an emitted op
the full-integer quantizer leaves in float (`float_ops`: DEQUANTIZE → op → QUANTIZE, a float
island, on every target with a full-integer recipe), or a tensor with more dimensions larger
than 1 than the target allows.

Observed, not listed (they convert to ops every target profile runs, or another rule reports them
already): Resizing (one RESIZE_*; with crop_to_aspect_ratio a STRIDED_SLICE first), bilinear
UpSampling2D (RESIZE_BILINEAR), Conv1D / DepthwiseConv1D / SeparableConv1D / pooling 1-D
(RESHAPE to 4-D around the 2-D op), Dense on a 3-D or 4-D input (FULLY_CONNECTED v5,
keep_num_dims), GlobalAveragePooling (MEAN, with or without keepdims), Flatten / Reshape
(RESHAPE), Permute (TRANSPOSE), ZeroPadding (PAD), Cropping (STRIDED_SLICE); tf_keras's
LayerNormalization, Keras 3's with rms_scaling=True and RMSNormalization (MEAN,
SQUARED_DIFFERENCE, RSQRT, MUL, ADD: all int8, no NEG); UnitNormalization,
Embedding, Attention, Dot, Conv3D (reported by QF303 unsupported-layer through
qfix.model.opmap.LAYER_OPS, as are the ops of LayerNormalization a target lacks besides its NEG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

KERAS3 = "Keras 3 (observed on 3.15 with TF 2.21); tf_keras 2.21 builds it on tf.image.resize or split/concat instead"
BOTH = "Keras 3 (3.15) and tf_keras (2.21), with TF 2.21"


@dataclass(frozen=True)
class Lowering:
    layer: str  # Keras class name
    applies: Callable[[dict[str, Any]], bool]  # on the layer's config
    when: str  # the same condition, in words
    keras: str  # the Keras versions it applies to, in words
    dialects: tuple[str, ...]  # the same, as qfix.model.graph dialects
    emits: tuple[str, ...]  # TFLite ops, in order, as observed
    explain: str  # why Keras emits it, in Keras terms
    dims_over_one: int  # the most dimensions > 1 of any tensor it makes (the observed shapes)
    rewrite: str  # the rewrite in Keras terms ("" when there is none)
    rewrite_fn: str | None = None  # the name of the exact rewrite in qfix.model.rewrites
    # Emitted ops the full-integer quantizer leaves in float (observed: DEQUANTIZE → op → QUANTIZE)
    float_ops: tuple[str, ...] = ()

    def hurts(self, profile: Any) -> list[str]:
        """Why this lowering hurts the target of `profile`, one reason per fact ([] when it does not)."""
        return [why for why, _ in self._reasons(profile)]

    def blocks(self, profile: Any) -> bool:
        """Whether the target cannot run the lowering: an op it lacks, a shape it refuses, or a
        float island on a target without float kernels (TFLite Micro runs the island, slower)."""
        return any(blocking for _, blocking in self._reasons(profile))

    def _reasons(self, profile: Any) -> list[tuple[str, bool]]:
        # A float op comes with the DEQUANTIZE and QUANTIZE around it: one fact, the island.
        islands = {*self.float_ops, "DEQUANTIZE", "QUANTIZE"} if profile.integer and self.float_ops else set()
        why = [(f"{op} is not in {profile.name}'s op table", True)
               for op in dict.fromkeys(self.emits) if op not in islands and not profile.supports(op)]
        runs = any(d in ("float32", "float16") for d in profile.activation_dtypes)
        for op in dict.fromkeys(self.float_ops):
            if op in islands:
                why.append((f"full-integer quantization leaves {op} in float (DEQUANTIZE → {op} → QUANTIZE, a float "
                            f"island{' that ' + profile.name + ' runs on its float kernels' if runs else ''})",
                            not runs))
        limit = profile.max_innermost_dims
        if limit is not None and self.dims_over_one > limit:
            why.append((f"its {self.dims_over_one + 1}-D reshapes have {self.dims_over_one} dimensions larger than 1 "
                        f"({profile.name} allows {limit})", True))
        return why


def _nearest(cfg: dict[str, Any]) -> bool:
    return cfg.get("interpolation", "nearest") == "nearest"


def _layer_norm(cfg: dict[str, Any]) -> bool:
    return not cfg.get("rms_scaling", False)


LOWERINGS: tuple[Lowering, ...] = (
    Lowering(
        "UpSampling2D", _nearest, 'interpolation="nearest" (the default)', KERAS3, ("keras3",),
        ("RESHAPE", "TILE", "RESHAPE", "TILE", "RESHAPE"),
        "Keras 3 repeats rows and columns with ops.repeat, which becomes a 5-D reshape, a TILE and a "
        "reshape back for each spatial axis ([1, H, 1, W, C] → [1, H, 2, W, C] → ...)",
        4,
        "Resizing(size_h·H, size_w·W, interpolation=\"nearest\"): identical outputs, one RESIZE_NEAREST_NEIGHBOR",
        "upsampling_to_resizing",
    ),
    Lowering(
        "UpSampling1D", lambda cfg: True, "always", KERAS3, ("keras3",),
        ("RESHAPE", "TILE", "RESHAPE"),
        "Keras 3 repeats each step with ops.repeat: a reshape to [1, T, 1, C], a TILE and a reshape back",
        3,
        "Reshape((T, 1, C)) → Resizing(size·T, 1, interpolation=\"nearest\") → Reshape((size·T, C)): "
        "the same values, one RESIZE_NEAREST_NEIGHBOR between two reshapes",
        "upsampling1d_to_resizing",
    ),
    Lowering(
        "LayerNormalization", _layer_norm, "without rms_scaling (the default), any axis",
        "Keras 3 (observed on 3.15 with TF 2.21); tf_keras 2.21's LayerNormalization converts to int8 ops only",
        ("keras3",),
        ("MEAN", "DEQUANTIZE", "NEG", "QUANTIZE", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "MUL", "MUL",
         "ADD", "MUL", "ADD"),
        "Keras 3 computes x·inv + (β − mean·inv) with inv = γ/√(var + ε), writing the shift as -mean·inv: "
        "the minus sign is a NEG",
        3,
        "the mean as a 1×1 convolution with weights 1/C (Dense(1) on rank 2), Subtract()([x, mean]), "
        "RMSNormalization(epsilon) with scale γ (on the centred input it divides by the same √(var + ε)), "
        "and β added by a 1×1 DepthwiseConv with bias β: the same values, all int8, no NEG",
        "layernorm_decomposed",
        float_ops=("NEG",),
    ),
    Lowering(
        "UpSampling3D", lambda cfg: True, "always", KERAS3, ("keras3",),
        ("RESHAPE", "TILE", "RESHAPE", "TILE", "RESHAPE", "TILE", "RESHAPE"),
        "Keras 3 repeats along each of the three spatial axes with ops.repeat: 6-D reshapes and a TILE per axis",
        5,
        "none exact: TFLite has no 3-D resize; fold the depth axis into the batch or the channels and use "
        "Resizing per slice",
    ),
    Lowering(
        "GroupNormalization", lambda cfg: True, "always",
        "Keras 3 (observed on 3.15 with TF 2.21, 14×14×8 input, groups=2)", ("keras3",),
        ("RESHAPE", "MEAN", "DEQUANTIZE", "NEG", "QUANTIZE", "SUB", "DEQUANTIZE", "SQUARE", "QUANTIZE", "MEAN",
         "ADD", "RSQRT", "MUL", "MUL", "MUL", "ADD", "RESHAPE"),
        "Keras 3 splits the channels into groups with a reshape to [N, H, W, groups, C/groups], takes each "
        "group's mean and variance over (H, W, C/groups) — the variance as mean((x − mean)²), written with a "
        "NEG and a SQUARE — and reshapes back",
        4,
        "none exact in built-in layers: groups=1 is LayerNormalization(axis=[1, 2, 3]) (its NEG remains); "
        "otherwise normalise each group with LayerNormalization after a split, or retrain with "
        "BatchNormalization, which folds into the convolution",
        float_ops=("NEG", "SQUARE"),
    ),
    Lowering(
        "RepeatVector", lambda cfg: True, "always", BOTH, ("keras3", "tf_keras"),
        ("RESHAPE", "TILE", "RESHAPE"),
        "the vector is repeated n times with a reshape to [1, 1, C] (Keras 3: [1, 1, 1, C]), a TILE and "
        "(Keras 3) a reshape back",
        2,
        "Reshape((1, 1, C)) → Resizing(n, 1, interpolation=\"nearest\") → Reshape((n, C)): the vector as a 1×1 "
        "image, the same values, one RESIZE_NEAREST_NEIGHBOR between two reshapes",
        "repeat_vector_to_resizing",
    ),
)


def lowering_of(class_name: str, config: dict[str, Any], dialect: str) -> Lowering | None:
    """The table entry for a layer of this class and config in `dialect`, None when it has none."""
    for entry in LOWERINGS:
        if entry.layer == class_name and dialect in entry.dialects and entry.applies(config):
            return entry
    return None
