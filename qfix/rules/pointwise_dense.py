"""QF311 pointwise-dense: a Dense over the channels of a 3-D or 4-D tensor, on a target whose
FULLY_CONNECTED output must be one-dimensional (model).

## What it does
Finds `Dense` layers whose input has more than one non-batch dimension (`(batch, H, W, C)`,
`(batch, tokens, C)`) on a target whose op table limits FULLY_CONNECTED's output rank (the
Coral Edge TPU: "Output tensor is one-dimensional").

## Why is this bad?
TFLite converts such a Dense to a FULLY_CONNECTED that keeps the N-D shape of its output. The
Edge TPU compiler does not map it: the graph is cut there and everything after runs on the CPU.
ConvNeXt's pointwise layers and a transformer's per-token MLP are Denses of this kind.

## Example
```python
x = keras.Input((56, 56, 96))
y = keras.layers.Dense(384, activation="gelu")(x)
```

## Use instead
```python
y = keras.layers.Conv2D(384, 1, activation="gelu")(x)  # the same matrix at every position
```

## Fix safety
Safe: a Dense on the last axis is a 1×1 convolution (`Conv2D` on rank 4, `Conv1D` on rank 3)
with the kernel read as `1×1×C×units`; same weights, same outputs.

## Targets
Targets whose op table limits the output rank of FULLY_CONNECTED (an `effective_rank_le` rule on
its output): the Coral Edge TPU. Post-training quantization only: in `--mode qat` the Dense stays
(tfmot's registry quantizes a Dense of any rank; a Conv1D it rejects).
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.lambda_plan import recorded_input_shape
from qfix.model.rewrites import Rewrite
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability


class PointwiseDense(ModelRule):
    """QF311 pointwise-dense; documented in the module docstring (`qfix rule QF311`)."""

    code = "QF311"
    name = "pointwise-dense"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        limit = ctx.target.output_rank_limit("FULLY_CONNECTED") if ctx.target is not None else None
        if limit is None or ctx.mode == "qat":  # tfmot quantizes a Dense of any rank, not a Conv1D
            return
        for scope, g in graph.models():
            for layer in g:
                if layer.class_name != "Dense":
                    continue
                shape = recorded_input_shape(layer)
                if shape is None or len(shape) < 3:
                    continue
                out = [*shape[1:-1], layer.config.get("units")]
                rank = sum(d != 1 for d in out)  # an unknown size counts as one that is not 1
                if rank <= limit:
                    continue
                conv = "Conv2D" if len(shape) == 4 else "Conv1D" if len(shape) == 3 else None
                yield self.violation(
                    f"Dense {layer.name!r} on a rank-{len(shape)} input {tuple(shape)}: it converts to a "
                    f"FULLY_CONNECTED with a {rank}-D output, which {ctx.target.name} does not map "
                    f"(its output may have {limit} dimension{'s' if limit > 1 else ''} other than 1)",
                    layer.name, pointer=layer.pointer,
                    fix=(f"the same layer as a 1×1 {conv} (the kernel read as 1×…×C×units: same outputs)" if conv
                         else "reshape to (batch, features) around the Dense"),
                    applicability=None if conv else Applicability.DISPLAY_ONLY,
                    rewrite=Rewrite(rewrites.dense_as_conv, scope, layer.name) if conv else None,
                )

    CASES = [
        ModelCase(
            "dense-on-4d",
            functional_config(
                [("x", (None, 4, 4, 8), "float32")],
                [("pw", "Dense", {"units": 16, "activation": "relu"}, ["x"], "float32", (None, 4, 4, 16))],
                ["pw"],
            ),
            fires=True,
            count=1,
            expected={"class_name": "Conv2D", "name": "pw",
                      "config": {"filters": 16, "kernel_size": [1, 1], "activation": "relu"}},
        ),
        ModelCase(
            "sequential-dense-on-tokens",
            sequential_config(("tokens", (1, 6, 8), "float32"), [("mlp", "Dense", {"units": 4}, (1, 6, 4))]),
            fires=True,
            count=1,
            expected={"class_name": "Conv1D", "config": {"name": "mlp", "filters": 4, "kernel_size": [1]}},
        ),
        ModelCase(
            "dense-after-pooling",
            functional_config(
                [("x", (None, 4, 4, 8), "float32")],
                [("gap", "GlobalAveragePooling2D", {}, ["x"], "float32", (None, 8)),
                 ("head", "Dense", {"units": 10}, ["gap"], "float32", (None, 10))],
                ["head"],
            ),
            fires=False,
        ),
        ModelCase(
            "dense-on-1x1-map",  # (1, 1, C): a one-dimensional output after all
            functional_config(
                [("x", (None, 1, 1, 8), "float32")],
                [("pw", "Dense", {"units": 16}, ["x"], "float32", (None, 1, 1, 16))],
                ["pw"],
            ),
            fires=False,
        ),
        ModelCase(
            "qat-keeps-the-dense",  # tfmot quantizes the Dense; a Conv1D it would reject
            functional_config(
                [("x", (None, 6, 8), "float32")],
                [("mlp", "Dense", {"units": 16}, ["x"], "float32", (None, 6, 16))],
                ["mlp"],
            ),
            fires=False,
            mode="qat",
        ),
        ModelCase(
            "int8-cpu-maps-it",  # no output-rank limit on the CPU
            functional_config(
                [("x", (None, 4, 4, 8), "float32")],
                [("pw", "Dense", {"units": 16}, ["x"], "float32", (None, 4, 4, 16))],
                ["pw"],
            ),
            fires=False,
            targets=("int8",),
        ),
    ]
