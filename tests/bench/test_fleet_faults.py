"""The fleet's expectations (bench/fleet.py `faults`): what counts as a crash, an unloadable
file, and a lost int8 signal, judged on rows shaped as the fleet writes them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def fleet():
    sys.path.insert(0, str(BENCH))  # fleet.py imports its sibling _common
    try:
        spec = importlib.util.spec_from_file_location("fleet", BENCH / "fleet.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def _job(exit=0, sqnr=30.0, blockers=(), warnings=(), error=None, fully=True):
    after = {"converted": True, "ops_total": 10, "ops_on_target": 10 if fully else 9,
             "fully_on_target": fully, "first_unsupported": None if fully else {"layer": "c", "reason": "r"},
             "float_tensors": 0, "sqnr_db": sqnr, "warnings": []}
    return {"exit": exit, "seconds": 1.0, "error": error, "after": after,
            "blockers": list(blockers), "warnings": list(warnings)}


def _row(check, main, plain=None):
    plain = plain or {"exit": 0, "seconds": 1.0, "error": None, "ops_total": 10, "ops_on_target": 10,
                      "fully_on_target": True, "first_unsupported": None}
    return {"arch": "A", "dialect": "keras3", "target": "int8", "plain": plain, "check": check, "main": main}


def test_a_healthy_row_has_no_fault(fleet):
    assert fleet.faults(_row(_job(), _job())) == []


def test_a_low_sqnr_qfix_reports_as_qf408_is_no_fault(fleet):
    # EfficientNetV2L (Keras 3, weights=None): SQNR -2.4 dB, QF408 blocker, exit 1
    job = _job(exit=1, sqnr=-2.4, blockers=["QF408 None"])
    assert fleet.faults(_row(job, job)) == []


def test_a_low_sqnr_qfix_is_silent_about_is_a_fault(fleet):
    job = _job(exit=0, sqnr=12.8)  # below QF408's 13.8 dB, nothing said
    assert fleet.faults(_row(job, job)) == [
        "check: int8 SQNR 12.8 dB (< 13.8) without QF408", "main: int8 SQNR 12.8 dB (< 13.8) without QF408"]


def test_qf408_as_a_warning_counts_as_reported(fleet):
    job = _job(exit=0, sqnr=0.0, warnings=["QF408"])  # the float outputs do not vary
    assert fleet.faults(_row(job, job)) == []


def test_a_file_its_own_keras_cannot_load_is_unloadable_not_a_crash(fleet):
    err = "QF906 convnexttiny_32_tfk.keras: tf_keras cannot load this model: 'str' object is not callable"
    job = {"exit": 2, "seconds": 1.0, "error": err}
    row = _row(job, job, plain={"exit": 1, "seconds": 1.0, "error": "QF909 ..."})
    found = fleet.faults(row)
    assert found == [f"check unloadable: {err}", f"main unloadable: {err}"]
    row["faults"] = found
    (group,) = fleet.groups([row])
    assert (group["crashes"], group["unloadable"]) == (0, 1)


@pytest.mark.parametrize("exit, error", [(-11, None), (139, None), ("timeout", "timed out after 1800s"),
                                         (2, "QF909 int8 conversion crashed (signal 11)"),
                                         (2, "QF907 no such file")])
def test_crashes(fleet, exit, error):
    job = {"exit": exit, "seconds": 1.0, "error": error}
    found = fleet.faults(_row(job, _job()))
    assert len(found) == 1 and found[0].startswith("check crash: ")
