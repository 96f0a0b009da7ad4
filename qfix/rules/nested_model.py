"""QF201 nested-model: a Model used as a layer inside another model (model).

## What it does
Finds a Model used as a layer inside another model in a `.keras` config (the
transfer-learning pattern: a backbone called inside a functional head).

## Why is this bad?
tfmot's quantize_model refuses it ("Quantizing a tf.keras Model inside another tf.keras
Model is not supported"), and the converted op names no longer map one to one to the layers
you see, which hides where a target cuts the graph.

## Example
```python
backbone = keras.applications.MobileNetV2(include_top=False)
outputs = keras.layers.Dense(10)(backbone(inputs))
```

## Use instead
```python
backbone = keras.applications.MobileNetV2(include_top=False, input_tensor=inputs)
outputs = keras.layers.Dense(10)(backbone.output)  # one flat functional model
```

## Fix safety
Safe: flattening keeps every layer and weight; outputs are identical.

## Targets
Every target: the rule reads no property of the target's profile. A blocker with
`--mode qat`, a warning for post-training quantization.
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.rewrites import Rewrite
from qfix.types import Applicability, Severity
from qfix.rules.base import ModelCase, ModelRule

_INNER = functional_config(
    [("bin", (None, 4), "float32")], [("d", "Dense", {"units": 2}, ["bin"], "float32", (None, 2))], ["d"], "backbone"
)


class NestedModel(ModelRule):
    """Model side of QF201 nested-model; documented once, in the module docstring
    (`qfix rule QF201`)."""

    code = "QF201"
    name = "nested-model"
    severity = Severity.WARNING
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        for path, layer in graph.walk():
            if layer.is_model:
                where = " inside " + "/".join(path) if path else ""
                yield self.violation(
                    f"{layer.class_name} model {layer.name!r} is nested as a layer{where} "
                    f"({sum(not l.is_input for l in layer.subgraph)} layers besides its input)",
                    layer.name,
                    fix="flatten the nested model into its parent, weights preserved",
                    severity=Severity.BLOCKER if ctx.mode == "qat" else Severity.WARNING,
                    pointer=layer.pointer,
                    rewrite=Rewrite(rewrites.flatten_nested, path, layer.name),
                )

    CASES = [
        ModelCase(
            "backbone-in-head",
            functional_config(
                [("x", (None, 4), "float32")],
                [("backbone", "Functional", {"__sub": _INNER}, ["x"], "float32", (None, 2))],
                ["backbone"],
            ),
            fires=True,
            count=1,
            expected=[("x", "InputLayer"), ("backbone", "Dense")],  # the output keeps the name readers use
        ),
        ModelCase(
            "sequential-in-head",
            functional_config(
                [("x", (None, 4), "float32")],
                [("seq", "Sequential", {"__sub": sequential_config(
                    ("sin", (None, 4), "float32"), [("d1", "Dense", {"units": 3}, (None, 4)),
                                                   ("d2", "Dense", {"units": 2}, (None, 3))], "seq")},
                  ["x"], "float32", (None, 2)),
                 ("head", "Dense", {"units": 1}, ["seq"], "float32", (None, 1))],
                ["head"],
            ),
            fires=True,
            count=1,
            expected=[("x", "InputLayer"), ("d1", "Dense"), ("d2", "Dense"), ("head", "Dense")],
        ),
        ModelCase(
            "backbone-in-sequential",
            sequential_config(("x", (None, 4), "float32"), [("backbone", "Functional", {"__sub": _INNER}),
                                                            ("head", "Dense", {"units": 1}, (None, 2))]),
            fires=True,
            count=1,
            # Splicing into a Sequential makes it the Functional it stands for first.
            expected=[("x", "InputLayer"), ("d", "Dense"), ("head", "Dense")],
        ),
        ModelCase(
            "flat",
            functional_config([("x", (None, 4), "float32")], [("d", "Dense", {"units": 2}, ["x"])], ["d"]),
            fires=False,
        ),
    ]
