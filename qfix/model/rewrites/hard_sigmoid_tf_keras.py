"""Rebuild tf_keras's hard_sigmoid from layers tfmot quantizes (QF504, tf_keras configs, exact).

tf_keras 2.21 defines `hard_sigmoid(x) = clip(0.2·x + 0.5, 0, 1)` (tf_keras/src/backend.py:
multiply by 0.2, add 0.5, clip_by_value 0..1; Keras 3's is relu6(x + 3)/6, which the Keras 3 →
tf_keras translation expands itself). tfmot refuses it on a layer and in an Activation layer;
annotated output-only it stays a float island (its multiply, add and clip in float between
integer neighbours). As `Rescaling(1.2, offset=3)` → `ReLU(6.0)` → `Rescaling(1/6)`, i.e.
relu6(1.2x + 3)/6, it is the same function up to float rounding (the Keras 3 translation's
chain, with tf_keras's slope). tfmot quantizes the ReLU(6.0), QF502 annotates the Rescalings
output-only (their MUL/ADD convert to integer), so the QAT model converts fully integer (checked,
tests/jobs/test_qat_leftovers.py; a ReLU(1.0) clip instead left its clip_by_value float). A
Sequential becomes the Functional it stands for (`Detached` reads x through call nodes).
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit
from qfix.model.rewrites._shared import Detached

SLOPE, OFFSET = 0.2, 0.5  # tf_keras.backend.hard_sigmoid's constants


def hard_sigmoid_tf_keras(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` applies tf_keras's hard_sigmoid (an `activation` or an Activation layer)."""
    if edit.dialect != "tf_keras":
        raise EditError("Keras 3's hard_sigmoid is relu6(x + 3)/6: the tf_keras translation expands it")
    d = Detached(edit, scope, name, {"hard_sigmoid"})
    line = d.add("Rescaling", {"scale": SLOPE * 6.0, "offset": OFFSET * 6.0}, "times1_2_plus3", [d.x])
    gate = d.add("ReLU", {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}, "relu6", [line])
    out = d.finish(d.add("Rescaling", {"scale": 1.0 / 6.0, "offset": 0.0}, "div6", [gate]))
    return (f"hard_sigmoid of {d.name!r} → Rescaling(1.2, offset=3) → ReLU(6.0) → Rescaling(1/6) ({out!r}): "
            "tf_keras's clip(0.2x + 0.5, 0, 1), in layers tfmot quantizes")
