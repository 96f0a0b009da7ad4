"""QF405 float-island: float tensors left inside an integer model (verify).

## What it does
Scans every tensor of the converted model and reports float activations left inside an
integer model (DEQUANTIZE -> float op -> QUANTIZE), with the layer that made them.

## Why is this bad?
`TFLITE_BUILTINS_INT8` does not guarantee an all-int8 model: ops without an int8 kernel stay
float. Integer accelerators cannot run them and each island costs a round trip through the
CPU.

## Example
`keras.ops.cumsum` in an int8 model becomes DEQUANTIZE -> CUMSUM (float32) -> QUANTIZE.

## Use instead
An op with an int8 kernel, or place the op after the accelerated part.

## Fix safety
Display-only.

## Targets
Every target with an integer recipe. Where the profile allows only integer activation dtypes
(`activation_dtypes`) an island is a blocker: the target cannot compute it. Where it allows
float32 too (TFLite Micro registers float kernels) the model runs, and the island is a warning:
each one costs a DEQUANTIZE/QUANTIZE round trip, float arithmetic (slow on a core without an
FPU) and four bytes per value in the tensor arena.
"""

from __future__ import annotations

from qfix.rules.base import VerifyRule
from qfix.types import Severity


class FloatIsland(VerifyRule):
    """Converted-model side of QF405 float-island; documented once, in the module docstring
    (`qfix rule QF405`)."""

    code = "QF405"
    name = "float-island"

    def check(self, placement, profile):
        # local: source-side start-up (LSP, `qfix script.py`) never needs numpy (qfix.targets.check imports it)
        from qfix.targets.check import computes_float

        by_layer: dict[object, list[dict]] = {}
        for island in placement.float_islands:
            by_layer.setdefault(island.get("layer"), []).append(island)
        for layer, islands in by_layer.items():
            ops = sorted({str(i.get("producer") or "graph input") for i in islands})
            runs = computes_float(profile)
            yield self.violation(
                f"{len(islands)} float tensor(s) inside the integer model, made by {', '.join(ops)} "
                f"({f'layer {layer!r}' if layer is not None else 'no Keras layer'}), e.g. {islands[0].get('tensor')!r}"
                + (f"; {profile.name} runs them on its float kernels (slower, 4 bytes per value in RAM)"
                   if runs else ""),
                layer if isinstance(layer, str) else None,
                Severity.WARNING if runs else Severity.BLOCKER,
            )
