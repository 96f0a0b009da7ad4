"""QF303 unsupported-layer: layers that lower to TFLite ops the target lacks (model).

## What it does
Finds layers and keras.ops nodes in a `.keras` config that lower to TFLite ops the target
does not have: MultiHeadAttention and Dot (BATCH_MATMUL), LSTM/GRU, Conv3D, Embedding
(GATHER), keras.ops divide/exp/argmax/cumsum, casts, ...

## Why is this bad?
On a single-cut target (the Edge TPU) the first such op and everything after it run on the
CPU; elsewhere each one is a CPU island with a round trip.

## Example
```python
x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
```

## Use instead
Move the layer to the end of the model (it then runs on the CPU after the accelerated part),
or choose a target that runs it. A Masking layer cannot move: drop it when the deployed
sequences are never padded with its `mask_value` (no time step is then masked, and the outputs
are the same), or run the masked part on the CPU.

## Fix safety
Display-only: qfix cannot replace these layers without changing the model.

## Targets
A target whose profile's op table does not run (or does not list, with
`unlisted_ops = "unsupported"`) an op the layer lowers to.
"""

from __future__ import annotations

from qfix.model.cases import functional_config
from qfix.model.opmap import LAYER_OPS, converted_ops, layer_key, layer_ops
from qfix.types import Applicability
from qfix.rules.base import ModelCase, ModelRule, consequence

_ACTIVATION_LAYERS = {"LeakyReLU", "ELU"}  # reported by QF302
_MOVE = "move the layer to the end of the model or choose another target"
# Layers that cannot move to the end: what to do instead.
_ADVICE = {
    "Masking": ("drop the Masking layer if the deployed sequences are never padded with its mask_value "
                "(no time step is then masked, and the outputs are the same); otherwise run the masked "
                "part on the CPU"),
}


class UnsupportedLayer(ModelRule):
    """Model side of QF303 unsupported-layer; documented once, in the module docstring
    (`qfix rule QF303`)."""

    code = "QF303"
    name = "unsupported-layer"
    fix_applicability = Applicability.DISPLAY_ONLY

    def check(self, graph, ctx):
        for _, layer in graph.walk():
            key = layer_key(layer)
            if key in _ACTIVATION_LAYERS or key not in LAYER_OPS:
                continue
            if layer.is_cast and _reads_input(graph, layer):
                continue  # an input cast is QF102's finding, with its fix
            ops = converted_ops(layer_ops(layer, graph.dialect) or (), ctx.target)
            missing = [op for op in ops if not ctx.target.supports(op)]
            if not missing:
                continue
            spec = ctx.target.op(missing[0])
            hint = getattr(spec, "fix_hint", None) if spec else None
            yield self.violation(
                f"{layer.class_name} {layer.name!r} becomes {', '.join(missing)}, which "
                f"{ctx.target.name} does not run: {consequence(ctx.target)}",
                layer.name,
                fix=hint or _ADVICE.get(key, _MOVE),
                pointer=layer.pointer,
                ops=tuple(missing),
            )

    CASES = [
        ModelCase(  # one cell per time step: plain ops, no WHILE (QF305), and an UNPACK int8 runs
            "unrolled-gru-is-plain-ops",
            functional_config([("x", (1, 5, 4), "float32")], [("g", "GRU", {"units": 4, "unroll": True}, ["x"])], ["g"]),
            fires=False, targets=("int8",),
        ),
        ModelCase(  # the Edge TPU has no UNPACK: qfix's conversion reads the steps with STRIDED_SLICE
            "unrolled-gru-steps-sliced-on-edgetpu",
            functional_config([("x", (1, 5, 4), "float32")], [("g", "GRU", {"units": 4, "unroll": True}, ["x"])], ["g"]),
            fires=False, targets=("edgetpu",),
        ),
        ModelCase(  # ... but a Bidirectional returning sequences flips its backward pass: REVERSE_V2
            "unrolled-bidirectional-sequence-reverses",
            functional_config(
                [("x", (1, 5, 4), "float32")],
                [("bi", "Bidirectional", {"layer": {"module": "keras.layers", "class_name": "GRU",
                                                    "config": {"name": "gru", "units": 4, "unroll": True,
                                                               "return_sequences": True}}},
                  ["x"], "float32", (1, 5, 8))],
                ["bi"]),
            fires=True, count=1, targets=("edgetpu",),
        ),
        ModelCase(
            "cast-after-input-is-qf102",
            functional_config([("x", (1, 4), "uint8")], [("c", "Cast", {"dtype": "float32"}, ["x"])], ["c"]),
            fires=False,
        ),
        ModelCase(
            "mha",
            functional_config(
                [("x", (1, 4, 8), "float32")],
                [("mha", "MultiHeadAttention", {"num_heads": 2, "key_dim": 4}, ["x", "x"])],
                ["mha"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(  # keyed by the wrapped layer: WHILE and REVERSE_V2, not a BIDIRECTIONAL_SEQUENCE_LSTM
            "bidirectional-gru",
            functional_config(
                [("x", (1, 5, 4), "float32")],
                [("bi", "Bidirectional", {"layer": {"module": "keras.layers", "class_name": "GRU",
                                                    "config": {"name": "gru", "units": 4}}}, ["x"], "float32", (1, 8))],
                ["bi"]),
            fires=True,
            count=1,
        ),
        ModelCase(  # Keras 3 lowers a rolled LSTM to a WHILE loop, no UNIDIRECTIONAL_SEQUENCE_LSTM (TF 2.21)
            "keras3-lstm-is-a-while-loop",
            functional_config([("x", (1, 5, 4), "float32")], [("lstm", "LSTM", {"units": 4}, ["x"])], ["lstm"]),
            fires=True,
            count=1,
            targets=("gpu",),
        ),
        ModelCase(
            "conv",
            functional_config([("x", (1, 8, 8, 3), "float32")], [("c", "Conv2D", {"filters": 2, "kernel_size": 3}, ["x"])], ["c"]),
            fires=False,
        ),
        ModelCase(  # its mask is NOT_EQUAL and REDUCE_ANY, which Coral's table lacks
            "masking-on-edgetpu",
            functional_config([("x", (1, 5, 4), "float32")], [("m", "Masking", {"mask_value": 0.0}, ["x"])], ["m"]),
            fires=True, count=1, targets=("edgetpu",),
        ),
        ModelCase(  # the int8 CPU runs them (its reference kernels)
            "masking-on-int8",
            functional_config([("x", (1, 5, 4), "float32")], [("m", "Masking", {"mask_value": 0.0}, ["x"])], ["m"]),
            fires=False, targets=("int8",),
        ),
    ]


def _reads_input(graph, layer) -> bool:
    return any(graph.layers.get(r.layer) is not None and graph.layers[r.layer].is_input for r in layer.inputs)

