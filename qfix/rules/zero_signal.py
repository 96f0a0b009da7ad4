"""QF408 zero-signal: the int8 model's outputs carry no signal (verify).

## What it does
Compares the quantized model's outputs with the float model's on the calibration samples
(the fidelity check) and fires when the int8 outputs carry less than 2 effective bits:
SQNR below 13.8 dB. The threshold is the effective-number-of-bits relation of IEEE Std
1241 (ADC testing), ENOB = (SQNR − 1.76 dB) / 6.02 dB: 2 bits ↔ 13.8 dB. At 0 dB the
output's own energy equals the error's, as if the model answered zeros. That is a blocker:
the run is not a success, whatever the placement.

It also fires, as a warning, when every float output is the same for every sample (its
spread across samples below 1e-4 of its size, far under the 1/256 steps of an 8-bit output):
the model does not depend on its input, so a good SQNR proves nothing about the quantization.
The message names the likely cause.

It fires as a blocker when the float outputs vary from sample to sample but the quantized
model's cannot follow: its (dequantized) outputs are the same for every sample (their spread
below the same 1e-4 of the float output's peak), or the float output's spread (largest standard
deviation across samples) is under half an int8 step of the `.tflite` output (its scale), so
rounding leaves two levels at most — the latter only for a QAT model, which the `.tflite` is
compared with (against the float model, as in PTQ, the SQNR shows it). Its SQNR against a QAT model can still read as infinite or
160 dB (the QAT model rounds the same way) and its top-1 as 100 %. A QAT model
trained one step does this when its outputs are small next to tfmot's initial ±6 output
ranges (step 12/255 ≈ 0.047): there it is a warning (qfix.jobs.qat.one_step_ranges), since
training sets the ranges.

## Why is this bad?
"Runs fully on the target" is not a success when the numbers that come out are noise: an
untrained model (`weights=None`) whose softmax is a constant 1/1000 quantizes to an all-zero
int8 output (step 1/256), SQNR 0 dB. A saturated activation, a calibration that misses the
real input range, or an activation with a wide range (hard_swish in MobileNetV3) can do the
same with trained weights.

## Example
`keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None)`: every output
is 0.001 for every input, and the int8 model outputs 0.

## Use instead
Verify trained weights with real calibration data (`--calibration`); for a model that must
stay untrained (a benchmark), read the SQNR as "no signal", not as a quantization error.

## Fix safety
Display-only.

## Targets
Every target that quantizes (the fidelity check runs).
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.rules.base import VerifyRule
from qfix.types import Severity, Violation

MIN_SQNR_DB = 1.76 + 6.02 * 2  # 2 effective bits (IEEE Std 1241 ENOB)
CONSTANT = 1e-4  # an output whose spread across samples is below 1e-4 of its peak is constant


class ZeroSignal(VerifyRule):
    """Converted-model side of QF408 zero-signal; documented once, in the module docstring
    (`qfix rule QF408`). Judged on the numbers (qfix.jobs.numbers), not on the placement."""

    code = "QF408"
    name = "zero-signal"

    def check(self, placement, profile) -> Iterable[Violation]:
        return ()  # needs the numbers: see judge()

    def judge(self, fidelity: Any, stats: list[dict[str, Any]], synthetic: bool,
              activations: list[str], coarse: bool = False) -> Iterable[Violation]:
        """`fidelity`: qfix.convert.fidelity.Fidelity; `stats`: output_stats of the float model
        on the same samples; `activations`: the model's activation names (for the cause);
        `coarse`: also flag float outputs varying under half an int8 step (when the fidelity's
        reference is a QAT model, whose SQNR cannot show it; against the float model the SQNR
        does, and a PTQ model whose outputs vary little but track the float ones is fine)."""
        if fidelity is None:
            return
        flat = [s for s in stats if s["samples"] > 1 and s["spread"] <= CONSTANT * max(s["peak"], 1e-30)]
        constant = bool(stats) and len(flat) == len(stats)
        low = fidelity.sqnr_db < MIN_SQNR_DB
        dead = [] if constant else _dead_outputs(fidelity, stats, coarse)
        if dead:
            yield self.violation(
                f"int8 outputs carry no usable signal: the quantized model gives (nearly) the same output for "
                f"every sample while the float outputs vary ({'; '.join(dead[:3])}; a float spread under half "
                f"an int8 step rounds to two levels at most), whatever the SQNR ({fidelity.sqnr_db:.1f} dB) "
                "says; likely cause: output ranges far wider than the outputs",
                None,
            )
            return
        if not low and not constant:
            return
        if constant:
            cause = (f"the float model gives the same output for every sample ({_outputs(flat)}): it does "
                     "not depend on its input — untrained weights (weights=None) or saturated activations")
        elif synthetic:
            cause = ("synthetic calibration data may miss the real input range, or the weights are "
                     "untrained: verify with --calibration on real inputs")
        else:
            cause = "an activation range the int8 grid cannot cover (saturated or very wide activations)"
        if not constant and ("hard_swish" in activations or "hard_silu" in activations):
            cause += "; hard_swish's wide ranges are a known source of int8 error"
        if not constant and ("lstm" in activations or "bidirectional" in activations):
            # Seen in review: a tf_keras Bidirectional(LSTM) at 4.5 dB through the fused kernel,
            # the same model unrolled in Keras 3 (plain int8 ops) at 31 dB.
            cause += ("; the fused integer LSTM kernel (UNIDIRECTIONAL_SEQUENCE_LSTM: 8-bit gates, int16 cell "
                      "state) is a known source of int8 error")
        worst = min(fidelity.per_output, key=lambda o: o.sqnr_db, default=None)
        where = f" (worst output {worst.name!r}: {worst.sqnr_db:.1f} dB)" if worst and len(fidelity.per_output) > 1 else ""
        if low:
            yield self.violation(
                f"int8 outputs carry no usable signal: SQNR {fidelity.sqnr_db:.1f} dB{where}, below "
                f"{MIN_SQNR_DB:.1f} dB (2 effective bits); likely cause: {cause}",
                None,
            )
        else:
            yield self.violation(
                f"the int8 numbers prove little: SQNR {fidelity.sqnr_db:.1f} dB, but {cause}",
                None, Severity.WARNING,
            )


def _dead_outputs(fidelity: Any, stats: list[dict[str, Any]], coarse: bool) -> list[str]:
    """Outputs whose float values vary across samples while the quantized ones cannot follow:
    the quantized output is the same for every sample, or the float output's spread is under
    half an int8 step of the .tflite output (it flips between two levels at most). Paired by
    name, else by position (tfmot's QAT model renames its output layers `quant_<name>`)."""
    outs = fidelity.per_output
    by_name = {s["name"]: s for s in stats}
    pairs = ([(o, by_name[o.name]) for o in outs] if all(o.name in by_name for o in outs)
             else list(zip(outs, stats)) if len(outs) == len(stats) else [])
    dead = []
    for o, s in pairs:
        if s["samples"] < 2 or s["spread"] <= CONSTANT * max(s["peak"], 1e-30):
            continue  # the float output is constant itself: the other branch
        frozen = o.quantized_spread is not None and o.quantized_spread <= CONSTANT * s["peak"]
        under_step = coarse and o.output_step is not None and s["spread"] < o.output_step / 2
        if frozen or under_step:
            dead.append(f"{o.name!r}: float spread {s['spread']:.3g}, int8 step "
                        f"{o.output_step:.3g}" if o.output_step else repr(o.name))
    return dead


def _outputs(flat: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s['name']!r} = {s['peak']:.3g}" for s in flat[:3])
