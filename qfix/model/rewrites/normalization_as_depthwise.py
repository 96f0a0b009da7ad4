"""Fold a Normalization layer into a 1×1 DepthwiseConv2D (QF502, exact).

tfmot rejects `Normalization`; annotated output-only its SUB and MUL still convert to float
(the converter has no range for the mean and variance constants), and at the input of the
model (EfficientNet) a float op first means a single-cut accelerator runs nothing. The layer
computes y = (x − μ) / max(√σ², ε) per channel (tf_keras and Keras 3 alike, ε = 1e-7), which
is y = a·x + b with a = 1 / max(√σ², ε), b = −μ·a: a 1×1 DepthwiseConv2D with kernel a and
bias b, a layer tfmot quantizes (qfix.model.rewrites.batchnorm_as_depthwise places it). The
mean and variance come from the config (`mean=`, `variance=` given) or from the adapted
weights (mean, variance, count). `invert=True` is refused.
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit
from qfix.model.rewrites.batchnorm_as_depthwise import affine_input, as_depthwise

EPSILON = 1e-7  # keras.backend.epsilon(), the floor of the standard deviation in both dialects


def normalization_as_depthwise(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Normalization over the last axis (invert=False) of a rank 2-4 tensor."""
    cfg, shape, source = affine_input(edit, scope, name, "Normalization")
    if cfg.get("invert"):
        raise EditError(f"{name!r} inverts the normalization; not folded")
    channels = shape[-1]
    given = cfg.get("mean"), cfg.get("variance")

    def fold(read):
        import numpy as np  # local: source-side start-up (LSP, `qfix script.py`) never needs numpy

        if given[0] is not None and given[1] is not None:
            mean, var = (np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (channels,)) for v in given)
        else:
            found = read(source)
            if not found:  # an unbuilt case: no statistics to fold
                return []
            mean, var = (np.asarray(v, np.float64).reshape(-1) for v in found[:2])
        a = 1.0 / np.maximum(np.sqrt(var), EPSILON)
        return [a.astype(np.float32).reshape(1, 1, channels, 1), (-mean * a).astype(np.float32)]

    conv = as_depthwise(edit, scope, name, shape, fold)
    return (f"Normalization {name!r} → DepthwiseConv2D 1×1 {conv!r} (kernel 1/√σ², bias −μ/√σ²): the same "
            "affine map, a layer tfmot quantizes")
