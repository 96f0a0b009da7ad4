"""QF409 coarse-input-scale: a float input quantized too coarsely to keep its precision (verify).

## What it does
Reads each model input's quantization in the converted `.tflite` (scale, zero point) and the
range of its calibration samples, and fires when a float input gets fewer than 16 int8 steps
over that range (a step larger than 1/16 of the range: 4 of its 8 bits lost). The threshold
is qfix's: a float input calibrated on its own gets about 255 steps; a coarser one has lost
precision to something else, most often a merge with an integer input.

## Why is this bad?
The converter quantizes a float input next to a `uint8` one with the scale of what it is
merged with: CONCATENATION keeps one scale for all its inputs and its output, so a float
input in −1..1 concatenated with 0..255 pixels gets a scale of about 1.0 — two or three
values for its whole range. The model still converts and runs; the float input's information
is gone. Nothing in the converter warns.

## Example
```python
a = keras.Input((8, 8, 3), dtype="uint8")
b = keras.Input((4,))
y = Dense(2)(Concatenate()([Flatten()(a), b]))
```

## Use instead
Bring the inputs to one range before the merge: rescale the integer input
(`Rescaling(1/255)` after its cast for uint8, `1/128` for int8: the message gives the
input dtype's largest magnitude) and, if the model is trained already, multiply the
weights that read it by the same number; or feed the float input through its own branch (a Dense or
Conv) before it meets the integer one, so each gets its own scale.

## Fix safety
Display-only: the rescaling changes the weights' meaning, which only the author can check.

## Targets
Every target that quantizes float inputs (full-integer recipes).
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.rules.base import VerifyRule
from qfix.types import Severity, Violation

MIN_LEVELS = 16  # int8 steps over the input's calibrated range


class CoarseInputScale(VerifyRule):
    """Converted-model side of QF409 coarse-input-scale; documented once, in the module
    docstring (`qfix rule QF409`). Judged on the inputs' quantization (qfix.jobs.numbers)."""

    code = "QF409"
    name = "coarse-input-scale"

    def check(self, placement, profile) -> Iterable[Violation]:
        return ()  # needs the inputs' quantization and calibration: see judge()

    def judge(self, inputs: list[dict[str, Any]]) -> Iterable[Violation]:
        """`inputs`: qfix.jobs.numbers.input_quantization rows."""
        ints = [r for r in inputs if r["kind"] == "integer"]
        integer = [r["name"] for r in ints]
        magnitude = max((_magnitude(r["dtype"]) for r in ints), default=255)
        for r in inputs:
            if r["kind"] != "float" or r["levels"] is None or r["levels"] >= MIN_LEVELS:
                continue
            why = (f"it shares the quantization of the integer input(s) {', '.join(map(repr, integer))} "
                   "at a merge (CONCATENATION keeps one scale for all its inputs)" if integer else
                   "its quantization range is set by a wider tensor it meets")
            lo, hi = r["range"]
            yield self.violation(
                f"float input {r['name']!r} (calibrated range {lo:.3g}..{hi:.3g}) is quantized with scale "
                f"{r['scale']:.4g}, zero point {r['zero_point']}: {r['levels']:.1f} int8 step(s) over its range, "
                f"its precision cannot be kept: {why}; bring the inputs to one range before the merge "
                + (f"(e.g. Rescaling(1/{magnitude}) on the integer input)" if magnitude > 1 else
                   "(a bool input is 0..1 already: give the float input its own branch first)"),
                r["name"], Severity.WARNING)


def _magnitude(dtype: str) -> int:
    """The largest |value| of an integer dtype: Rescaling(1/that) brings it to 0..1 (uint8 pixels,
    1/255) or about -1..1 (int8, 1/128). Review of issue 9: an int8 input was told 1/255."""
    import numpy as np  # here: the source rules' catalogue imports this module, numpy-free

    if dtype == "bool":
        return 1
    info = np.iinfo(dtype)
    return int(max(info.max, -int(info.min)))
