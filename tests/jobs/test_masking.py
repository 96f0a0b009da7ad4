"""A Masking layer on the Edge TPU (review of issue 9, fault kind 4: ops charged to no layer).

Keras 3 computes a Masking's mask outside the layer's name scope (`functional_1/NotEqual`), and
the converter keeps that NOT_EQUAL in float, behind a DEQUANTIZE of the model input named
`tfl.dequantize`: the cut was charged to no Keras layer and nothing said what to do. Now QF303
names the Masking statically (Coral's table has no NOT_EQUAL, REDUCE_ANY, SELECT_V2 or CAST)
with advice that fits a layer that cannot move, and the verification charges the float island
to the Masking, in both dialects (tf_keras multiplies by a CAST of the mask instead of
selecting)."""

from __future__ import annotations

import json
import os

import pytest

from fixtures.build import save_all
from tests.jobs.test_isolation import leftovers, qfix

pytestmark = pytest.mark.tf


def _masked_dense(K):  # per time step: Dense ignores the mask, the Masking's ops stay
    x = K.Input((5, 16))
    return K.Model(x, K.layers.Dense(2)(K.layers.Masking(name="masking")(x)))


def _masked_lstm(K):  # the RNN a Masking is written for (unroll=True: QF305's fix, given)
    x = K.Input((5, 16))
    return K.Model(x, K.layers.Dense(2)(K.layers.LSTM(4, unroll=True)(K.layers.Masking(name="masking")(x))))


MODELS = {"k3_dense": ("k3", _masked_dense), "tfk_dense": ("tfk", _masked_dense),
          "tfk_lstm": ("tfk", _masked_lstm)}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    models = save_all(tmp_path_factory.mktemp("masking"), MODELS)
    tmp = tmp_path_factory.mktemp("runs")
    out = {}
    for name, path in models.items():
        proc = qfix(str(path), "--samples", "4", "--format", "json", "--out-dir", str(tmp / name), tmp=tmp)
        assert proc.stderr == "", proc.stderr
        out[name] = (proc.returncode, json.loads(proc.stdout))
    assert leftovers(tmp) == []
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_masking_is_named_with_advice_that_fits_it(reports, name):
    code, report = reports[name]
    qf303 = [f for f in report["findings"] if f["code"] == "QF303" and f["layer"] == "masking"]
    assert code == 1 and len(qf303) == 1, report["findings"]
    assert "NOT_EQUAL" in qf303[0]["message"] and "REDUCE_ANY" in qf303[0]["message"]
    assert "drop the Masking layer" in qf303[0]["fix"]["description"] and "end of the model" not in qf303[0]["fix"]["description"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_cut_is_charged_to_the_masking(reports, name):
    """The first unsupported op (the DEQUANTIZE opening the float island, or the NOT_EQUAL) and
    the float island finding name the Masking, not "no Keras layer"."""
    _, report = reports[name]
    ver = report["verification"]
    assert ver["first_unsupported"]["layer"] == "masking", ver["first_unsupported"]
    islands = [f for f in report["findings"] if f["code"] in ("QF304", "QF405")]
    assert islands and all(f["layer"] == "masking" for f in islands), islands
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5


# --- the padding itself (QF411): synthetic samples end in masked steps ---------------------


def _gru_masked_at(value):
    def build(K):
        x = K.Input((5, 16))
        h = K.layers.GRU(8, unroll=True)(K.layers.Masking(mask_value=value, name="masking")(x))
        return K.Model(x, K.layers.Dense(2)(h))
    return build


def _sequential_lstm_masked_at_minus_one(K):
    return K.Sequential([K.layers.Masking(mask_value=-1.0, input_shape=(5, 16), name="masking"),
                         K.layers.LSTM(4, unroll=True), K.layers.Dense(2)])


def _nested_masking_at_minus_one(K):  # the Masking inside a nested Sequential
    inner = K.Sequential([K.Input((5, 16)), K.layers.Masking(mask_value=-1.0, name="masking"),
                          K.layers.GRU(8, unroll=True)], name="inner")
    x = K.Input((5, 16))
    return K.Model(x, K.layers.Dense(2)(inner(x)))


def _rescaled_then_masked(K):  # the input value 0.5 becomes the mask value 0.25
    x = K.Input((5, 16))
    h = K.layers.Masking(mask_value=0.25, name="masking")(K.layers.Rescaling(0.5)(x))
    return K.Model(x, K.layers.Dense(2)(K.layers.GRU(8, unroll=True)(h)))


PADDED = {"k3_gru_minus1": ("k3", _gru_masked_at(-1.0)), "k3_gru_zero": ("k3", _gru_masked_at(0.0)),
          "tfk_seq_lstm_minus1": ("tfk", _sequential_lstm_masked_at_minus_one),
          "k3_nested_minus1": ("k3", _nested_masking_at_minus_one), "k3_rescaled": ("k3", _rescaled_then_masked)}
# the input value padded samples end in, and what the Masking's mask value comes back as on the int8 grid
OFF_GRID = {"k3_gru_minus1": ("-1", "-1 into -1.00"), "tfk_seq_lstm_minus1": ("-1", "-1 into -1.00"),
            "k3_nested_minus1": ("-1", "-1 into -1.00"), "k3_rescaled": ("0.5", "0.25 into 0.25")}


@pytest.fixture(scope="module")
def padded_reports(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    models = save_all(tmp_path_factory.mktemp("padded"), PADDED)
    out = {}
    for name, path in models.items():
        proc = qfix(str(path), "--check", "--target", "int8", "--samples", "8", "--format", "json",
                    tmp=tmp_path_factory.mktemp("runs"))
        assert proc.stderr == "", proc.stderr
        out[name] = (proc.returncode, json.loads(proc.stdout))
    return out


@pytest.mark.parametrize("name", sorted(OFF_GRID))
def test_a_mask_value_the_quantized_input_cannot_hold_is_a_blocker_on_the_masking(padded_reports, name):
    """Review of issue 9: the verification never fed padded steps (0.021 reported, 0.25 real on
    zero-padded sequences). Now half the synthetic samples end in padding; mask_value -1 on an int8
    input (scale about 2/255) comes back as -1.0033, the float NOT_EQUAL never matches, and the
    padded steps are read as data: QF411 names the Masking, in both dialects, Sequential too, and
    (second review) inside a nested model or after a Rescaling, where the padding is the input
    value the Rescaling maps onto the mask value."""
    code, report = padded_reports[name]
    (qf411,) = [f for f in report["findings"] if f["code"] == "QF411"]
    assert code == 1 and qf411["layer"] == "masking" and qf411["severity"] == "blocker"
    padding, back = OFF_GRID[name]
    assert f"turns {back}" in qf411["message"]
    assert f"padded with {padding} at its end" in report["verification"]["fidelity"]["calibration"]
    assert report["verification"]["fidelity"]["sqnr_db"] < 13.8  # the numbers show it too (QF408)


def test_a_mask_value_at_the_zero_point_is_held_and_its_padding_verified(padded_reports):
    code, report = padded_reports["k3_gru_zero"]
    assert not [f for f in report["findings"] if f["code"] in ("QF411", "QF408")]
    assert "padded with 0" in report["verification"]["fidelity"]["calibration"]
    assert report["verification"]["fidelity"]["sqnr_db"] > 25


def test_select_and_ignore_apply_to_the_verification_findings(tmp_path):
    """Second review of issue 9: `--ignore QF411` (or `zero-signal`, `QF304`) left the verify
    rules' findings in place; they are rules like the others (`qfix rules`)."""
    (path,) = save_all(tmp_path, {"m": PADDED["k3_gru_minus1"]}).values()

    def codes(*flags):
        proc = qfix(str(path), "--check", "--target", "int8", "--samples", "4", "--format", "json", *flags,
                    tmp=tmp_path)
        assert proc.stderr == "", proc.stderr
        return {f["code"] for f in json.loads(proc.stdout)["findings"]}

    assert {"QF408", "QF411", "QF405"} <= codes()
    ignored = codes("--ignore", "QF411,zero-signal")
    assert "QF411" not in ignored and "QF408" not in ignored and "QF405" in ignored
    assert codes("--select", "QF411") == {"QF411"}
