"""QF408 zero-signal: the int8 model's outputs carry no signal (verify).

## What it does
Compares the quantized model's outputs with the float model's on the calibration samples
(the fidelity check) and fires when the int8 outputs carry less than 2 effective bits:
SQNR below 13.8 dB. The threshold is the effective-number-of-bits relation of IEEE Std
1241 (ADC testing), ENOB = (SQNR − 1.76 dB) / 6.02 dB: 2 bits ↔ 13.8 dB. At 0 dB the
output's own energy equals the error's, as if the model answered zeros. That is a blocker:
the run is not a success, whatever the placement.

It is judged output by output. An output's float values "vary" when their spread across
samples (the largest standard deviation of any one element) exceeds both 64 float32 ulps of
the output's size (64 · 2^-23 relative: what float arithmetic alone makes of a constant) and
1/256 of the output's int8 step (what even a 16-bit output over the same range would not
resolve).

It fires, as a warning, when no float output varies: the model does not depend on its input,
so a good SQNR proves nothing about the quantization. The message names the likely cause.

It fires as a blocker, naming each output, when an output's float values vary but the
quantized model's cannot follow: its (dequantized) outputs take one value for every sample,
or keep under a tenth of the float spread — or, only for a QAT model, which the `.tflite` is compared
with, the float output's spread is under half an int8 step of the `.tflite` output (its scale).
The SQNR over all outputs cannot show this when an output carries a constant offset: a Dense(1)
with kernel 0.05 and bias 1000 varies by 0.055 around 1000, its int8 step is 3.92, every sample
rounds to 1000.1062, and the SQNR reads 79.4 dB (the offset's energy against a 0.1 error)
while the varying part's — the float output less its mean over the samples, against the same
error — is −5.8 dB. The fidelity reports both, per output (`sqnr_db`, `sqnr_ac_db`) and over
all outputs. Against a QAT model the SQNR can still read as infinite or 160 dB (the QAT model
rounds the same way) and its top-1 as 100 %. A QAT model trained one step does this when its
outputs are small next to tfmot's initial ±6 output ranges (step 12/255 ≈ 0.047): there it is
a warning (qfix.jobs.qat.one_step_ranges), since training sets the ranges.

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
stay untrained (a benchmark), read the SQNR as "no signal", not as a quantization error. For
an output that is a large constant plus a small signal, output the signal and add the
constant after the int8 model (or normalise the target so it is centred).

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
# A float output "varies" when its spread across samples exceeds both 64 float32 ulps of its
# size (what float arithmetic alone can make of a constant: 2^-23 relative per ulp) and 1/256 of
# its int8 step (what a 16-bit output over the same range would no longer resolve). Below
# either, the float model gives the same output for every sample.
FLOAT_ULPS = 64
EPS32 = 2.0 ** -23
SUB_STEP = 1 / 256
LOST = 0.1  # int8 outputs keeping under a tenth of the float outputs' spread lost the signal


class ZeroSignal(VerifyRule):
    """Converted-model side of QF408 zero-signal; documented once, in the module docstring
    (`qfix rule QF408`). Judged on the numbers (qfix.jobs.numbers), not on the placement,
    output by output."""

    code = "QF408"
    name = "zero-signal"

    def check(self, placement, profile) -> Iterable[Violation]:
        return ()  # needs the numbers: see judge()

    def judge(self, fidelity: Any, stats: list[dict[str, Any]], synthetic: bool,
              activations: list[str], coarse: bool = False) -> Iterable[Violation]:
        """`fidelity`: qfix.convert.fidelity.Fidelity; `stats`: output_stats of the float model
        on the same samples; `activations`: the model's activation names (for the cause);
        `coarse`: also flag float outputs varying under half an int8 step (when the fidelity's
        reference is a QAT model, whose SQNR cannot show it; against the float model the
        varying part's SQNR does, see _dead_outputs)."""
        if fidelity is None:
            return
        pairs = _pairs(fidelity, stats)
        steps = {id(s): o.output_step for o, s in pairs}
        flat = [s for s in stats if not _varies(s, steps.get(id(s)))]
        constant = bool(stats) and len(flat) == len(stats)
        low = fidelity.sqnr_db < MIN_SQNR_DB
        dead = [] if constant else _dead_outputs(pairs, coarse)
        if dead:
            yield self.violation(
                f"int8 outputs carry no usable signal: the quantized model gives (nearly) the same output for "
                f"every sample while the float outputs vary ({'; '.join(dead[:3])}; a float spread under half "
                f"an int8 step rounds to two levels at most), whatever the SQNR ({fidelity.sqnr_db:.1f} dB) "
                "says; likely cause: output ranges far wider than the outputs' variation (a large constant "
                "offset such as a bias, or ranges not yet trained) — output the varying part and add the "
                "offset after the int8 model",
                None,
            )
            return
        if not low and not constant:
            return
        if constant:
            cause = (f"the float model gives the same output for every sample ({_outputs(flat)}; its spread "
                     "within float32 resolution or 1/256 of an int8 step): it does "
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


def _pairs(fidelity: Any, stats: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """Each output's fidelity with its float stats: by name, else by position (tfmot's QAT model
    renames its output layers `quant_<name>`)."""
    outs = fidelity.per_output
    by_name = {s["name"]: s for s in stats}
    return ([(o, by_name[o.name]) for o in outs] if all(o.name in by_name for o in outs)
            else list(zip(outs, stats)) if len(outs) == len(stats) else [])


def _varies(s: dict[str, Any], step: float | None) -> bool:
    """The float output varies from sample to sample by more than float32 resolution at its size
    and more than 1/256 of its int8 step (`step`, when known)."""
    floor = max(FLOAT_ULPS * EPS32 * s["peak"], SUB_STEP * step if step else 0.0)
    return s["samples"] > 1 and s["spread"] > floor


def _dead_outputs(pairs: list[tuple[Any, dict[str, Any]]], coarse: bool) -> list[str]:
    """Outputs whose float values vary across samples while the quantized ones cannot follow:
    the quantized output takes one value for every sample, or keeps under a tenth of the float
    spread, or — `coarse` — the float output's spread is under half an int8 step of the .tflite
    output. Two int8 values flipping with a float output that varies under half a step are not
    flagged against the float model (an untrained softmax does this: tiny_cnn_k3, float spread
    0.0008, step 1/256, varying part −4.3 dB); the report shows their varying-part SQNR."""
    dead = []
    for o, s in pairs:
        if not _varies(s, o.output_step):
            continue  # the float output is constant itself: the other branch
        q = o.quantized_spread
        levels = getattr(o, "quantized_levels", None)
        ac = getattr(o, "sqnr_ac_db", None)
        frozen = levels == 1 or (q is not None and q <= FLOAT_ULPS * EPS32 * s["peak"])
        lost = q is not None and q < LOST * s["spread"]
        under_step = coarse and o.output_step is not None and s["spread"] < o.output_step / 2
        if frozen or lost or under_step:
            what = (f"{o.name!r}: float spread {s['spread']:.3g}, int8 step {o.output_step:.3g}"
                    if o.output_step else repr(o.name))
            if levels is not None:
                what += f", {levels} int8 value{'s' if levels != 1 else ''} per element"
            if ac is not None and not coarse:
                what += f", varying-part SQNR {ac:.1f} dB"
            dead.append(what)
    return dead


def _outputs(flat: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s['name']!r} = {s['peak']:.3g}" for s in flat[:3])
