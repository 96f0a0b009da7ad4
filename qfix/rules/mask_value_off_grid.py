"""QF411 mask-value-off-grid: a Masking's mask_value that the quantized input cannot hold (verify).

## What it does
Reads the quantization (scale, zero point) of each `.tflite` input that a `Masking` layer reads,
and fires when the layer's `mask_value` is not on that input's integer grid: quantized and
dequantized again, it comes back as another number (`mask_value=-1.0` on an int8 input with
scale 0.00784 and zero point 0 comes back as -1.0033). Only when the `.tflite` compares in
float (a NOT_EQUAL on float32 tensors, after the input's DEQUANTIZE), which is how the
converter lowers Keras's Masking (measured with Keras 3.15 and tf_keras, TF 2.21, the Edge
TPU and int8 recipes).

## Why is this bad?
Masking skips a time step when every feature equals `mask_value` exactly. On the target the
padded steps arrive as the grid's nearest value, the NOT_EQUAL finds them different, and the
RNN reads the padding as data. Nothing fails: the outputs of padded sequences are simply wrong
(measured: Masking(mask_value=-1) → GRU(8) → Dense(2), synthetic samples in -1..1, half of them
padded: int8 SQNR -1.5 dB, max abs error 0.91; with mask_value 0: 32.6 dB, 0.022).

## Example
```python
x = keras.Input((50, 16))
y = keras.layers.GRU(32)(keras.layers.Masking(mask_value=-1.0)(x))
```

## Use instead
```python
y = keras.layers.GRU(32)(keras.layers.Masking(mask_value=0.0)(x))  # and pad with 0.0
```
A zero point holds 0 exactly whenever the calibrated range contains it. A range that ends at
the mask value is no cure: -1..1 on int8 gives scale 2/255, and -1 comes back as -1.0039.

## Fix safety
Display-only: the padding value is the data pipeline's, which qfix does not see.

## Targets
Every target whose recipe quantizes the model's inputs (full-integer recipes with integer I/O).
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.model.graph import Graph
from qfix.rules.base import VerifyRule
from qfix.types import Violation

# integer range of a quantized .tflite input, by its dtype
_QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


class MaskValueOffGrid(VerifyRule):
    """Converted-model side of QF411 mask-value-off-grid; documented once, in the module
    docstring (`qfix rule QF411`). Judged on the inputs' quantization (qfix.jobs.numbers)."""

    code = "QF411"
    name = "mask-value-off-grid"

    def check(self, placement, profile) -> Iterable[Violation]:
        return ()  # needs the inputs' quantization: see judge()

    def judge(self, inputs: list[dict[str, Any]], graph: Graph, float_compare: bool) -> Iterable[Violation]:
        """`inputs`: qfix.jobs.numbers.input_quantization rows; `float_compare`: the `.tflite`
        has a NOT_EQUAL on float32 tensors."""
        import numpy as np  # here: the source rules' catalogue imports this module, numpy-free

        if not float_compare:
            return
        for r in inputs:
            qrange = _QRANGE.get(r.get("tflite_dtype") or "")
            if not r["scale"] or qrange is None:
                continue
            for masking in graph.consumers(r["name"]):
                value = masking.config.get("mask_value", 0.0) if masking.class_name == "Masking" else None
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                q = int(np.clip(np.round(value / r["scale"]) + r["zero_point"], *qrange))
                back = np.float32((q - r["zero_point"]) * r["scale"])
                if back == np.float32(value):
                    continue
                yield self.violation(
                    f"Masking {masking.name!r} skips time steps equal to {value:g} in every feature, but the "
                    f".tflite input {r['name']!r} is {r['tflite_dtype']} with scale {r['scale']:.4g} and zero "
                    f"point {r['zero_point']}, which turns {value:g} into {float(back):.6g}: the float NOT_EQUAL "
                    "after its DEQUANTIZE never matches, so padded steps are read as data on the target; "
                    "use a mask value the grid holds (0.0, at the zero point, when the range contains 0) "
                    "and pad with it",
                    masking.name)
