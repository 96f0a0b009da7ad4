"""QF411's grid arithmetic (no TensorFlow): a value quantized to a tensor's integer grid and
dequantized again. The rule on converted models is tested in tests/jobs/test_masking.py."""

from __future__ import annotations

import numpy as np
import pytest

from qfix.rules.mask_value_off_grid import round_trip

INT8_SCALE = 0.007838174700737  # an int8 input calibrated on -1..1 (measured)


@pytest.mark.parametrize("dtype, zero_point", [("int8", 0), ("uint8", 128)])
def test_minus_one_is_off_the_grid_of_an_input_calibrated_on_minus_one_to_one(dtype, zero_point):
    assert round(round_trip(-1.0, INT8_SCALE, zero_point, dtype), 5) == -1.00329


def test_zero_at_the_zero_point_and_whole_steps_are_held():
    assert round_trip(0.0, INT8_SCALE, 0, "int8") == 0.0
    assert round_trip(0.0, INT8_SCALE, 128, "uint8") == 0.0
    assert round_trip(-1.0, 0.25, 0, "int8") == -1.0  # -4 steps exactly
    step = float(np.float32(64 * INT8_SCALE))
    assert round_trip(step, INT8_SCALE, 0, "int8") == np.float32(step)


def test_values_beyond_the_type_are_clamped():
    assert round_trip(1000.0, INT8_SCALE, 0, "int8") == float(np.float32(127 * INT8_SCALE))
    assert round_trip(-5.0, 0.01, 0, "uint8") == 0.0
    assert round_trip(1e6, 1.0, 0, "int16") == 32767.0
