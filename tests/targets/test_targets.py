"""Target profiles, the op-by-op placement check and the edgetpu_compiler wrapper."""

from __future__ import annotations

import json
import tomllib
from importlib import resources

import numpy as np
import pytest

from qfix.targets import available_targets, load_profile
from qfix.targets.check import PREDICATES, check
from qfix.targets.compilers.edgetpu import compare, parse_log, run
from qfix.targets.tflite import read_tflite
from qfix.types import QfixError

from tflite_models import build_tflite, conv_chain, xnnpack_delegated

MAPPED = "Mapped to Edge TPU"
NOT_SUPPORTED = "Operation not supported"
BAD_DTYPE = "Operation is working on an unsupported data type"
HIDDEN = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
AFTER_CUT = "More than one subgraph is not supported"
BAD_RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
BAD_VERSION = "Operation version not supported"
DYNAMIC = ("Attempting to use a delegate that only supports static-sized tensors with a graph that has "
           "dynamic-sized tensors.")


# ---- profiles ------------------------------------------------------------------------------


def test_builtin_profiles():
    assert {"edgetpu", "int8"} <= set(available_targets())
    tpu = load_profile("edgetpu")
    assert (tpu.id, tpu.placement, tpu.batch, tpu.io_dtype) == ("edgetpu", "prefix", 1, "uint8")
    assert tpu.static_shapes and tpu.max_innermost_dims == 3
    assert set(tpu.activation_dtypes) == {"int8", "uint8"}
    assert tpu.supports("CONV_2D") and not tpu.supports("LEAKY_RELU") and not tpu.supports("CUMSUM")
    assert tpu.op("CUMSUM") is None and tpu.op("LEAKY_RELU").fix_hint
    conv = tpu.op("CONV_2D")
    assert conv.max_version == 5 and conv.constraints[0].predicate == "attr_eq"
    assert conv.version_confidence == "V"
    assert tpu.op("TRANSPOSE_CONV").max_version == 3

    cpu = load_profile("int8")
    assert (cpu.placement, cpu.recipe.io_dtype, cpu.static_shapes) == ("islands", "int8", False)
    assert cpu.io_dtype is None  # float model I/O is fine on the CPU: no integer I/O demanded
    assert cpu.supports("CUMSUM") and cpu.op("CUMSUM") is None  # unlisted: reference kernel
    assert cpu.op("SOFTMAX").kernel == "reference"


@pytest.mark.parametrize("target", available_targets())
def test_profile_facts_have_codes_sources_and_confidence(target):
    from tflite.BuiltinOperator import BuiltinOperator

    from qfix.targets import _builtin_doc, variants

    own = tomllib.loads(resources.files("qfix.targets").joinpath(f"{target}.toml").read_text())
    doc = variants.resolve(own, target, _builtin_doc)  # with the profile it extends, if any
    assert own["target"]["id"] == doc["target"]["id"] == target  # the file name is the id
    for name, spec in doc["op"].items():
        assert getattr(BuiltinOperator, name) == spec["code"], name
        assert spec["source"] and spec["confidence"] in ("V", "M", "R"), name
        for rule in spec.get("rule", []):
            assert rule["predicate"] in PREDICATES
            assert rule["source"] and rule["confidence"] in ("V", "M", "R"), name
    rules = doc["target"]["model_rules"]
    for key in ("activation_dtypes", "static_shapes", "integer_io"):
        assert rules[f"{key}_source"] and rules[f"{key}_confidence"] in ("V", "M", "R")


def test_unknown_target_is_qf910():
    with pytest.raises(QfixError) as err:
        load_profile("tpu-v9000")
    assert err.value.code == "QF910" and "edgetpu" in err.value.message


MINIMAL = """
schema = 1
[target]
id = "mine"
placement = "islands"
[op.CONV_2D]
code = 3
source = "me"
confidence = "V"
"""


def test_user_profile_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL)
    p = load_profile(str(path))
    assert p.id == "mine" and p.supports("CONV_2D") and not p.supports("ADD")
    assert check(read_tflite(conv_chain()), p).fully_on_target


@pytest.mark.parametrize("text,needle", [
    ("schema = 1\n[target\nid=", "invalid TOML"),
    ("[target]\nid = 'x'\nplacement = 'islands'", "schema = 1"),
    ("schema = 1\n[target]\nid = 'x'\nplacement = 'everywhere'", "placement"),
    (MINIMAL + "[[op.CONV_2D.rule]]\npredicate = 'os_system'\n", "unknown predicate"),
    (MINIMAL.replace('confidence = "V"', 'confidence = "very"'), "confidence"),
    ("schema = 1\nop = 3\n[target]\nid = 'x'\nplacement = 'islands'", "op: must be a table"),
])
def test_bad_profile_is_qf912(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(QfixError) as err:
        load_profile(str(path))
    assert err.value.code == "QF912" and needle in err.value.message and "\n" not in str(err.value)


def test_missing_profile_file_is_qf912(tmp_path):
    with pytest.raises(QfixError) as err:
        load_profile(str(tmp_path / "nope.toml"))
    assert err.value.code == "QF912"


# ---- check() on hand-built models (fast) ------------------------------------------------------


def _statuses(placement):
    return [(o.op, o.status) for o in placement.ops]


def test_edgetpu_all_int8_chain_is_fully_on_target():
    p = check(read_tflite(conv_chain("RELU")), load_profile("edgetpu"), ["conv", "act"])
    assert p.fully_on_target and p.first_unsupported is None
    # The trailing requantize stays on the CPU (as in real compiler logs) without blocking.
    assert _statuses(p) == [("QUANTIZE", MAPPED), ("CONV_2D", MAPPED), ("RELU", MAPPED), ("QUANTIZE", HIDDEN)]
    assert (p.ops_total, p.ops_on_target) == (4, 3)
    assert p.ops[-1].boundary and not p.ops[-1].on_target
    json.dumps(p.to_json())


def test_edgetpu_single_cut_spreads(tmp_path):
    # The shipped profile fails the whole model on a too-new op version (issue 9, fault 2;
    # tests/targets/test_verdict_checks.py); with version_failure = "op" it is a cut.
    text = resources.files("qfix.targets").joinpath("edgetpu.toml").read_text(encoding="utf-8")
    (tmp_path / "cut.toml").write_text(text.replace('version_failure = "model"', 'version_failure = "op"').replace('id = "edgetpu"', 'id = "edgetpu-cut"', 1))
    p = check(read_tflite(conv_chain("LEAKY_RELU", conv_version=6)), load_profile(str(tmp_path / "cut.toml")),
              ["conv", "act"])
    assert p.first_unsupported["op"] == "CONV_2D" and p.first_unsupported["status"] == BAD_VERSION
    assert _statuses(p)[2] == ("LEAKY_RELU", NOT_SUPPORTED)  # keeps its own status after the cut
    p = check(read_tflite(conv_chain("LEAKY_RELU", conv_version=6)), load_profile("edgetpu"), ["conv", "act"])
    assert p.model_failure and p.ops_on_target == 0 and p.first_unsupported["layer"] == "conv"
    p = check(read_tflite(conv_chain("LOGISTIC", dilation=(2, 1))), load_profile("edgetpu"), ["conv", "act"])
    assert p.first_unsupported["status"] == HIDDEN and "dilation" in p.first_unsupported["reason"]
    assert _statuses(p)[2] == ("LOGISTIC", AFTER_CUT) and p.ops_on_target == 1


def test_edgetpu_int32_activation_is_unsupported_dtype_but_ok_for_int8():
    data = conv_chain("RELU", act_dtype="int32")
    assert check(read_tflite(data), load_profile("edgetpu")).first_unsupported["status"] == BAD_DTYPE
    assert check(read_tflite(data), load_profile("int8")).first_unsupported is None


def test_edgetpu_batch_2_is_bad_rank_and_subgraphs_warn():
    p = check(read_tflite(conv_chain(batch=2)), load_profile("edgetpu"))
    assert p.first_unsupported["status"] == BAD_RANK
    tensors = [{"name": f"t{i}", "shape": (1, 4), "dtype": "int8"} for i in range(2)]
    data = build_tflite(tensors, [{"op": "RELU", "in": [0], "out": [1]}], [0], [1], subgraphs=2, min_runtime="2.9.0")
    p = check(read_tflite(data), load_profile("edgetpu"))
    assert p.fully_on_target
    assert any("2 subgraphs" in w for w in p.warnings) and any("2.9.0" in w for w in p.warnings)


def _single_op(op, in_shape, out_shape, extra_inputs=(), options=None):
    tensors = [{"name": "x", "shape": in_shape, "dtype": "int8"}]
    for name, data in extra_inputs:
        tensors.append({"name": name, "shape": data.shape, "dtype": str(data.dtype), "data": data,
                        "quant": data.dtype.kind != "i" or data.dtype.itemsize == 1})
    tensors.append({"name": "model/layer/y", "shape": out_shape, "dtype": "int8"})
    spec = {"op": op, "in": list(range(len(tensors) - 1)), "out": [len(tensors) - 1]}
    if options:
        spec["options"] = options
    return read_tflite(build_tflite(tensors, [spec], [0], [len(tensors) - 1]))


@pytest.mark.parametrize("op,in_shape,out_shape,extra,options,ok", [
    ("MEAN", (1, 4, 4, 8), (1, 8), [("axes", np.array([1, 2], "int32"))], None, True),
    ("MEAN", (2, 4, 4, 8), (4, 4, 8), [("axes", np.array([0], "int32"))], None, False),
    ("MEAN", (1, 4, 4, 6), (1, 4, 4), [("axes", np.array([-1], "int32"))], None, False),
    ("SOFTMAX", (1, 10), (1, 10), [], None, True),
    ("SOFTMAX", (1, 4, 10), (1, 4, 10), [], None, False),
    ("SOFTMAX", (1, 20000), (1, 20000), [], None, False),
    ("CONCATENATION", (1, 4, 4, 8), (1, 4, 4, 16), [("zeros", np.zeros((1, 4, 4, 8), "int8"))],
     ("ConcatenationOptions", {"axis": 3}), True),
    ("CONCATENATION", (1, 4, 4, 8), (1, 4, 4, 16), [("ones", np.ones((1, 4, 4, 8), "int8"))],
     ("ConcatenationOptions", {"axis": 3}), False),
    ("FULLY_CONNECTED", (1, 5, 8), (1, 5, 4), [("w", np.ones((4, 8), "int8"))],
     ("FullyConnectedOptions", {"keepNumDims": True}), False),
    ("MAX_POOL_2D", (1, 4, 4, 8), (1, 2, 2, 8), [], ("Pool2DOptions", {"fusedActivationFunction": 3}), False),
    ("PAD", (1, 4, 4, 8), (3, 4, 4, 8), [("pads", np.array([[1, 1], [0, 0], [0, 0], [0, 0]], "int32"))],
     None, False),
])
def test_edgetpu_op_constraints(op, in_shape, out_shape, extra, options, ok):
    p = check(_single_op(op, in_shape, out_shape, extra, options), load_profile("edgetpu"))
    assert p.fully_on_target is ok, p.first_unsupported
    if not ok:
        assert p.first_unsupported["op"] == op and p.first_unsupported["status"] in (HIDDEN, BAD_RANK)


def test_size_warnings_do_not_block():
    m = _single_op("MEAN", (1, 128, 128, 8), (1, 8), [("axes", np.array([1, 2], "int32"))])
    p = check(m, load_profile("edgetpu"))
    assert p.fully_on_target and any("Large Mean inputs" in w for w in p.warnings)


def test_all_or_nothing_placement(tmp_path):
    path = tmp_path / "mcu.toml"
    path.write_text(MINIMAL.replace('"islands"', '"all_or_nothing"') + "[op.QUANTIZE]\ncode = 114\n")
    p = check(read_tflite(conv_chain("LEAKY_RELU")), load_profile(str(path)), ["conv", "act"])
    assert p.first_unsupported["op"] == "LEAKY_RELU" and p.ops_on_target == 0 and not p.fully_on_target


def test_fix_hint_reaches_first_unsupported():
    p = check(read_tflite(conv_chain("LEAKY_RELU")), load_profile("edgetpu"), ["conv", "act"])
    assert "PReLU" in p.first_unsupported["fix_hint"]


def test_float_island_detected_by_dtype_scan():
    tensors = [
        {"name": "in", "shape": (1, 8), "dtype": "int8"},
        {"name": "tfl.dequantize", "shape": (1, 8), "dtype": "float32"},
        {"name": "model/running_sum/Cumsum", "shape": (1, 8), "dtype": "float32"},
        {"name": "axis", "shape": (), "dtype": "int32", "data": np.array(1, "int32"), "quant": False},
        {"name": "out", "shape": (1, 8), "dtype": "int8"},
        {"name": "model/act/Relu", "shape": (1, 8), "dtype": "int8"},
        {"name": "model/first/Relu", "shape": (1, 8), "dtype": "int8"},
    ]
    ops = [{"op": "RELU", "in": [0], "out": [6]},
           {"op": "DEQUANTIZE", "in": [6], "out": [1]}, {"op": "CUMSUM", "in": [1, 3], "out": [2]},
           {"op": "QUANTIZE", "in": [2], "out": [4]}, {"op": "RELU", "in": [4], "out": [5]}]
    m = read_tflite(build_tflite(tensors, ops, [0], [5]))
    for target, status in (("edgetpu", BAD_DTYPE), ("int8", "Computes in float (float island)")):
        p = check(m, load_profile(target), ["running_sum", "act"])
        assert not p.fully_on_target
        assert p.first_unsupported["op"] == "DEQUANTIZE" and p.first_unsupported["layer"] == "running_sum"
        assert p.first_unsupported["status"] == status
        assert p.float_tensors == ["tfl.dequantize", "model/running_sum/Cumsum"]
        assert [i["producer"] for i in p.float_islands] == ["DEQUANTIZE", "CUMSUM"]
    p = check(m, load_profile("int8"))
    assert [o.on_target for o in p.ops] == [True, False, False, False, True]  # islands: RELUs stay int8


# ---- compiler log parsing --------------------------------------------------------------------

COMPILER_LOG = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 96 ms.

Input model: model.tflite
Input size: 7.02MiB
Output model: out/model_edgetpu.tflite
Output size: 7.14MiB
On-chip memory used for caching model parameters: 80.00KiB
On-chip memory remaining for caching model parameters: 6.04MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 6
Operation log: out/model_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 2
Number of operations that will run on CPU: 4

Operator                       Count      Status

QUANTIZE                       1          Mapped to Edge TPU
QUANTIZE                       1          Operation is otherwise supported, but not mapped due to some unspecified limitation
CONV_2D                        1          Mapped to Edge TPU
LEAKY_RELU                     1          Operation not supported
MEAN                           1          More than one subgraph is not supported
FULLY_CONNECTED                1          More than one subgraph is not supported
Compilation child process completed within timeout period.
Compilation succeeded!
"""

FATAL_LOG = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.
ERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'. An older version of this builtin might be supported. Are you using an old TFLite binary with a newer model?

ERROR: Registration failed.

Invalid model: model.tflite
Model could not be parsed
Compilation failed!
"""


def test_parse_compiler_log():
    r = parse_log(COMPILER_LOG)
    assert r.ok and r.version == "16.0.384591198" and r.error is None
    assert (r.ops_on_tpu, r.ops_on_cpu, r.total_ops, r.subgraphs) == (2, 4, 6, 1)
    assert [(o.op, o.count) for o in r.ops][:3] == [("QUANTIZE", 1), ("QUANTIZE", 1), ("CONV_2D", 1)]
    assert r.ops[3].status == NOT_SUPPORTED and r.ops[4].status == AFTER_CUT
    assert "log" not in r.to_json()


def test_parse_fatal_compiler_log():
    r = parse_log(FATAL_LOG)
    assert not r.ok and r.ops == [] and "CONV_2D" in r.error


def test_run_returns_none_without_compiler(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert run(conv_chain()) is None


def test_compare_with_profile_verdict():
    tensors = [
        {"name": "in", "shape": (1, 4, 4, 3), "dtype": "uint8"},
        {"name": "q", "shape": (1, 4, 4, 3), "dtype": "int8"},
        {"name": "model/act/LeakyRelu", "shape": (1, 4, 4, 3), "dtype": "int8"},
        {"name": "model/act2/Relu", "shape": (1, 4, 4, 3), "dtype": "int8"},
        {"name": "out", "shape": (1, 4, 4, 3), "dtype": "uint8"},
    ]
    ops = [{"op": "QUANTIZE", "in": [0], "out": [1]}, {"op": "LEAKY_RELU", "in": [1], "out": [2]},
           {"op": "RELU", "in": [2], "out": [3]}, {"op": "QUANTIZE", "in": [3], "out": [4]}]
    p = check(read_tflite(build_tflite(tensors, ops, [0], [4])), load_profile("edgetpu"))
    log = (
        "Total number of operations: 4\nNumber of operations that will run on Edge TPU: 1\n\n"
        "Operator                       Count      Status\n\n"
        f"QUANTIZE                       1          {MAPPED}\n"
        f"QUANTIZE                       1          {HIDDEN}\n"
        f"LEAKY_RELU                     1          {NOT_SUPPORTED}\n"
        f"RELU                           1          {AFTER_CUT}\n"
    )
    assert compare(p, parse_log(log)) == []
    diffs = compare(p, parse_log(log.replace("Edge TPU: 1", "Edge TPU: 2").replace(AFTER_CUT, MAPPED)))
    assert "ops on Edge TPU: compiler 2, qfix 1" in diffs
    assert any(d.startswith("RELU 'Mapped to Edge TPU': compiler 1, qfix 0") for d in diffs)
    assert compare(p, parse_log(FATAL_LOG))[0].startswith("compiler failed")


# ---- real conversions (TF) -------------------------------------------------------------------

# model -> (edgetpu first_unsupported (op, layer, status) or None, int8 fully_on_target)
EXPECTED = {
    "friendly": (None, True),
    "friendly_tf_keras": (None, True),
    "friendly_int8_io": (None, True),
    "friendly_float_io": (None, True),
    "hard_swish": (("HARD_SWISH", "hswish", NOT_SUPPORTED), True),
    "leaky_relu": (("LEAKY_RELU", "leaky", NOT_SUPPORTED), True),
    "cumsum": (("DEQUANTIZE", "running_sum", BAD_DTYPE), False),
    "dynamic_batch": (("CONV_2D", "stem_conv", DYNAMIC), True),
    "five_d": (("RESHAPE", "to_5d", BAD_RANK), True),
    "strided_slice": (("STRIDED_SLICE", "subsample", HIDDEN), True),
}


@pytest.mark.tf
@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_real_model_verdicts(tflite_models, key):
    data, names = tflite_models[key]
    model = read_tflite(data)
    tpu_first, int8_full = EXPECTED[key]

    tpu = check(model, load_profile("edgetpu"), names)
    assert tpu.fully_on_target is (tpu_first is None), tpu.first_unsupported
    if tpu_first is None:
        assert tpu.float_tensors == [] and all(o.on_target or o.boundary for o in tpu.ops)
        assert tpu.ops_on_target >= tpu.ops_total - 2
    else:
        got = tpu.first_unsupported
        assert (got["op"], got["layer"], got["status"]) == tpu_first
        cut = got["index"]
        assert not any(o.on_target for o in tpu.ops[cut:])  # single cut: the rest is CPU
        later = {o.status for o in tpu.ops[cut + 1:] if not o.boundary}
        # A dynamic shape fails the whole compile, so every op reports it; otherwise the ops
        # after the cut say "More than one subgraph is not supported".
        assert AFTER_CUT in later if got["status"] != DYNAMIC else later == {DYNAMIC}

    cpu = check(model, load_profile("int8"), names)
    assert cpu.fully_on_target is int8_full, cpu.first_unsupported
    json.dumps(tpu.to_json()), json.dumps(cpu.to_json())


@pytest.mark.tf
def test_real_float_island_details(tflite_models):
    data, names = tflite_models["cumsum"]
    p = check(read_tflite(data), load_profile("int8"), names)
    assert p.float_tensors == ["tfl.dequantize", "functional_1/running_sum_1/Cumsum"] or all(
        "running_sum" in t or t.startswith("tfl.dequantize") for t in p.float_tensors)
    assert {i["producer"] for i in p.float_islands} == {"DEQUANTIZE", "CUMSUM"}
    assert {i["layer"] for i in p.float_islands} == {"running_sum"}
    off = [o.op for o in p.ops if not o.on_target]
    assert off == ["DEQUANTIZE", "CUMSUM", "QUANTIZE"]  # islands: the int8 ops around stay on target


@pytest.mark.tf
def test_real_edgetpu_boundary_ops(tflite_models):
    tpu = load_profile("edgetpu")
    p = check(read_tflite(tflite_models["friendly"][0]), tpu, tflite_models["friendly"][1])
    assert [(o.op, o.status) for o in p.ops if o.boundary] == [("QUANTIZE", MAPPED), ("QUANTIZE", HIDDEN)]
    assert (p.ops_total, p.ops_on_target) == (7, 6)
    p = check(read_tflite(tflite_models["friendly_float_io"][0]), tpu, tflite_models["friendly_float_io"][1])
    assert [(o.op, o.status) for o in p.ops if o.boundary] == [("QUANTIZE", BAD_DTYPE), ("DEQUANTIZE", BAD_DTYPE)]
    assert p.fully_on_target and p.float_tensors == [] and any("float model input" in w for w in p.warnings)
    p = check(read_tflite(tflite_models["friendly_int8_io"][0]), tpu, tflite_models["friendly_int8_io"][1])
    assert p.ops_on_target == p.ops_total == 5


@pytest.mark.tf
def test_real_int8_reference_kernel_warnings(tflite_models):
    p = check(read_tflite(tflite_models["hard_swish"][0]), load_profile("int8"), tflite_models["hard_swish"][1])
    hs = next(o for o in p.ops if o.op == "HARD_SWISH")
    assert hs.on_target and "reference" in hs.status
    assert any("HARD_SWISH" in w and "hswish" in w for w in p.warnings)


@pytest.mark.tf
@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_int8_statuses_match_xnnpack_delegation(tflite_models, key):
    """The int8 profile's "delegated to XNNPACK" ops are exactly the ones the real interpreter
    delegates, apart from float-island ops (XNNPACK runs those in float: off target for int8)."""
    data, names = tflite_models[key]
    profile = load_profile("int8")
    p = check(read_tflite(data), profile, names)
    real = xnnpack_delegated(data)
    ours = {o.index for o in p.ops if o.status == profile.status("mapped")}
    float_ops = {o.index for o in p.ops if not o.on_target}
    assert ours == real - float_ops
    reference = {o.index for o in p.ops if o.status == profile.status("reference")}
    assert reference == {o.index for o in p.ops} - real - float_ops
