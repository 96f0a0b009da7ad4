"""The GPU delegate profile (gpu.toml) and the predicates its checks need, on hand-built float
flatbuffers (fast, no TensorFlow): float16 weights through DEQUANTIZE, CPU fallback one op at
a time, the delegate's one-partition default."""

from __future__ import annotations

import numpy as np
import pytest

from qfix.targets import load_profile
from qfix.targets.check import PREDICATES, check, partitions
from qfix.targets.tflite import read_tflite

from tflite_models import build_tflite

GPU = load_profile("gpu")
FALLBACK = "falls back to the CPU"


def float_chain(*middle: dict, fp16_weights: bool = True, extra: list[dict] = ()) -> bytes:
    """input -> CONV_2D (float16 weights through DEQUANTIZE, as the float16 recipe writes
    them) -> each `middle` op {"op", "options"?, "out_shape"?} -> output; float32 activations."""
    tensors = [{"name": "serving_default_x:0", "shape": (1, 4, 4, 3), "dtype": "float32"},
               {"name": "model/conv/w16", "shape": (4, 3, 3, 3), "dtype": "float16" if fp16_weights else "float32",
                "data": np.ones((4, 3, 3, 3), np.float16 if fp16_weights else np.float32)},
               {"name": "model/conv/b", "shape": (4,), "dtype": "float32", "data": np.zeros(4, np.float32)},
               {"name": "model/conv/Relu", "shape": (1, 4, 4, 4), "dtype": "float32"}]
    ops = []
    weights = 1
    if fp16_weights:
        tensors.append({"name": "model/conv/w", "shape": (4, 3, 3, 3), "dtype": "float32"})
        ops.append({"op": "DEQUANTIZE", "in": [1], "out": [4]})
        weights = 4
    ops.append({"op": "CONV_2D", "in": [0, weights, 2], "out": [3],
                "options": ("Conv2DOptions", {"strideH": 1, "strideW": 1, "dilationHFactor": 1, "dilationWFactor": 1,
                                              "fusedActivationFunction": 1})})
    last = 3
    for i, spec in enumerate(middle):
        tensors.append({"name": f"model/op{i}/out", "shape": spec.get("out_shape", (1, 4, 4, 4)),
                        "dtype": spec.get("dtype", "float32")})
        op = {"op": spec["op"], "in": [last, *spec.get("more_in", [])], "out": [len(tensors) - 1]}
        if "options" in spec:
            op["options"] = spec["options"]
        ops.append(op)
        last = len(tensors) - 1
    tensors.extend(extra)
    return build_tflite(tensors, ops, [0], [last])


def test_the_gpu_profile():
    assert (GPU.placement, GPU.recipe.quantization, GPU.recipe.io_dtype, GPU.batch) == ("islands", "float16", "float32", 1)
    assert not GPU.integer and GPU.max_rank == 4 and GPU.max_delegated_partitions == 1
    assert GPU.supports("HARD_SWISH") and GPU.supports("GELU") and not GPU.supports("ARG_MAX")
    assert not GPU.supports("UNIDIRECTIONAL_SEQUENCE_LSTM") and not GPU.supports("LOG_SOFTMAX")
    assert GPU.toolchain["note"].startswith("no GPU here")


def test_float16_weights_through_dequantize_run_on_the_gpu():
    """The DEQUANTIZE of a float16 constant counts as a constant input: CONV_2D has one runtime
    input, as the delegate sees it once it folds the DEQUANTIZE (FP16GraphPartitionHelper)."""
    p = check(read_tflite(float_chain({"op": "TANH"})), GPU)
    assert p.fully_on_target and p.ops_on_target == p.ops_total == 3
    assert p.float_tensors == [] and p.fallback == [] and p.warnings == []


def test_an_op_the_delegate_lacks_falls_back_to_the_cpu_alone():
    m = read_tflite(float_chain({"op": "TANH"}, {"op": "LOG_SOFTMAX"}, {"op": "RELU"}))
    p = check(m, GPU)
    assert [(f["op"], f["status"]) for f in p.fallback] == [("LOG_SOFTMAX", FALLBACK)]
    assert [o.on_target for o in p.ops] == [True, True, True, False, True]  # islands: RELU stays
    assert p.first_unsupported["status"] == "Operation is not supported."
    # CONV_2D+TANH and RELU: two partitions, and the default options delegate only the largest.
    assert partitions(m, {o.index for o in p.ops if o.on_target}) == [[0, 1, 2], [4]]
    (w,) = p.warnings
    assert "delegate only the 1 largest (max_delegated_partitions = 1, 3 op(s)), so 1 more op(s) run on the CPU" in w


def test_independent_branches_share_a_partition():
    """TFLite's partitioner takes every ready op of one kind before switching: a CPU op on a
    side branch does not split the GPU ops around it."""
    tensors = [{"name": "x", "shape": (1, 4), "dtype": "float32"}, {"name": "a", "shape": (1, 4), "dtype": "float32"},
               {"name": "b", "shape": (1, 4), "dtype": "float32"}, {"name": "c", "shape": (1, 4), "dtype": "float32"},
               {"name": "d", "shape": (1, 4), "dtype": "float32"}]
    ops = [{"op": "TANH", "in": [0], "out": [1]}, {"op": "LOG_SOFTMAX", "in": [0], "out": [2]},
           {"op": "RELU", "in": [1], "out": [3]}, {"op": "ADD", "in": [3, 2], "out": [4]}]
    m = read_tflite(build_tflite(tensors, ops, [0], [4]))
    assert partitions(m, {0, 2, 3}) == [[0, 2], [3]]


CAST_INT32 = {"op": "CAST", "dtype": "int32"}


@pytest.mark.parametrize("specs,reason", [
    ([{"op": "STRIDED_SLICE", "options": ("StridedSliceOptions", {"shrinkAxisMask": 1}), "out_shape": (4, 4, 4)}],
     "Slice does not support shrink_axis_mask parameter. (shrink_axis_mask=1)"),
    ([{"op": "SOFTMAX", "options": ("SoftmaxOptions", {"beta": 2.0})}], "Softmax.beta != 1 is not supported. (beta=2.0)"),
    ([{"op": "RESHAPE", "out_shape": (1, 2, 2, 2, 8)}], "has rank 5, more than 4"),
    ([CAST_INT32], None),  # float32 -> int32: one of the delegate's CAST cases
    ([{"op": "CAST", "dtype": "bool"}], None),
    ([CAST_INT32, {"op": "CAST", "dtype": "bool"}], "Not supported Cast case"),  # int32 -> bool is not
    ([{"op": "CAST", "dtype": "int64"}], "int64 tensor"),  # the tensor gate comes first
])
def test_the_delegate_s_checks(specs, reason):
    p = check(read_tflite(float_chain(*specs)), GPU)
    spec = specs[-1]
    op = p.ops[-1]
    assert op.op == spec["op"]
    if reason is None:
        assert op.on_target, op.reason
    else:
        assert not op.on_target and reason in op.reason, op.reason
        assert p.fallback[-1]["op"] == spec["op"]


def test_predicates_on_a_hand_built_model():
    m = read_tflite(float_chain({"op": "TANH"}))
    dq, conv, tanh = m.ops
    pred = PREDICATES
    assert pred["runtime_inputs_le"](m, conv, n=1) is None  # x; weights folded; bias constant
    assert pred["const_inputs_le"](m, conv, n=1) == "2 constant input(s)"
    assert pred["input_is_const"](m, conv, input=1) is None and pred["input_not_const"](m, conv, input=0) is None
    assert pred["inputs_count_in"](m, conv, values=[2]) == "3 input(s)"
    assert pred["rank_in"](m, conv, tensor="input0", values=[4]) is None
    assert pred["dim_in"](m, conv, tensor="input0", axis=-1, values=[3]) is None
    assert pred["dim_in"](m, conv, tensor="input0", axis=1, values=[3]) == "input0 shape [1, 4, 4, 3]"
    assert pred["dtype_not_in"](m, dq, tensor="input0", values=["int16"]) is None
    assert pred["dtype_pair_in"](m, dq, pairs=[["float16", "float32"]]) is None
    assert pred["dtype_pair_in"](m, tanh, pairs=[["float16", "float32"]]) == "float32 -> float32"
    assert pred["attrs_not_all"](m, conv, names=["stride_h", "stride_w"]) == "both stride_h and stride_w"
    assert pred["custom_code_in"](m, conv, values=["Resampler"]) == "custom op 'None'"
    # equal ranks, each smaller somewhere: the outer-product MUL the delegate refuses
    assert pred["one_input_covers_other"](m, conv) == "input shapes [1, 4, 4, 3] and [4, 3, 3, 3]"
    assert pred["one_input_covers_other"](m, tanh) is None  # one input: nothing to compare
    assert pred["depth_multiplier_single_channel"](m, conv) is None
