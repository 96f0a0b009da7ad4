"""QF506 qat-float-layer: a layer that stays float in the QAT model (--mode qat, verify).

## What it does
After tfmot's `quantize_model` succeeded on the model, lists each layer it left without a
quantizer: not annotated at all, or annotated with a QuantizeConfig that quantizes nothing
(a NoOp config). Layers without arithmetic (Reshape, Flatten, MaxPooling2D, Dropout, ...),
which carry the int8 tensor they receive, and Conv/Dense layers fused with the ReLU after
them are not reported.

## Why is this bad?
Quantization-aware training learns nothing about such a layer's int8 range: the converter
either keeps it float (DEQUANTIZE → float op → QUANTIZE around it, off an integer
accelerator) or quantizes it after training with ranges the training never saw.

## Example
A `Multiply` in a squeeze-and-excitation block annotated with a NoOp QuantizeConfig so that
`quantize_model` accepts it.

## Use instead
A layer tfmot's registry quantizes, or a QuantizeConfig that quantizes the layer's output
(an output-only config); keep deliberately float layers at the model's edge.

## Fix safety
Display-only: which quantizer a layer needs is a modelling decision.

## Targets
Every target, with `--mode qat`; the converted QAT model's op-by-op check says whether the
layer actually left the target.
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.rules.base import VerifyRule
from qfix.types import Severity, Violation


class QatFloatLayer(VerifyRule):
    """QF506 qat-float-layer; documented once, in the module docstring (`qfix rule QF506`).
    Judges the tfmot trial (qfix.convert.qat.QatTrial), not the placement."""

    code = "QF506"
    name = "qat-float-layer"

    def check(self, placement: Any, profile: Any) -> Iterable[Violation]:
        return ()  # judged from the tfmot trial: see `from_trial`

    def from_trial(self, trial: Any) -> list[Violation]:
        """One warning per layer tfmot left float (LayerQuant.state "float")."""
        return [self.violation(f"layer {lq.name!r} ({lq.class_name}) stays float in the QAT model: {lq.detail}",
                               lq.name, Severity.WARNING)
                for lq in trial.layers if lq.state == "float"]
