"""Unroll a Keras recurrent layer: `unroll=True` (QF305 rolled-rnn, exact).

A rolled recurrent layer converts to a WHILE loop (tf_keras's LSTM: to the fused
UNIDIRECTIONAL_SEQUENCE_LSTM, FUSED_CLASSES); unrolled, it becomes one copy of the cell per
time step (FULLY_CONNECTED or CONV_2D, LOGISTIC, TANH, MUL, ADD: TF 2.21, reproduced), with the
same weights and the same arithmetic, so the float outputs are identical. The time steps are
read with one UNPACK of the (time-major) input, and a `go_backwards` pass may add a REVERSE_V2
(UNROLLED_OPS). A Bidirectional layer unrolls both its directions. No layer is added or re-keyed:
the weights file stays as it is.
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit

# The recurrent layers of keras.layers and tf_keras.layers (the RNN subclasses of both, Keras
# 3.15 / tf_keras 2.21): all of them take `unroll` in their config (a ConvLSTM passes it on to
# RNN through **kwargs), and all of them convert to a WHILE loop when rolled.
RNN_CLASSES = ("GRU", "LSTM", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
CONV_RNN_CLASSES = frozenset({"ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})

# By dialect, the classes that accept unroll=True. tf_keras's convolutional RNNs refuse it
# (base_conv_rnn.py: "Unrolling is not possible with convolutional RNNs", a TypeError on load).
UNROLLABLE = {
    "keras3": frozenset(RNN_CLASSES),
    "tf_keras": frozenset(RNN_CLASSES) - CONV_RNN_CLASSES,
}


# By dialect, the classes whose rolled layer converts to the fused UNIDIRECTIONAL_SEQUENCE_LSTM
# rather than a WHILE loop (TF 2.21, seen): tf_keras's LSTM, also in a Bidirectional (one per pass).
FUSED_CLASSES = {
    "tf_keras": frozenset({"LSTM"}),
}


def inner_layers(raw: dict) -> list[dict]:
    """The recurrent layer configs of a layer: itself, or both directions of a Bidirectional
    (`backward_layer` when given; otherwise Keras copies `layer` with go_backwards flipped)."""
    cfg = raw.get("config") or {}
    if raw.get("class_name") == "Bidirectional":
        return [cfg.get(k) for k in ("layer", "backward_layer") if isinstance(cfg.get(k), dict)]
    return [raw]


def unroll_rnn(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a recurrent layer (RNN_CLASSES), or a Bidirectional wrapping one, with a static
    sequence length, of a class the dialect can unroll."""
    raw = edit.layer(name, scope)
    inner = inner_layers(raw)
    allowed = UNROLLABLE.get(edit.dialect, frozenset())
    if not inner or any(r.get("class_name") not in allowed for r in inner):
        raise EditError(f"{name!r} is not a recurrent layer that {edit.dialect} can unroll")
    for r in inner:
        r["config"]["unroll"] = True
    # A FUSED_CLASSES layer is fused or a WHILE loop by its config and its mask (QF305 says which).
    if any(r.get("class_name") in FUSED_CLASSES.get(edit.dialect, ()) for r in inner):
        return f"{raw.get('class_name')} {name!r}: unroll=True (one cell per time step)"
    return f"{raw.get('class_name')} {name!r}: unroll=True (one cell per time step instead of a WHILE loop)"
