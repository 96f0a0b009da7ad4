"""QF408 output by output (review 9, F8): an output whose int8 value is the same for every sample
while its float value varies is no signal, even when a constant offset makes the SQNR read high.

The reviewer's smallest input: Dense(1) with kernel 0.05 and bias 1000. The float output varies
by about 0.05 (std) around 1000 — some 900 float32 ulps at 1000 (6.1e-5) — but the int8 output's
step is about 3.9 (its range is 0..1000), so every sample rounds to one value. The SQNR over the
whole output reads ~79 dB (the offset's energy against a 0.1 error); of the varying part it is
below 0 dB. Real conversions, tiny models built here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qfix.jobs.check import Options, run_check
from qfix.rules.zero_signal import MIN_SQNR_DB

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = 8


def _offset(a, name="head", kernel=0.05):
    d = a.L.Dense(1, name=name)
    return d, (np.full((4, 1), kernel, "float32"), np.array([1000.0], "float32"))


def _offset_head(a):
    x = a.K.Input((4,), name="x")
    d, w = _offset(a)
    m = a.K.Model(x, d(x))
    d.set_weights(list(w))
    return m


def _offset_two_heads(a):
    x = a.K.Input((4,), name="x")
    good = a.L.Dense(3, name="good")(x)
    d, w = _offset(a, "flat")
    m = a.K.Model(x, [good, d(x)])
    d.set_weights(list(w))
    return m


def _constant_offset(a):
    """The float output itself is the same for every sample: zero kernel, bias 1000."""
    x = a.K.Input((4,), name="x")
    d, w = _offset(a, kernel=0.0)
    m = a.K.Model(x, d(x))
    d.set_weights(list(w))
    return m


def _normal(a):
    x = a.K.Input((4,), name="x")
    return a.K.Model(x, a.L.Dense(3, name="good")(x))


BUILDERS = {"offset_head": _offset_head, "offset_two_heads": _offset_two_heads,
            "constant_offset": _constant_offset, "normal": _normal}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from fixtures.build import saved_on_first_use

    return saved_on_first_use(tmp_path_factory.mktemp("offsets"), BUILDERS)


def _qf408(res):
    return [f for f in res.findings if f.code == "QF408"]


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_constant_int8_output_of_a_varying_float_output_is_a_blocker(dialect, models):
    res = run_check(models("offset_head", dialect), Options(target="int8", samples=SAMPLES))
    fid = res.verification.fidelity
    (out,) = fid.per_output
    assert out.quantized_levels == 1 and out.quantized_spread == 0.0
    assert out.output_step > 1.0  # ~1000/255
    assert fid.sqnr_db > 60  # the offset's energy: the number the reviewer saw (79 dB on 32 samples)
    assert out.sqnr_ac_db < 0 and fid.sqnr_ac_db < 0  # the varying part is lost
    (v,) = _qf408(res)
    assert v.severity.value == "blocker"
    assert "same output for every sample while the float outputs vary" in v.message
    assert "'head'" in v.message and "1 int8 value per element" in v.message
    assert "the float model gives the same output" not in v.message
    assert res.exit_code() == 1


def test_two_heads_flag_the_constant_one_only(models):
    res = run_check(models("offset_two_heads"), Options(target="int8", samples=SAMPLES))
    by_name = {o.name: o for o in res.verification.fidelity.per_output}
    assert by_name["flat"].quantized_levels == 1 and by_name["good"].quantized_levels == SAMPLES
    assert by_name["good"].sqnr_ac_db > MIN_SQNR_DB
    (v,) = _qf408(res)
    assert v.severity.value == "blocker" and "'flat'" in v.message and "'good'" not in v.message
    assert res.exit_code() == 1


def test_a_constant_float_output_keeps_its_own_wording(models):
    res = run_check(models("constant_offset"), Options(target="int8", samples=SAMPLES))
    (v,) = _qf408(res)
    assert v.severity.value == "warning" and "the float model gives the same output" in v.message
    assert "'head' = 1e+03" in v.message
    assert res.exit_code() == 0


def test_a_normal_model_has_no_qf408(models):
    res = run_check(models("normal"), Options(target="int8", samples=SAMPLES))
    assert not _qf408(res)
    (out,) = res.verification.fidelity.per_output
    assert out.sqnr_ac_db > MIN_SQNR_DB and out.quantized_levels == SAMPLES


def test_json_reports_the_blocker_and_the_varying_part(models, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "qfix", str(models("offset_two_heads")), "--target", "int8",
                          "--out-dir", str(tmp_path), "--format", "json"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    report = json.loads(out.stdout)
    assert out.returncode == report["exit_code"] == 1, out.stderr
    fid = report["verification"]["fidelity"]
    assert fid["sqnr_db"] > 60 and fid["sqnr_ac_db"] < fid["sqnr_db"]  # sqnr_db keeps its meaning
    flat = {o["name"]: o for o in fid["per_output"]}["flat"]
    assert flat["quantized_levels"] == 1 and flat["sqnr_ac_db"] < 0 and flat["output_step"] > 1.0
    (v,) = [f for f in report["findings"] if f["code"] == "QF408"]
    assert v["severity"] == "blocker" and "'flat'" in v["message"]
