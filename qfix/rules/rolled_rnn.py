"""QF305 rolled-rnn: a rolled recurrent layer (unroll=False) that the int8 converter crashes on,
or that converts to a fused LSTM kernel the target cannot run.

## What it does
Finds the recurrent layers of keras.layers / tf_keras.layers (GRU, LSTM, SimpleRNN, a generic
RNN over a cell, ConvLSTM1D/2D/3D; also inside Bidirectional) with `unroll=False`, the
default, when the target needs a full-integer model.

It also finds a rolled tf_keras LSTM (also inside Bidirectional), which converts to the fused
UNIDIRECTIONAL_SEQUENCE_LSTM instead, when the target cannot run that op's integer kernel.

## Why is this bad?
A rolled RNN converts to a WHILE loop over the time steps. With full-integer quantization, the
calibration of that loop crashes TensorFlow's converter natively (TF 2.21: segmentation fault,
exit 139, nothing printed; reproduced for Keras 3 GRU/LSTM/SimpleRNN/ConvLSTM1D/ConvLSTM2D and
tf_keras GRU/SimpleRNN). qfix survives the crash (the conversion runs in a child process) but
no model comes out, and even where a WHILE converts, single-cut accelerators do not run control
flow.

tf_keras's LSTM is the exception: with its defaults (tanh and sigmoid, a bias, no recurrent
dropout) and no mask reaching it, it converts to one fused UNIDIRECTIONAL_SEQUENCE_LSTM (one per
direction in a Bidirectional), whose full-integer kernel has int8 activations and an int16 cell
state (TF 2.21, seen). Where the target has no such op, or computes no int16 tensor (the Edge
TPU: int8/uint8 only), the graph is cut at the LSTM (QF304 reports the op once converted); the
int8 CPU (int16 state), TFLM and Ethos-U (int16 tensors) run it, and there it is not reported.
Off those defaults, or after a Masking layer or an Embedding with `mask_zero=True`, it is a
WHILE loop that crashes like the others (TF 2.21, reproduced with activation="relu" and after a
Masking layer), on every integer target.

## Example
```python
x = keras.Input((5, 16))
y = keras.layers.GRU(8)(x)
```

## Use instead
```python
x = keras.Input((5, 16))            # a fixed sequence length
y = keras.layers.GRU(8, unroll=True)(x)
```

## Fix safety
Safe when the sequence length is static: `unroll=True` builds one copy of the cell per time
step with the same weights and the same arithmetic, so the float outputs are identical
(checked to 1e-5), and the model converts without the WHILE loop (or the fused LSTM): the cell's plain int8 ops
(FULLY_CONNECTED or CONV_2D, LOGISTIC, TANH, MUL, ADD, SPLIT, STRIDED_SLICE) plus an UNPACK
that reads the time steps (both dialects' unrolled loop calls tf.unstack; TF 2.21 keeps it at
batch 1), a PACK on the time-major axis for a layer that returns its sequence, and a
REVERSE_V2 for a Bidirectional that returns sequences. For a target without UNPACK (the Edge
TPU) qfix's conversion reads the steps with STRIDED_SLICE instead, whatever produces them
(qfix.convert.unstack), and for a target whose PACK refuses the batch axis (the Edge TPU) it
stacks the sequence on axis 1 and reshapes it (qfix.convert.unbatched_pack); for a target
without SPLIT_V it splits tf_keras's GRU gates (equal sizes) with SPLIT (qfix.convert.equal_split):
all exact, the integer outputs bit-identical. What the target still lacks cuts the graph at the layer: a REVERSE_V2
(the fix names it, QF303 predicts it), a ConvLSTM2D/3D's 5-D or 6-D input on the Edge TPU, which maps
only the 3 innermost dimensions (the fix says so, QF304 reports it once converted). TF 2.21 sometimes leaves the first time step's SPLIT in float (not every
conversion of the same model): a single-cut target then cuts there, and QF304/QF405 report it.
The graph grows with the sequence length. When the length is dynamic (`Input((None, F))`) there is no fix: fix the length first,
then unroll. tf_keras cannot unroll a ConvLSTM ("Unrolling is not possible with convolutional
RNNs"): no fix there.

## Targets
Targets whose recipe quantizes to full integer. Float and dynamic-range recipes keep the WHILE
loop and are not affected. A fused tf_keras LSTM: only targets whose profile does not run
UNIDIRECTIONAL_SEQUENCE_LSTM, or has int16 in none of `activation_dtypes`, `aux_dtypes` and
`state_dtypes` (as the op-by-op check judges its cell state). Sources: TF 2.21 reproduction
(`/tmp/i9/gru.keras`, issue 9 fault 1; tf_keras `Input((8, 4)) → LSTM(6) → Dense(2)`:
UNIDIRECTIONAL_SEQUENCE_LSTM cut on the Edge TPU, 116/117 ops on target unrolled; tf_keras
lstm.py `_could_use_gpu_kernel`);
keras.layers.GRU `unroll` documentation ("Unrolling can speed-up an RNN, although it tends to be
more memory-intensive. Unrolling is only suitable for short sequences").
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.rewrites import Rewrite
from qfix.model.opmap import (FUSED_LSTM_OP, converted_ops, fused_lstm_cut, fuses_lstm, masked_input, packs_off_batch,
                              returns_sequences, splits_equal, steps_sliced, unrolled_ops)
from qfix.model.rewrites.unroll_rnn import CONV_RNN_CLASSES, FUSED_CLASSES, RNN_CLASSES, UNROLLABLE, inner_layers
from qfix.model.shapes import input_shape_of
from qfix.rules.base import ModelCase, ModelRule, consequence
from qfix.types import Applicability

# Dialects whose rolled RNN crashes the int8 converter, by class (TF 2.21, reproduced). The
# tf_keras LSTM is not one of them: it converts to the fused UNIDIRECTIONAL_SEQUENCE_LSTM, or, off
# its fused path, to the crashing WHILE (`lowering`).
CRASHES = {
    "keras3": frozenset(RNN_CLASSES),
    "tf_keras": frozenset({"GRU", "SimpleRNN", "RNN"}) | CONV_RNN_CLASSES,
}
# Dialects whose rolled RNN converts to the fused integer LSTM kernel instead (FUSED_CLASSES:
# FUSED_LSTM_OP, one per direction of a Bidirectional; TF 2.21, seen), by class: cut where the
# target cannot run that kernel (opmap.fused_lstm_cut: the Edge TPU, whose int8 tensors do not
# take its int16 cell state), left alone where it can (the int8 CPU, TFLM, Ethos-U).
FUSED = FUSED_CLASSES


def lowering(graph, layer) -> str | None:
    """How the rolled recurrent `layer` of `graph` converts for a full-integer recipe: "crash" (a
    WHILE loop whose calibration crashes: CRASHES, and a FUSED class off its fused path, see
    opmap.fuses_lstm), "fused" (FUSED_LSTM_OP), or None (not a rolled recurrent layer)."""
    cls = _rolled(layer)
    if cls is None:
        return None
    if cls in FUSED.get(graph.dialect, ()):
        masked = masked_input(graph, layer)
        inner = inner_layers(layer.raw)
        return "fused" if all(fuses_lstm(r.get("config") or {}, masked) for r in inner) else "crash"
    return "crash" if cls in CRASHES.get(graph.dialect, ()) else None


def _remains(layer, target, dialect: str, shape) -> str:
    """What the unrolled layer still lowers to that `target` lacks, and what qfix's conversion
    swaps for it, as a clause of the fix. `shape`: the layer's input shape (batch, time, ...)."""
    missing = [op for op in converted_ops(unrolled_ops(layer), target) if not target.supports(op)]
    if missing:
        return (f"; unrolled, it still becomes {', '.join(missing)}, which {target.name} does not run: "
                "the model converts, but the graph is still cut at this layer (QF303)")
    said = ""
    if steps_sliced(target):
        said = f"; qfix reads the time steps with STRIDED_SLICE ({target.name} has no UNPACK), exactly"
    if returns_sequences(layer) and packs_off_batch(target):
        said += (f"; qfix stacks the returned sequence on axis 1 and reshapes it ({target.name} does not "
                 "pack on the batch axis), exactly")
    if dialect == "tf_keras" and _rolled(layer) == "GRU" and splits_equal(target):
        said += f"; qfix splits the gates with SPLIT ({target.name} has no SPLIT_V), exactly"
    # The time steps are read from the (1, time, ...) input: a ConvLSTM2D/3D's has more
    # dimensions > 1 than the target maps (the Edge TPU: the 3 innermost).
    wide = [d for d in (shape or ())[1:] if d is None or d > 1]
    if target.max_innermost_dims is not None and len(wide) > target.max_innermost_dims:
        said += (f"; but the steps are read from its {len(shape)}-D input (time and {len(wide) - 1} more dimensions "
                 f"above 1), and {target.name} maps only the {target.max_innermost_dims} innermost: the graph "
                 "is still cut at this layer (QF304 names the op once converted)")
    return said


def _rolled(layer) -> str | None:
    """The RNN class of a rolled recurrent layer (or of the one a Bidirectional wraps)."""
    raw = layer.config.get("layer") if layer.class_name == "Bidirectional" else layer.raw
    if not isinstance(raw, dict) or raw.get("class_name") not in RNN_CLASSES:
        return None
    return None if (raw.get("config") or {}).get("unroll") else raw["class_name"]


class RolledRnn(ModelRule):
    """QF305 rolled-rnn; documented in the module docstring (`qfix rule QF305`)."""

    code = "QF305"
    name = "rolled-rnn"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        if not ctx.target.integer:
            return
        for path, layer in graph.walk():
            g = graph if not path else _scope_graph(graph, path)
            how = lowering(g, layer)
            cut = fused_lstm_cut(ctx.target) if how == "fused" else None
            if how is None or how == "fused" and cut is None:
                continue
            cls = _rolled(layer)
            shape = input_shape_of(g, layer)
            # (batch, time, ...) for every recurrent layer, whatever its data_format
            steps = shape[1] if shape is not None and len(shape) >= 3 else None
            what = f"{layer.class_name} {layer.name!r}" + (f" ({cls})" if cls != layer.class_name else "")
            msg = (f"{what} is rolled (unroll=False): it converts to a WHILE loop whose int8 calibration "
                   "crashes TF's converter, so no model comes out")
            if cls in FUSED.get(graph.dialect, ()) and how == "crash":
                msg += (f" ({graph.dialect} fuses an {cls} only with tanh and sigmoid activations, a bias, no "
                        "recurrent dropout and no mask)")
            loop = "no WHILE loop"
            if cut is not None:
                fused = FUSED_LSTM_OP + (" (one per direction)" if layer.class_name == "Bidirectional" else "")
                msg = (f"{what} is rolled (unroll=False): it converts to the fused {fused}, {cut}: "
                       f"{consequence(ctx.target)}")
                loop = f"plain int8 ops instead of the fused {FUSED_LSTM_OP}"
            if cls not in UNROLLABLE.get(graph.dialect, ()):
                yield self.violation(
                    msg + f"; {graph.dialect} cannot unroll a {cls}", layer.name,
                    pointer=layer.pointer, applicability=Applicability.DISPLAY_ONLY,
                    fix=(f"{graph.dialect} refuses unroll=True on a convolutional RNN: build the model with "
                         "Keras 3 (whose ConvLSTM unrolls), or keep the layer off the int8 model"),
                )
            elif isinstance(steps, int):
                yield self.violation(
                    msg, layer.name, pointer=layer.pointer,
                    fix=(f"set unroll=True (the sequence length, {steps}, is static): identical outputs, "
                         f"{loop}{_remains(layer, ctx.target, graph.dialect, shape)}"),
                    rewrite=Rewrite(rewrites.unroll_rnn, path, layer.name),
                )
            else:
                yield self.violation(
                    msg + "; the sequence length is not static, so it cannot be unrolled", layer.name,
                    pointer=layer.pointer, applicability=Applicability.DISPLAY_ONLY,
                    fix="fix the sequence length (Input((T, features))), then set unroll=True",
                )

    CASES = [
        ModelCase(
            "gru",
            functional_config([("x", (None, 5, 16), "float32")],
                              [("gru", "GRU", {"units": 8, "unroll": False}, ["x"], "float32", (None, 8))], ["gru"]),
            fires=True, count=1, targets=("edgetpu", "int8"),
            expected={"name": "gru", "config": {"unroll": True}},
        ),
        ModelCase(
            "sequential-lstm",
            sequential_config(("x", (None, 5, 16), "float32"), [("lstm", "LSTM", {"units": 8, "unroll": False})]),
            fires=True, count=1,
            expected={"class_name": "LSTM", "config": {"name": "lstm", "unroll": True}},
        ),
        ModelCase(
            "bidirectional-simple-rnn",
            functional_config(
                [("x", (None, 5, 16), "float32")],
                [("bi", "Bidirectional", {"layer": {"module": "keras.layers", "class_name": "SimpleRNN",
                                                    "config": {"name": "rnn", "units": 4, "unroll": False}}},
                  ["x"], "float32", (None, 8))],
                ["bi"]),
            fires=True, count=1,
            expected={"class_name": "SimpleRNN", "config": {"unroll": True}},
        ),
        ModelCase(
            "conv-lstm2d",
            functional_config([("x", (None, 3, 8, 8, 2), "float32")],
                              [("c", "ConvLSTM2D", {"filters": 2, "kernel_size": 3, "unroll": False}, ["x"],
                                "float32", (None, 8, 8, 2))], ["c"]),
            fires=True, count=1, targets=("edgetpu", "int8"),
            expected={"name": "c", "config": {"unroll": True}},
        ),
        ModelCase(  # the fused UNIDIRECTIONAL_SEQUENCE_LSTM keeps an int16 cell state the Edge TPU does not compute
            "tf-keras-lstm-fused-on-edgetpu",
            functional_config([("x", (None, 8, 4), "float32")],
                              [("lstm", "LSTM", {"units": 6, "unroll": False}, ["x"], "float32", (None, 6))], ["lstm"]),
            fires=True, count=1, dialect="tf_keras",
            expected={"name": "lstm", "config": {"unroll": True}},
        ),
        ModelCase(  # one fused op per direction
            "tf-keras-bidirectional-lstm-on-edgetpu",
            functional_config(
                [("x", (None, 8, 4), "float32")],
                [("bi", "Bidirectional", {"layer": {"module": "keras.layers", "class_name": "LSTM",
                                                    "config": {"name": "lstm", "units": 6, "unroll": False}}},
                  ["x"], "float32", (None, 12))],
                ["bi"]),
            fires=True, count=1, dialect="tf_keras",
            expected={"class_name": "LSTM", "config": {"unroll": True}},
        ),
        ModelCase(  # the int8 CPU, TFLM and Ethos-U run the fused LSTM with its int16 cell state
            "tf-keras-lstm-fused-runs",
            functional_config([("x", (None, 8, 4), "float32")],
                              [("lstm", "LSTM", {"units": 6}, ["x"], "float32", (None, 6))], ["lstm"]),
            fires=False, targets=("int8", "tflm", "ethos-u55", "ethos-u85"), dialect="tf_keras",
        ),
        ModelCase(  # off the fused path (a relu, or a mask): a WHILE loop that crashes, on every integer target
            "tf-keras-lstm-relu-is-a-loop",
            functional_config([("x", (None, 8, 4), "float32")],
                              [("lstm", "LSTM", {"units": 6, "activation": "relu"}, ["x"], "float32", (None, 6))],
                              ["lstm"]),
            fires=True, count=1, targets=("int8", "edgetpu"), dialect="tf_keras",
            expected={"name": "lstm", "config": {"unroll": True}},
        ),
        ModelCase(
            "tf-keras-masked-lstm-is-a-loop",
            functional_config([("x", (None, 8, 4), "float32")],
                              [("m", "Masking", {"mask_value": 0.0}, ["x"]),
                               ("lstm", "LSTM", {"units": 6}, ["m"], "float32", (None, 6))], ["lstm"]),
            fires=True, count=1, targets=("int8",), dialect="tf_keras",
            expected={"name": "lstm", "config": {"unroll": True}},
        ),
        ModelCase(
            "dynamic-length-no-fix",
            functional_config([("x", (None, None, 16), "float32")],
                              [("gru", "GRU", {"units": 8}, ["x"], "float32", (None, 8))], ["gru"]),
            fires=True, count=1,
        ),
        ModelCase(
            "unrolled",
            functional_config([("x", (None, 5, 16), "float32")],
                              [("gru", "GRU", {"units": 8, "unroll": True}, ["x"], "float32", (None, 8))], ["gru"]),
            fires=False,
        ),
    ]


def _scope_graph(graph, path):
    g = graph
    for name in path:
        g = g.layers[name].subgraph
    return g
