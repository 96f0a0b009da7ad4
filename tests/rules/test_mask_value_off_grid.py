"""QF411 on the inputs' quantization rows and a Masking model's graph (no TensorFlow): a
mask_value the quantized input cannot hold is named on the Masking; one it holds is not."""

from __future__ import annotations

import pytest

from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.rules.mask_value_off_grid import MaskValueOffGrid


def _graph(mask_value):
    config = functional_config(
        [("seq", (None, 5, 16), "float32")],
        [("masking", "Masking", {"mask_value": mask_value}, ["seq"], "float32", (None, 5, 16)),
         ("gru", "GRU", {"units": 8, "unroll": True}, ["masking"], "float32", (None, 8))],
        ["gru"],
    )
    return build_graph(config, "keras3")


def _row(tflite_dtype="int8", scale=0.007838174700737, zero_point=0):
    return [{"name": "seq", "dtype": "float32", "kind": "float", "tflite_dtype": tflite_dtype, "scale": scale,
             "zero_point": zero_point, "range": [-1.0, 0.999], "levels": 255.0}]


@pytest.mark.parametrize("tflite_dtype, zero_point", [("int8", 0), ("uint8", 128)])
def test_minus_one_off_the_grid_is_named_on_the_masking(tflite_dtype, zero_point):
    (v,) = MaskValueOffGrid().judge(_row(tflite_dtype, zero_point=zero_point), _graph(-1.0), True)
    assert v.location.layer == "masking" and v.code == "QF411"
    assert "turns -1 into -1.00329" in v.message and f"zero point {zero_point}" in v.message


def test_zero_at_the_zero_point_is_held():
    assert list(MaskValueOffGrid().judge(_row(), _graph(0.0), True)) == []
    assert list(MaskValueOffGrid().judge(_row("uint8", zero_point=128), _graph(0.0), True)) == []


def test_a_value_on_the_grid_is_held():
    assert list(MaskValueOffGrid().judge(_row(scale=0.25), _graph(-1.0), True)) == []  # -4 steps exactly


def test_nothing_without_a_float_compare_or_a_quantized_input():
    assert list(MaskValueOffGrid().judge(_row(), _graph(-1.0), False)) == []  # compared on the integer grid
    assert list(MaskValueOffGrid().judge(_row("float32", scale=0.0), _graph(-1.0), True)) == []  # fed as float
