"""QF103 wide-64bit-tensor: int64 / float64 inputs, casts and layers (model).

## What it does
Finds 64-bit tensors in a `.keras` config: int64/float64 model inputs, layers computing in
float64 (their dtype policy), and casts to a 64-bit type.

## Why is this bad?
No integer accelerator runs 64-bit tensors (Vela: "64-bit feature-maps are not supported";
TFLM's ARG_MAX needs int32 output; the Edge TPU takes 8-bit only). They stay on the CPU, or
make the converter fail on ops without 64-bit kernels.

## Example
```python
ids = keras.Input((16,), dtype="int64")
```

## Use instead
```python
ids = keras.Input((16,), dtype="int32")  # token ids fit in int32; compute in float32
```

## Fix safety
Safe when the values fit in 32 bits (ids, counts); the report says when a float64 layer
changes numbers.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.config import cast_dtypes
from qfix.model.rewrites import Rewrite
from qfix.types import Applicability
from qfix.rules.base import ModelCase, ModelRule

WIDE = {"int64", "uint64", "float64"}


class Wide64BitTensor(ModelRule):
    """Model side of QF103 wide-64bit-tensor; documented once, in the module docstring
    (`qfix rule QF103`)."""

    code = "QF103"
    name = "wide-64bit-tensor"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        for path, layer in graph.walk():
            kind, narrow = None, False
            if layer.is_input and layer.out_dtype in WIDE:
                kind = f"input {layer.name!r} is {layer.out_dtype}"
                narrow = layer.config.get("dtype") in WIDE
            elif layer.is_cast and layer.out_dtype in WIDE:
                kind = f"{layer.class_name} {layer.name!r} casts to {layer.out_dtype}"
                narrow = any(d in WIDE for d in cast_dtypes(layer.raw))
            elif not layer.is_input and layer.dtype_policy in WIDE:
                # Computing in float64 is left alone: a narrower policy changes the numbers.
                kind = f"{layer.class_name} {layer.name!r} computes in {layer.dtype_policy}"
            if kind:
                yield self.violation(
                    f"{kind}: 64-bit tensors do not run on integer targets",
                    layer.name,
                    fix="use the 32-bit type (int32 / float32)",
                    pointer=layer.pointer,
                    rewrite=Rewrite(rewrites.narrow_64bit, path, layer.name) if narrow else None,
                )

    CASES = [
        ModelCase(
            "int64-ids",
            functional_config(
                [("ids", (1, 8), "int64")],
                [("emb", "Embedding", {"input_dim": 10, "output_dim": 4}, ["ids"], "float32", (1, 8, 4))],
                ["emb"],
            ),
            fires=True,
            count=1,
            expected={"class_name": "InputLayer", "name": "ids", "config": {"dtype": "int32"}},
        ),
        ModelCase(
            "sequential-int64-ids",
            sequential_config(("ids", (1, 8), "int64"), [("emb", "Embedding", {"input_dim": 10, "output_dim": 4}, (1, 8))]),
            fires=True,
            count=1,
            expected={"class_name": "InputLayer", "config": {"name": "ids", "dtype": "int32"}},
        ),
        ModelCase(
            "int32-ids",
            functional_config(
                [("ids", (1, 8), "int32")],
                [("emb", "Embedding", {"input_dim": 10, "output_dim": 4}, ["ids"], "float32", (1, 8, 4))],
                ["emb"],
            ),
            fires=False,
        ),
    ]
