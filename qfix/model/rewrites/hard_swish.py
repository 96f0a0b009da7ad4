"""Rewrite hard_swish as (x/6)·relu6(x+3), which the converter keeps unfused (QF302).

hard_swish(x) = x·relu6(x+3)/6. Written that way (x·relu6(x+3)/6 or x·(relu6(x+3)/6)), the
TFLite converter pattern-matches it back into one HARD_SWISH op, which the Edge TPU lacks.
Scaling x before the product, (x/6)·relu6(x+3), is not matched (TF 2.21): it converts to
ADD (with RELU6 fused), MUL, MUL. Observed op lists after full-int8 conversion:

    x·relu6(x+3)/6            → HARD_SWISH
    x·(relu6(x+3)/6)          → HARD_SWISH
    (x/6)·relu6(x+3)          → ADD(relu6), MUL, MUL        (this fix)
    x·clip(x/6+1/2, 0, 1)     → MUL, ADD, MINIMUM, RELU, MUL

The new layers are weightless built-ins (Rescaling, ReLU, Multiply) in both dialects; the
float outputs differ from hard_swish by float rounding only (~1e-7).
"""

from __future__ import annotations

from qfix.model.edit import ModelEdit
from qfix.model.rewrites._shared import Detached

HARD_SWISH = {"hard_swish", "hard_silu"}


def hard_swish(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` applies hard_swish (an `activation` or an Activation layer)."""
    d = Detached(edit, scope, name, HARD_SWISH)
    shifted = d.add("Rescaling", {"scale": 1.0, "offset": 3.0}, "plus3", [d.x])
    gate = d.add("ReLU", {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}, "relu6", [shifted])
    scaled = d.add("Rescaling", {"scale": 1.0 / 6.0, "offset": 0.0}, "div6", [d.x])
    out = d.finish(d.add("Multiply", {}, "hswish", [scaled, gate]))
    return f"hard_swish of {d.name!r} → (x/6)·relu6(x+3) ({out!r}), which the converter does not fuse"
