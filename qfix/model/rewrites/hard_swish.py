"""Rewrite hard_swish as x·clip(x/6 + 1/2, 0, 1), which the converter keeps unfused (QF302).

hard_swish(x) = x·relu6(x+3)/6 = x·clip(x/6 + 1/2, 0, 1). Written as x·relu6(x+3)/6 or
x·(relu6(x+3)/6), the TFLite converter pattern-matches it back into one HARD_SWISH op, which
the Edge TPU lacks. The other spellings are not matched (TF 2.21); after full-int8 conversion:

    x·relu6(x+3)/6            → HARD_SWISH
    x·(relu6(x+3)/6)          → HARD_SWISH
    (x/6)·relu6(x+3)          → ADD(relu6), MUL, MUL          int8 SQNR 29.2 dB
    x·clip(x/6+1/2, 0, 1)     → MUL, ADD, MINIMUM, RELU, MUL   int8 SQNR 34.6 dB  (this fix)

(SQNR of Conv2D(8, 3) → hard_swish → Dense on 32×32×3 synthetic data; HARD_SWISH itself: 35.4 dB.)
The clip form keeps x at full int8 range in the product and its gate in [0, 1], so it loses
almost nothing to the fused op; (x/6)·relu6(x+3) quantizes x/6 and a [0, 6] gate and loses
~6 dB, enough for the fix loop to roll it back.

The new layers are weightless built-ins (Rescaling, ReLU(max_value=1), Multiply) in both
dialects; the float outputs differ from hard_swish by float rounding only (~1e-7).
"""

from __future__ import annotations

from qfix.model.edit import ModelEdit
from qfix.model.rewrites._shared import Detached

HARD_SWISH = {"hard_swish", "hard_silu"}


def hard_swish(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` applies hard_swish (an `activation` or an Activation layer)."""
    d = Detached(edit, scope, name, HARD_SWISH)
    shifted = d.add("Rescaling", {"scale": 1.0 / 6.0, "offset": 0.5}, "div6_plus_half", [d.x])
    gate = d.add("ReLU", {"max_value": 1.0, "negative_slope": 0.0, "threshold": 0.0}, "clip01", [shifted])
    out = d.finish(d.add("Multiply", {}, "hswish", [d.x, gate]))
    return f"hard_swish of {d.name!r} → x·clip(x/6+1/2, 0, 1) ({out!r}), which the converter does not fuse"
