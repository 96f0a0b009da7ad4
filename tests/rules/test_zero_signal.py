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


# --- review 9, F8: output by output, against float32 resolution and the output's int8 step ---


def _out(name: str, spread: float | None, step: float | None, levels: int | None, ac: float | None,
         sqnr: float = 79.4) -> OutputFidelity:
    return OutputFidelity(name, sqnr, 0.2, None, spread, step, ac, levels)


def test_a_constant_offset_does_not_hide_a_constant_int8_output():
    """Dense(1), kernel 0.05, bias 1000: float 1000 ± 0.055 (900 float32 ulps), int8 step 3.92,
    one int8 value for every sample; SQNR 79.4 dB, of the varying part −5.8 dB."""
    fid = Fidelity(32, True, 79.4, 0.2, None, [_out("head", 0.0, 3.92, 1, -5.8)], sqnr_ac_db=-5.8)
    (v,) = ZeroSignal().judge(fid, _stats(0.055, peak=1000.1, name="head"), True, [])
    assert v.severity == Severity.BLOCKER
    assert "'head': float spread 0.055, int8 step 3.92, 1 int8 value per element" in v.message
    assert "varying-part SQNR -5.8 dB" in v.message and "the float model gives the same" not in v.message


def test_only_the_constant_head_of_two_is_named():
    fid = Fidelity(32, True, 79.4, 0.2, 1.0, [_out("good", 0.55, 0.0079, 30, 43.2, 43.3),
                                              _out("flat", 0.0, 3.92, 1, -5.8)])
    stats = _stats(0.55, peak=1.5, name="good") + _stats(0.055, peak=1000.1, name="flat")
    (v,) = ZeroSignal().judge(fid, stats, True, [])
    assert v.severity == Severity.BLOCKER and "'flat'" in v.message and "'good'" not in v.message


def test_two_int8_levels_of_a_float_output_under_half_a_step_are_no_ptq_finding():
    """tiny_cnn_k3's untrained softmax: float spread 0.0008, step 1/256, two int8 values, varying
    part -4.3 dB. Against the float model that is left to the reported numbers, not QF408."""
    fid = Fidelity(8, True, 48.3, 0.0018, 1.0, [_out("dense", 0.00195, 1 / 256, 2, -4.3, 48.3)])
    assert list(ZeroSignal().judge(fid, _stats(0.0008, peak=0.6, name="dense"), True, [])) == []


def test_int8_keeping_under_a_tenth_of_the_float_spread_is_a_blocker():
    fid = Fidelity(32, True, 60.0, 0.2, None, [_out("head", 0.004, 0.01, 5, 1.0)])
    (v,) = ZeroSignal().judge(fid, _stats(0.05, peak=10.0, name="head"), True, [])
    assert v.severity == Severity.BLOCKER


def test_float_variation_at_float32_resolution_or_under_1_256_of_a_step_is_constant():
    # 2 ulps at 1000 (1.2e-4): the float output is constant to float32 resolution
    fid = Fidelity(32, True, 79.4, 0.2, None, [_out("head", 0.0, 3.92, 1, -60.0)])
    (v,) = ZeroSignal().judge(fid, _stats(1.2e-4, peak=1000.0, name="head"), True, [])
    assert v.severity == Severity.WARNING and "the float model gives the same output" in v.message
    # a softmax at 0.001 ± 1e-7 (far above float32 resolution there) under a 1/256 step
    fid = Fidelity(32, True, 0.0, 0.001, None, [_out("probs", 0.0, 1 / 256, 1, -60.0, 0.0)])
    (v,) = ZeroSignal().judge(fid, _stats(1e-7, peak=0.001, name="probs"), True, [])
    assert v.severity == Severity.BLOCKER and "the float model gives the same output" in v.message


def test_a_varying_output_whose_int8_tracks_it_is_not_flagged():
    fid = Fidelity(32, True, 43.0, 0.007, 1.0, [_out("good", 0.55, 0.0079, 30, 43.2, 43.3)])
    assert list(ZeroSignal().judge(fid, _stats(0.55, peak=1.5, name="good"), True, [])) == []


def test_per_output_numbers_are_in_the_json():
    from qfix.jobs.prove import _output_json

    j = _output_json(_out("head", 0.0, 3.92, 1, -math.inf, math.inf), [{"name": "head", "layer": "dense"}])
    assert j == {"name": "head", "layer": "dense", "sqnr_db": None, "sqnr_ac_db": None, "max_abs_error": 0.2,
                 "top1_agreement": None, "quantized_spread": 0.0, "quantized_levels": 1, "output_step": 3.92}
    assert json.loads(json.dumps(Fidelity(2, True, 1.0, 0.0, None, sqnr_ac_db=-math.inf).to_json()))["sqnr_ac_db"] is None


def test_levels_counts_the_most_distinct_values_of_any_element():
    import numpy as np

    from qfix.convert.fidelity import _levels

    q = np.array([[1000.1, 0.0], [1000.1, 0.5], [1000.1, 0.25], [1000.1, 0.5]])
    assert _levels(q) == 3 and _levels(q[:, :1]) == 1 and _levels(q[:1]) is None


def test_the_text_report_shows_the_varying_part_when_an_offset_inflates_the_sqnr():
    from rich.console import Console

    from qfix.report.text import _render_varying, _worst_varying

    fid = Fidelity(32, True, 79.4, 0.2, 1.0, [_out("good", 0.55, 0.0079, 30, 43.2, 43.3),
                                              _out("flat", 0.0, 3.92, 1, -5.8)])
    console = Console(record=True, width=200)
    _render_varying(fid, console)
    text = console.export_text()
    assert "SQNR of the varying part" in text and "flat -5.8 dB" in text and "good" not in text
    assert _worst_varying(fid) == "; flat, varying part: -5.8 dB"
    assert _worst_varying(Fidelity(32, True, 43.3, 0.0, 1.0, [_out("good", 0.55, 0.0079, 30, 43.2, 43.3)])) == ""


def test_a_success_names_the_output_whose_varying_part_is_weak():
    """README: the last line names the worst such output, also when the run succeeds (exit 0:
    a softmax head keeping 12.8 dB of its variation is not QF408's blocker)."""
    from types import SimpleNamespace

    from rich.console import Console

    from qfix.report.text import render_verdict

    def last_line(fid):
        result = SimpleNamespace(profile=SimpleNamespace(name="Coral Edge TPU", toolchain={}),
                                 exit_code=lambda: 0, verification=SimpleNamespace(fidelity=fid))
        console = Console(record=True, width=200)
        render_verdict(result, console)
        return console.export_text().strip()

    weak = Fidelity(32, True, 40.0, 0.01, 1.0, [_out("emb", 0.5, 0.01, 60, 24.3, 40.0),
                                                _out("cls", 0.1, 0.004, 9, 12.8, 48.9)])
    assert last_line(weak) == "runs fully on Coral Edge TPU; cls, varying part: 12.8 dB"
    fine = Fidelity(32, True, 43.3, 0.0, 1.0, [_out("good", 0.55, 0.0079, 30, 43.2, 43.3)])
    assert last_line(fine) == "runs fully on Coral Edge TPU"
    # an offset above a varying part that keeps plenty (66.7 dB under 72.8): nothing to say
    offset = Fidelity(32, True, 72.8, 0.1, 1.0, [_out("out", 0.5, 0.004, 60, 66.7, 72.8)])
    assert last_line(offset) == "runs fully on Coral Edge TPU"


def test_the_reports_floor_is_qf408s():
    from qfix.report.text import SIGNAL_DB
    from qfix.rules.zero_signal import MIN_SQNR_DB

    assert SIGNAL_DB == MIN_SQNR_DB
