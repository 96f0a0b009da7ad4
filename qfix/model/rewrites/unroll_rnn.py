"""Unroll a Keras 3 recurrent layer: `unroll=True` (QF305 rolled-rnn, exact).

A rolled Keras 3 GRU/LSTM/SimpleRNN converts to a WHILE loop; unrolled, it becomes one copy of
the cell per time step (FULLY_CONNECTED, LOGISTIC, TANH, MUL, ADD: TF 2.21, reproduced), with
the same weights and the same arithmetic, so the float outputs are identical. A Bidirectional
layer unrolls both its directions. No layer is added or re-keyed: the weights file stays as it is.
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit

RNN_CLASSES = ("GRU", "LSTM", "SimpleRNN")


def unroll_rnn(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a GRU/LSTM/SimpleRNN, or a Bidirectional wrapping one, with a static sequence length."""
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    if raw.get("class_name") == "Bidirectional":
        inner = [cfg.get(k) for k in ("layer", "backward_layer") if isinstance(cfg.get(k), dict)]
    else:
        inner = [raw]
    if not inner or any(r.get("class_name") not in RNN_CLASSES for r in inner):
        raise EditError(f"{name!r} is not a GRU, LSTM or SimpleRNN layer")
    for r in inner:
        r["config"]["unroll"] = True
    return f"{raw.get('class_name')} {name!r}: unroll=True (one cell per time step instead of a WHILE loop)"
