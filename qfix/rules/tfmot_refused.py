"""QF505 tfmot-refused: tfmot's `quantize_model` raised on the model (--mode qat, verify).

## What it does
With `--mode qat`, qfix calls tfmot's `quantize_model` on the model (after its QAT rewrites,
in its worker process) and reports what tfmot raises: its exception class and message, at the
layer the message names (`Layer rescaling:<class ...> is not supported`, the variable of
`Cannot assign value to variable ' conv2d_3/kernel:0'`, the class of `Cannot deserialize
object of type ...`). A slice or `tf.*` op feeding the named layer is reported instead: tfmot
lost its arguments while cloning the model (errors.md B7).

## Why is this bad?
Quantization-aware training cannot start: the model is never wrapped with fake-quant layers,
so there is nothing to train and no QAT model to convert. A static rule can only guess at
tfmot's registry; this finding is tfmot's own answer on this model.

## Example
```python
model = tf_keras.Sequential([tf_keras.Input((32, 32, 3)), layers.Rescaling(1 / 255),
                             layers.Conv2D(16, 3), ...])
tfmot.quantization.keras.quantize_model(model)
# RuntimeError: Layer rescaling:<class '...Rescaling'> is not supported. ...
```

## Use instead
Move the named layer out of the model (preprocessing into the input pipeline), replace it by
a layer tfmot's registry supports (`ReLU(6.0)` for `activation="relu6"`, the activation after
the BatchNormalization), or annotate it with a `QuantizeConfig` and load the model inside
`quantize_scope`. qfix applies the rewrites it knows (the other QF5xx findings) before it
calls tfmot.

## Fix safety
Display-only: the fix depends on the layer (see the QF5xx rules that rewrite it).

## Targets
Every target, with `--mode qat`.
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.rules.base import VerifyRule
from qfix.types import Violation

# Layers whose arguments tfmot's clone loses, so that the error surfaces at the layer after them.
_LOST_ARGUMENTS = {"SlicingOpLambda", "TFOpLambda", "TensorFlowOpLayer"}


class TfmotRefused(VerifyRule):
    """QF505 tfmot-refused; documented once, in the module docstring (`qfix rule QF505`).
    Judges the tfmot trial (qfix.convert.qat.QatTrial), not the placement."""

    code = "QF505"
    name = "tfmot-refused"

    def check(self, placement: Any, profile: Any) -> Iterable[Violation]:
        return ()  # the placement of a converted model says nothing about tfmot: see `from_trial`

    def from_trial(self, trial: Any, graph: Any) -> list[Violation]:
        """The finding of a trial whose `quantize_model` raised (none otherwise)."""
        if not trial.refused:
            return []
        layer = blamed_layer(graph, trial.refused_layer, trial.refused_class)
        message = f"tfmot's quantize_model raised {trial.refused}"
        if layer is not None and trial.refused_layer and layer != trial.refused_layer:
            if trial.refused_layer.startswith("quantize_layer"):
                message += f" (tfmot's QuantizeLayer fake-quantizes the integer input {layer!r})"
            else:
                message += f" (the layer it names reads the output of {layer!r}, whose arguments tfmot's clone loses)"
        return [self.violation(message, layer)]


def blamed_layer(graph: Any, named: str | None, class_name: str | None) -> str | None:
    """The graph layer behind tfmot's message: the layer it names, or the slice / tf.* op that
    feeds it (B7); for tfmot's QuantizeLayer, the one integer input it was put after; for a
    class name only (B4), the first layer of that class."""
    layers = {l.name: l for _, l in graph.walk()}
    if named and named not in layers and named.startswith("quantize_layer"):
        # tfmot's own QuantizeLayer after an input: it fake-quantizes float tensors only
        ints = [l.name for l in graph.input_layers() if (l.out_dtype or "float32").startswith(("int", "uint"))]
        return ints[0] if len(ints) == 1 else None
    if named in layers:
        feeding = [layers[t.layer] for t in layers[named].inputs if t.layer in layers]
        lost = [l.name for l in feeding if l.class_name in _LOST_ARGUMENTS]
        return lost[0] if lost else named
    if class_name:
        return next((l.name for l in layers.values() if l.class_name == class_name), None)
    return named
