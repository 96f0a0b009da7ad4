"""QF409 on the inputs' quantization rows alone (no TensorFlow): the advice fits the integer
input's dtype (review of issue 9: an int8 input beside a float one was told Rescaling(1/255))."""

from __future__ import annotations

import pytest

from qfix.rules.coarse_input_scale import CoarseInputScale


def _rows(integer_dtype: str) -> list[dict]:
    return [{"name": "ids", "dtype": integer_dtype, "kind": "integer", "scale": 0.9922, "zero_point": 129,
             "range": [-128.0, 125.0], "levels": 255.0},
            {"name": "feat", "dtype": "float32", "kind": "float", "scale": 0.9922, "zero_point": 129,
             "range": [-0.995, 0.994], "levels": 2.0}]


@pytest.mark.parametrize("dtype, advice", [("uint8", "Rescaling(1/255)"), ("int8", "Rescaling(1/128)"),
                                           ("int16", "Rescaling(1/32768)")])
def test_the_advice_fits_the_integer_dtype(dtype, advice):
    (v,) = CoarseInputScale().judge(_rows(dtype))
    assert v.location.layer == "feat" and f"(e.g. {advice} on the integer input)" in v.message
    assert "'ids'" in v.message


def test_a_bool_input_gets_no_rescaling_advice():
    (v,) = CoarseInputScale().judge(_rows("bool"))
    assert "Rescaling" not in v.message and "own branch" in v.message


def test_a_float_input_with_its_own_steps_is_not_flagged():
    rows = _rows("uint8")
    rows[1]["levels"] = 250.0
    assert list(CoarseInputScale().judge(rows)) == []
