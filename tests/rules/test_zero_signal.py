"""QF408 on the numbers alone (no TensorFlow): quantized outputs that are the same for every
sample while the float outputs vary are no signal, whatever the SQNR reads (review of issue 10:
tk_hub's QAT model answered 0 for every sample, SQNR inf, top-1 100 %, exit 0)."""

from __future__ import annotations

import json
import math

from qfix.convert.fidelity import Fidelity, OutputFidelity
from qfix.jobs.prove import _finite
from qfix.jobs.qat import one_step_ranges
from qfix.rules.zero_signal import ZeroSignal
from qfix.types import Severity


def _fid(sqnr: float, spread: float | None, name: str = "dense", step: float | None = None) -> Fidelity:
    return Fidelity(32, True, sqnr, 0.0, 1.0, [OutputFidelity(name, sqnr, 0.0, 1.0, spread, step)])


def _stats(spread: float, peak: float = 0.02, name: str = "dense") -> list[dict]:
    return [{"name": name, "peak": peak, "spread": spread, "samples": 32}]


def test_constant_quantized_outputs_of_a_varying_float_model_are_a_blocker():
    (v,) = ZeroSignal().judge(_fid(math.inf, 0.0), _stats(0.005), True, [])
    assert v.severity == Severity.BLOCKER
    assert "same output for every sample" in v.message and "'dense'" in v.message


def test_paired_by_position_when_tfmot_renamed_the_output():
    (v,) = ZeroSignal().judge(_fid(162.0, 0.0, "quant_dense"), _stats(0.005), True, [])
    assert "'quant_dense'" in v.message


def test_quantized_outputs_that_vary_are_not_flagged():
    assert list(ZeroSignal().judge(_fid(40.0, 0.004), _stats(0.005), True, [])) == []
    assert list(ZeroSignal().judge(_fid(40.0, 0.004, step=0.0008), _stats(0.005), True, [])) == []


def test_float_outputs_varying_less_than_half_an_int8_step_are_a_blocker():
    """The reviewer's tk_hub: float spread 0.017 under tfmot's ±6 output range (step 12/255):
    the .tflite flips between two levels, and agrees with the QAT model to 162 dB."""
    fid, stats = _fid(162.1, 0.031, step=12 / 255), _stats(0.017, peak=0.23)
    # against the float model (PTQ) the SQNR would show it: a small spread alone is no finding
    assert list(ZeroSignal().judge(fid, stats, True, [])) == []
    (v,) = ZeroSignal().judge(fid, stats, True, [], coarse=True)
    assert v.severity == Severity.BLOCKER
    assert "'dense': float spread 0.017, int8 step 0.0471" in v.message and "162.1 dB" in v.message


def test_a_constant_float_model_keeps_its_own_warning():
    (v,) = ZeroSignal().judge(_fid(math.inf, 0.0), _stats(0.0), True, [])
    assert v.severity == Severity.WARNING and "the float model gives the same output" in v.message


def test_on_a_qat_model_trained_one_step_it_is_a_warning_that_says_what_to_do():
    findings = list(ZeroSignal().judge(_fid(math.inf, 0.0), _stats(0.005), True, []))
    one_step_ranges(findings)
    (v,) = findings
    assert v.severity == Severity.WARNING
    assert "initial quantizer ranges, ±6" in v.message and "train on representative data" in v.message


def test_an_infinite_sqnr_is_null_in_json():
    assert _finite(math.inf) is None and _finite(math.nan) is None and _finite(12.5) == 12.5
    assert json.loads(json.dumps(_fid(math.inf, 0.0).to_json()))["sqnr_db"] is None
