"""QF102 integer-input-cast: an integer model input cast to float inside the graph (model).

## What it does
Finds an integer model input (a uint8 camera frame) that is cast to float inside the graph
(`keras.ops.cast`, `tf.cast`, or implicitly by a float Rescaling).

## Why is this bad?
After conversion that cast is a CAST op on device: the Edge TPU cannot run it, so the whole
model falls back to the CPU from the first op. The converter's own input quantization already
turns the raw uint8 frame into the model's first tensor.

## Example
```python
x = keras.Input((224, 224, 3), dtype="uint8")
y = keras.layers.Rescaling(1 / 255)(keras.ops.cast(x, "float32"))
```

## Use instead
```python
x = keras.Input((224, 224, 3))  # float input
y = keras.layers.Rescaling(1 / 255)(x)
# and converter.inference_input_type = tf.uint8: the TFLite input stays the raw uint8 frame
```

## Fix safety
Safe: the cast (and an exact Rescaling) fold into the input quantization; the on-device
input is still the raw uint8 frame.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.rewrites import Rewrite
from qfix.model.graph import is_float, is_integer
from qfix.types import Applicability
from qfix.rules.base import ModelCase, ModelRule


class IntegerInputCast(ModelRule):
    """Model side of QF102 integer-input-cast; documented once, in the module docstring
    (`qfix rule QF102`)."""

    code = "QF102"
    name = "integer-input-cast"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        for inp in graph.input_layers():
            if not is_integer(inp.out_dtype) or inp.out_dtype in ("int32", "int64"):
                continue  # token ids feed Embedding lookups, not casts
            for user in graph.consumers(inp.name):
                if user.is_cast or (user.class_name == "Rescaling" and is_float(user.dtype_policy)):
                    how = "casts it to float" if user.is_cast else "casts it implicitly"
                    yield self.violation(
                        f"input {inp.name!r} is {inp.out_dtype} and {user.class_name} {user.name!r} {how} "
                        "inside the graph: a CAST op on device",
                        user.name,
                        fix="fold the cast (and exact rescaling) into the input quantization",
                        pointer=user.pointer,
                        rewrite=Rewrite(rewrites.fold_input_cast, (), user.name),
                    )

    CASES = [
        ModelCase(
            "uint8-cast-rescale",
            functional_config(
                [("frame", (None, 8, 8, 3), "uint8")],
                [("cast", "Cast", {"dtype": "float32"}, ["frame"]),
                 ("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0}, ["cast"])],
                ["rescaling"],
            ),
            fires=True,
            count=1,
            expected=[("frame", "InputLayer"), ("rescaling", "Rescaling")],
        ),
        ModelCase(
            "sequential-uint8-rescale",
            sequential_config(("frame", (1, 8, 8, 3), "uint8"), [("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0})]),
            fires=True,
            count=1,
            expected={"class_name": "InputLayer", "config": {"name": "frame", "dtype": "float32"}},
        ),
        ModelCase(
            "float-input",
            functional_config(
                [("x", (None, 8, 8, 3), "float32")],
                [("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0}, ["x"])],
                ["rescaling"],
            ),
            fires=False,
        ),
        ModelCase(
            "int32-ids-embedding",
            functional_config(
                [("ids", (None, 8), "int32")],
                [("emb", "Embedding", {"input_dim": 10, "output_dim": 4}, ["ids"], "float32", (None, 8, 4))],
                ["emb"],
            ),
            fires=False,
        ),
    ]
