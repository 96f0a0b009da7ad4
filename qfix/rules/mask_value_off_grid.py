"""QF411 mask-value-off-grid: a Masking compares against a value its quantized input cannot hold (verify).

## What it does
Finds each float NOT_EQUAL in the converted `.tflite` (how the converter lowers Keras's
`Masking`, measured with Keras 3.15 and tf_keras, TF 2.21, the Edge TPU and int8 recipes) that
compares a constant with the DEQUANTIZE of an integer tensor, and fires when the constant is not
on that tensor's grid: quantized and dequantized again, it comes back as another number
(`mask_value=-1.0` on an int8 tensor with scale 0.00784 and zero point 0 comes back as -1.0033).
The tensor is the model input, or what a Rescaling or a nested model made of it: the rule reads
the `.tflite`, not the Keras graph. The finding names the layer the NOT_EQUAL is charged to.

## Why is this bad?
Masking skips a time step when every feature equals `mask_value` exactly. On the target the
padded steps arrive as the grid's nearest value, the NOT_EQUAL finds them different, and the
RNN reads the padding as data. Nothing fails: the outputs of padded sequences are simply wrong
(measured: Masking(mask_value=-1) → GRU(8) → Dense(2), synthetic samples in -1..1, half of them
padded: int8 SQNR -1.5 dB, max abs error 0.91; with mask_value 0: 32.6 dB, 0.022).
qfix's synthetic samples end in padding for every input a Masking reads (through nested models
and Rescaling layers), so the numbers show it too.

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
Every target whose recipe quantizes the tensor the Masking reads (full-integer recipes).
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.rules.base import VerifyRule
from qfix.types import Violation

# integer range of a quantized tensor, by its dtype
_QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def round_trip(value: float, scale: float, zero_point: int, dtype: str) -> float:
    """`value` quantized to the integer grid of a `dtype` tensor ("int8", "uint8", "int16") with
    `scale` and `zero_point` (clamped to the type's range), and dequantized again, in float32 as
    the `.tflite`'s DEQUANTIZE gives it: q = clamp(round(value / scale) + zero_point),
    back = (q - zero_point) * scale (TFLite's affine quantization, tensorflow/lite/schema)."""
    import numpy as np

    q = int(np.clip(np.round(value / scale) + zero_point, *_QRANGE[dtype]))
    return float(np.float32((q - zero_point) * scale))


class MaskValueOffGrid(VerifyRule):
    """Converted-model side of QF411 mask-value-off-grid; documented once, in the module
    docstring (`qfix rule QF411`). Judged on the `.tflite` (qfix.jobs.numbers)."""

    code = "QF411"
    name = "mask-value-off-grid"

    def check(self, placement, profile) -> Iterable[Violation]:
        return ()  # needs the .tflite's tensors: see judge()

    def judge(self, tflite: bytes, layers: dict[int, str | None],
              maskings: dict[str, float]) -> Iterable[Violation]:
        """`tflite`: the converted model; `layers`: op index -> the Keras layer it is charged to
        (the placement's); `maskings`: the model's Masking layers (nested ones too) -> mask_value.
        The finding names the Masking whose mask_value the NOT_EQUAL compares with (Keras 3
        computes the mask outside the layer's name scope, so the op's own layer may be a
        neighbour: a Rescaling before it, the nested model around it)."""
        import numpy as np  # here: the source rules' catalogue imports this module, numpy-free

        from qfix.targets.tflite import read_tflite

        if not tflite:
            return
        tfl = read_tflite(tflite)
        for op in tfl.ops:
            if op.name != "NOT_EQUAL":
                continue
            tensors = [t for t in tfl.input_tensors(op) if t is not None]
            const = [t for t in tensors if t.is_const and t.dtype == "float32"]
            data = [t for t in tensors if not t.is_const and t.dtype == "float32"]
            src = tfl.producer(data[0].index) if len(const) == 1 and len(data) == 1 else None
            grid = tfl.input_tensors(src)[0] if src is not None and src.name == "DEQUANTIZE" else None
            if grid is None or grid.dtype not in _QRANGE or len(grid.scale) != 1:
                continue
            scale, zero = float(grid.scale[0]), int(grid.zero_point[0]) if grid.zero_point else 0
            for value in np.unique(const[0].const_value()):
                back = round_trip(float(value), scale, zero, grid.dtype)
                if not np.isfinite(value) or back == np.float32(value):
                    continue
                layer = layers.get(op.index)
                same = [n for n, v in maskings.items() if np.float32(v) == np.float32(value)]
                if layer not in same and len(same) == 1:
                    layer = same[0]
                who = f"Masking {layer!r}" if layer in maskings else f"layer {layer!r}"
                yield self.violation(
                    f"{who} skips time steps equal to {float(value):g} in every feature, but the tensor it compares "
                    f"is {grid.dtype} on the target (scale {scale:.4g}, zero point {zero}), which turns "
                    f"{float(value):g} into {float(back):.6g}: the float NOT_EQUAL (op {op.index}) after its "
                    "DEQUANTIZE never matches, so padded steps are read as data on the target; use a mask "
                    "value the grid holds (0.0, at the zero point, when the range contains 0) and pad with it",
                    layer)
                break
