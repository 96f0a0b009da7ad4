"""The real Vela (ethos-u-vela) behind the Ethos-U targets, on hand-built flatbuffers (no
TensorFlow: these are fast tests; Vela itself takes about a second per model).

What is checked: Vela's placement, reasons and estimates as qfix reads them; the MAC
configuration reaching Vela; the profiles' op tables against Vela's own; Vela's placement
becoming the verdict where the profile disagrees; a Vela failure, crash, time-out or memory
blow-up staying one line in a result; the `T:N` option and `extends` in profiles.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qfix.targets import load_profile
from qfix.targets.check import check
from qfix.targets.compilers import judge, vela, verdict_source
from qfix.targets.tflite import read_tflite
from qfix.types import QfixError
from tflite_models import build_tflite, conv_chain

pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install '.[targets]')")

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ("ethos-u55", "ethos-u65", "ethos-u85")


def test_vela_reads_placement_and_estimates():
    r = vela.run(conv_chain("LEAKY_RELU"))  # the Edge TPU lacks LEAKY_RELU; Vela maps it
    assert r.ok and r.error is None and r.version == "5.2.0" and r.accelerator_config == "ethos-u55-256"
    assert [(o.op, o.on_npu) for o in r.ops] == [("QUANTIZE", True), ("CONV_2D", True), ("LEAKY_RELU", True),
                                                 ("QUANTIZE", True)]
    assert r.ops[1].lowered == ["Conv2D", "Relu"]  # Vela's own operations: the conv and its fused ReLU
    assert r.ops[0].lowered == []  # the input QUANTIZE (uint8 -> int8) folded away: nothing left for the CPU
    e = r.estimates
    assert e.accelerator_config == "Ethos_U55_256" and e.system_config == "Ethos_U55_High_End_Embedded"
    assert e.clock_hz == 500e6 and e.cycles_total >= e.cycles_npu > 0
    assert e.inference_ms == pytest.approx(e.cycles_total / e.clock_hz * 1e3, rel=1e-3)
    assert e.sram_bytes > 0 and e.flash_bytes > 0 and e.dram_bytes == 0  # U55 default: Shared_Sram, weights in flash
    assert e.macs >= 4 * 4 * 4 * 3 * 3 * 3 and e.original_weights_bytes >= 4 * 3 * 3 * 3  # the 3x3 conv, 4x4x4 out
    js = r.to_json()
    assert js["ops_on_npu"] == 4 and js["cpu_ops"] == [] and js["estimates"]["flash_bytes"] == e.flash_bytes


def test_cpu_op_carries_vela_reason_and_counts():
    r = vela.run(conv_chain("LOG_SOFTMAX"))
    cpu = [o for o in r.ops if not o.on_npu]
    assert [(o.index, o.op, o.reason) for o in cpu] == [(2, "LOG_SOFTMAX", "Unsupported opType")]
    assert (r.ops_on_npu, r.ops_on_cpu, r.npu_share) == (3, 1, 0.75)
    assert "3/4 TFLite ops on the NPU" in vela.summary_line(r) and "cycles" in vela.summary_line(r)


def test_mac_configuration_reaches_vela():
    small, big = (vela.run(conv_chain(), config) for config in ("ethos-u55-32", "ethos-u55-256"))
    assert small.estimates.accelerator_config == "Ethos_U55_32" and big.estimates.accelerator_config == "Ethos_U55_256"
    assert small.estimates.cycles_npu > big.estimates.cycles_npu  # 32 MACs per cycle take longer
    u85 = vela.run(conv_chain(), **vela.options(load_profile("ethos-u85:512")))
    assert u85.accelerator_config == "ethos-u85-512" and u85.estimates.system_config == "Ethos_U85_SYS_DRAM_Mid"
    assert u85.estimates.clock_hz == 1e9 and u85.estimates.dram_bytes > 0


# Listed by Vela for the family, yet every one qfix tried stayed on the CPU (see ethos-u85.toml).
LISTED_BUT_CPU = {"ethos-u85": {"GATHER"}}


@pytest.mark.parametrize("family,vela_arch", [("ethos-u55", "EthosU55"), ("ethos-u65", "EthosU55"),
                                              ("ethos-u85", "EthosU85")])
def test_profile_op_table_is_velas(family, vela_arch):
    """Vela's own TFLite operator table (the source of its SUPPORTED_OPS.md; U65 shares U55's)
    and the profile's NPU ops are the same set, but for the ops Vela was seen to leave on the CPU."""
    from ethosu import regor

    theirs = {"ARG_MAX" if op == "ARGMAX" else op for op in regor.tflite_operator_constraints(vela_arch)}
    ours = {name for name, spec in load_profile(family).ops.items() if spec.supported}
    assert ours == theirs - LISTED_BUT_CPU.get(family, set()), (sorted(ours - theirs), sorted(theirs - ours))
    for op in LISTED_BUT_CPU.get(family, ()):
        assert "observed" in load_profile(family).op(op).source


def test_failures_are_one_line_results():
    bad = vela.run(b"TFL3" + b"\x00" * 64)  # not a model: Vela's own error ("No networks defined")
    assert not bad.ok and bad.error and "\n" not in bad.error and bad.ops == []
    slow = vela.run(conv_chain(), timeout=0.05)
    assert not slow.ok and not slow.rejected and slow.error == "vela timed out after 0.05 s"
    placement = check(read_tflite(conv_chain()), load_profile("ethos-u55"))
    assert vela.compare(placement, slow) == []  # a Vela that did not finish disagrees with nothing
    assert vela.summary_line(slow) == f"vela {slow.version} (ethos-u55-256) failed: vela timed out after 0.05 s"
    assert not vela.apply(placement, slow, load_profile("ethos-u55")) and placement.fully_on_target  # unchanged
    starved = vela.run(conv_chain(), memory_limit=30 << 20)  # numpy alone needs more
    assert not starved.ok and not starved.rejected and starved.error and "\n" not in starved.error


def _float_argmax() -> bytes:
    """float32 -> ARG_MAX -> int32: Vela refuses the file ("IFM has to be 8bit")."""
    import numpy as np

    from tflite_models import build_tflite

    tensors = [{"name": "in", "shape": (1, 4, 4, 3), "dtype": "float32", "quant": False},
               {"name": "axis", "shape": (1,), "dtype": "int32", "data": np.array([3], np.int32), "quant": False},
               {"name": "argmax_out", "shape": (1, 4, 4), "dtype": "int32", "quant": False}]
    return build_tflite(tensors, [{"op": "ARG_MAX", "in": [0, 1], "out": [2],
                                   "options": ("ArgMaxOptions", {"outputType": 2})}], [0], [2])


def test_a_file_vela_refuses_runs_nowhere_on_the_npu():
    data, profile = _float_argmax(), load_profile("ethos-u85")
    result = vela.run(data, **vela.options(profile))
    assert result.rejected and not result.ok and result.rejected_op == 0
    assert result.error == "Error: ARGMAX 'argmax_out' Does not have valid TFLite Semantics.; - IFM has to be 8bit; " \
                           "IFM type=FLOAT32,"
    placement = check(read_tflite(data), profile)
    out = judge(profile, data, placement)
    assert out["verdict"] == "vela" and out["summary"].startswith("vela 5.2.0 (ethos-u85-256) rejects the file: Error")
    assert placement.ops_on_target == 0 and not placement.fully_on_target
    assert placement.model_failure == "vela rejects the whole file, so no op runs on Arm Ethos-U85 NPU"
    assert placement.first_unsupported["reason"] == result.error
    assert placement.first_unsupported["status"] == profile.status("rejected")


def test_vela_verdict_replaces_the_profile_where_they_disagree(tmp_path):
    """A user profile that extends the U55's but calls LEAKY_RELU unsupported: Vela maps it, the
    disagreement is listed, and Vela's placement is the verdict."""
    path = tmp_path / "strict_u55.toml"
    path.write_text('schema = 1\nextends = "ethos-u55"\n[target]\nid = "strict-u55"\n'
                    '[op.LEAKY_RELU]\ncode = 98\nsupported = false\nsource = "test"\nconfidence = "R"\n')
    profile = load_profile(str(path))
    assert profile.toolchain["accelerator_config"] == "ethos-u55-256" and profile.aliases == ()
    data = conv_chain("LEAKY_RELU")
    placement = check(read_tflite(data), profile)
    assert not placement.ops[2].on_target and not placement.fully_on_target
    out = judge(profile, data, placement)
    assert out["used"] == out["verdict"] == "vela"
    assert len(out["disagreements"]) == 1 and "op 2 LEAKY_RELU" in out["disagreements"][0]
    assert "vela NPU" in out["disagreements"][0] and "profile CPU" in out["disagreements"][0]
    assert placement.fully_on_target and placement.ops_on_target == 4 and placement.first_unsupported is None
    assert placement.ops[2].source == "vela 5.2.0 (ethos-u55-256)" and placement.ops[2].confidence == "V"


def test_vela_reason_becomes_the_ops_reason():
    profile = load_profile("ethos-u55:64")
    data = conv_chain("CUMSUM")
    placement = check(read_tflite(data), profile)
    out = judge(profile, data, placement)
    assert out["disagreements"] == [] and out["result"]["accelerator_config"] == "ethos-u55-64"
    first = placement.first_unsupported
    assert (first["op"], first["index"], first["status"]) == ("CUMSUM", 2, profile.status("cpu"))
    assert first["reason"] == "Unsupported opType"
    assert out["summary"].startswith("vela 5.2.0 (ethos-u55-64): 3/4 TFLite ops on the NPU")


def test_verdict_source_for_the_targets_command():
    for family in FAMILIES:
        assert verdict_source(load_profile(family)) == \
            "real compiler (vela) when ethos-u-vela is installed, else profile"


# ---- `T:N` and `extends` --------------------------------------------------------------------


@pytest.mark.parametrize("name,config", [("ethos-u55", "ethos-u55-256"), ("ethos-u55:32", "ethos-u55-32"),
                                         ("Ethos-U65:512", "ethos-u65-512"), ("ethos-u85", "ethos-u85-256"),
                                         ("ethos-u85:2048", "ethos-u85-2048"), ("vela:128", "ethos-u55-128")])
def test_mac_option_picks_the_accelerator_config(name, config):
    p = load_profile(name)
    assert vela.options(p) == {"accelerator_config": config}
    assert p.id == name.split(":")[0].lower().replace("vela", "ethos-u55")  # output names keep the id


@pytest.mark.parametrize("name,needle", [
    ("ethos-u55:100", "unknown MAC configuration 'ethos-u55:100' (known: ethos-u55:32, ethos-u55:64, "
                      "ethos-u55:128, ethos-u55:256)"),
    ("ethos-u65:128", "(known: ethos-u65:256, ethos-u65:512)"),
    ("ethos-u85:", "unknown MAC configuration 'ethos-u85:'"),
    ("ethos-u55:abc", "unknown MAC configuration"),
    ("ethos-u55:\uff11\uff12\uff18", "unknown MAC configuration"),  # fullwidth digits are not 128
    ("ethos-u55:0128", "unknown MAC configuration"),
    ("edgetpu:4", "edgetpu has no MAC configurations"),
])
def test_bad_mac_option_is_qf910(name, needle):
    with pytest.raises(QfixError) as err:
        load_profile(name)
    assert err.value.code == "QF910" and needle in err.value.message


def test_bad_mac_option_through_the_cli_is_one_line():
    r = subprocess.run([sys.executable, "-m", "qfix", str(REPO / "fixtures" / "tiny_cnn_k3.keras"), "--target",
                        "ethos-u55:100", "--check"], capture_output=True, text=True, cwd=REPO, timeout=300,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("QF910 unknown MAC configuration 'ethos-u55:100' (known: ethos-u55:32, "
                                "ethos-u55:64, ethos-u55:128, ethos-u55:256)")


@pytest.mark.parametrize("text,needle", [
    ('extends = "ethos-u99"\n', "extends = 'ethos-u99' names no built-in target"),
    ("extends = 3\n", "extends must be a built-in target id"),
    ('extends = "ethos-u55"\n[target.toolchain]\naccelerator_config = "ethos-u55-100"\n',
     "accelerator_config must be one of target.toolchain.accelerator_configs"),
])
def test_bad_extends_or_accelerator_is_qf912(tmp_path, text, needle):
    path = tmp_path / "mine.toml"
    path.write_text(f"schema = 1\n{text}" + ('[target]\nid = "mine"\n' if "[target" not in text else ""))
    with pytest.raises(QfixError) as err:
        load_profile(str(path))
    assert err.value.code == "QF912" and needle in err.value.message and "\n" not in err.value.message


def test_extends_lays_tables_over_the_base_and_replaces_op_tables():
    u55, u85 = load_profile("ethos-u55"), load_profile("ethos-u85")
    assert u85.recipe.io_dtype == u55.recipe.io_dtype and u85.placement == u55.placement
    assert u85.static_shapes and u85.integer_io and u85.statuses == u55.statuses
    # replaced whole: the U85's CONV_2D has no stride rule, only its own weight-sum limit
    assert {r.predicate for r in u55.op("CONV_2D").constraints} == {"stride_le_unless_unpadded", "weight_sum_le"}
    assert [r.predicate for r in u85.op("CONV_2D").constraints] == ["weight_sum_le"]
    assert u55.op("CAST").fix_hint and not u85.op("CAST").fix_hint and u85.supports("CAST")
    assert u85.op("MEAN") == u55.op("MEAN")  # inherited as it is
    assert u85.aux_dtypes == ("int32", "bool") and u55.aux_dtypes == ("int32",)


def test_dynamic_batch_is_set_to_one_by_vela_and_the_profile_knows():
    """A .tflite with a dynamic batch (the plain converter's): Vela sets it to 1 and maps every
    op; the profile (`dynamic_batch = true`) agrees. The Edge TPU's profile does not."""
    data = conv_chain("RELU", signature_batch=-1)
    result = vela.run(data)
    assert all(o.on_npu for o in result.ops) and "Setting shape axis 0 to 1" in result.log
    u55 = check(read_tflite(data), load_profile("ethos-u55"))
    assert u55.fully_on_target and vela.compare(u55, result) == []
    assert not check(read_tflite(data), load_profile("edgetpu")).fully_on_target


def test_memory_budget_is_checked_against_velas_figures():
    """--memory on an Ethos-U target (issue 13, item 3): ram is Vela's SRAM estimate, flash the
    size of Vela's output .tflite (what the device flashes), not the converter's file."""
    from qfix.jobs.prove import measured_memory
    from qfix.jobs.runtime import check_budget
    from qfix.rules.memory_budget import MemoryBudgetExceeded
    from qfix.targets.memory import MemoryBudget

    model = conv_chain()
    r = vela.run(model)
    figures = vela.memory(r)
    assert figures["ram"][0] == r.estimates.sram_bytes > 0 and "SRAM estimate" in figures["ram"][1]
    assert figures["flash"][0] == r.output_bytes > 0 and figures["flash"][0] != len(model)
    profile = load_profile("ethos-u55")
    check_budget(MemoryBudget(ram=1024), profile)  # measured now: no QF914
    compiler = judge(profile, model, check(read_tflite(model), profile))
    measured = measured_memory(model, None, None, compiler)
    assert "memory" not in compiler  # reported once, in the verification's `memory`
    assert measured == {"flash": {"bytes": r.output_bytes, "what": figures["flash"][1]},
                        "ram": {"bytes": r.estimates.sram_bytes, "what": figures["ram"][1]}}
    (over,) = MemoryBudgetExceeded().judge(measured, MemoryBudget(ram=r.estimates.sram_bytes - 1))
    assert over.message.startswith("ram: Vela's SRAM estimate (sram_memory_used, Ethos_U55_High_End_Embedded) needs")
    assert list(MemoryBudgetExceeded().judge(measured, MemoryBudget(flash=r.output_bytes, ram=r.estimates.sram_bytes))) == []


def test_vela_fills_the_fallback_list_with_the_ops_it_leaves_on_the_cpu():
    """`verification.fallback` on Ethos-U (issue 13, item 7): the ops Vela places on the CPU,
    as the GPU profile's fallback lists its own, not an empty list."""
    profile = load_profile("ethos-u55")
    data = conv_chain("CUMSUM")
    placement = check(read_tflite(data), profile)
    judge(profile, data, placement)
    assert placement.fallback == [{"index": 2, "op": "CUMSUM", "layer": placement.ops[2].layer,
                                   "status": profile.status("cpu"), "reason": "Unsupported opType"}]
    assert placement.spread == "islands" and placement.warnings == []  # the built-in names its config


def test_a_user_profile_without_an_accelerator_config_says_which_vela_ran(tmp_path):
    path = tmp_path / "bare_vela.toml"
    text = (REPO / "examples" / "targets" / "my_npu.toml").read_text(encoding="utf-8")
    path.write_text(text.replace('toolchain = { name = "my-npu-sdk", note = "no compiler for it here: the verdict '
                                 'is this profile\'s" }', 'toolchain = { name = "vela" }'), encoding="utf-8")
    profile = load_profile(str(path))
    assert profile.toolchain == {"name": "vela"}
    data = conv_chain()
    placement = check(read_tflite(data), profile)
    out = judge(profile, data, placement)
    assert out["result"]["accelerator_config"] == "ethos-u55-256"
    assert placement.warnings == ["vela compiled for ethos-u55-256, its default: the profile sets no "
                                  "toolchain.accelerator_config (e.g. \"ethos-u55-128\", \"ethos-u65-512\")"]



def _conv(first_filter: int, depth: int = 8000) -> bytes:
    """int8 CONV_2D 3x3 VALID over [1, 3, 3, depth] -> [1, 1, 1, 2] whose first output channel's
    weights are all `first_filter` (the second's all 1): that channel's sum of |w| is
    first_filter * 9 * depth. (A FULLY_CONNECTED cannot show the limit alone: 127 x 65,536, the
    most inputs Vela's tensor dimensions allow, is exactly the limit.)"""
    w = np.ones((2, 3, 3, depth), np.int8)
    w[0] = first_filter
    tensors = [{"name": "x", "shape": (1, 3, 3, depth), "dtype": "int8"},
               {"name": "model/conv/w", "shape": (2, 3, 3, depth), "dtype": "int8", "data": w},
               {"name": "model/conv/b", "shape": (2,), "dtype": "int32", "data": np.zeros(2, np.int32),
                "quant": True, "scale": 0.0025},
               {"name": "model/conv/out", "shape": (1, 1, 1, 2), "dtype": "int8"}]
    ops = [{"op": "CONV_2D", "in": [0, 1, 2], "out": [3],
            "options": ("Conv2DOptions", {"padding": 1, "strideH": 1, "strideW": 1, "dilationHFactor": 1,
                                          "dilationWFactor": 1, "fusedActivationFunction": 0})}]
    return build_tflite(tensors, ops, [0], [3])


@pytest.mark.parametrize("family", ["ethos-u55", "ethos-u85"])
def test_the_weight_sum_limit_agrees_with_vela(family):
    """Vela's "sum of absolute weights cannot exceed 8323072", per output channel: 127 x 72,000 =
    9,144,000 goes to the CPU, 100 x 72,000 = 7,200,000 stays on the NPU. The profile lacked the
    rule and put such an op on the NPU (a review's Dense over a 384x384x1 image)."""
    profile = load_profile(family)
    for first_filter, on_npu in ((127, False), (100, True)):
        data = _conv(first_filter)
        placement = check(read_tflite(data), profile)
        result = vela.run(data, **vela.options(profile))
        assert result.ok and [o.on_npu for o in result.ops] == [on_npu], (first_filter, result.error, result.ops)
        assert vela.compare(placement, result) == [], first_filter
        if not on_npu:
            assert "9144000 > 8323072" in placement.ops[0].reason


@pytest.mark.parametrize("family", ["ethos-u55", "ethos-u65", "ethos-u85"])
def test_a_reshape_that_breaks_tflite_semantics_fails_the_whole_file_as_vela_says(family):
    """The plain converter's dynamic-batch files hold a RESHAPE [1, 4] -> [1, 8, 4] (its shape
    comes at run time); Vela refuses the whole file ("Does not have valid TFLite Semantics"),
    the profile placed every op on the NPU. Same shapes with 32 elements: both map it."""
    profile = load_profile(family)
    for depth, rejected in ((4, True), (32, False)):
        tensors = [{"name": "x", "shape": (1, depth), "dtype": "int8"},
                   {"name": "shape", "shape": (3,), "dtype": "int32", "data": np.array([1, 8, 4], np.int32)},
                   {"name": "model/reshape/out", "shape": (1, 8, 4), "dtype": "int8"},
                   {"name": "model/relu/out", "shape": (1, 8, 4), "dtype": "int8"}]
        data = build_tflite(tensors, [{"op": "RESHAPE", "in": [0, 1], "out": [2]}, {"op": "RELU", "in": [2], "out": [3]}],
                            [0], [3])
        placement = check(read_tflite(data), profile)
        result = vela.run(data, **vela.options(profile))
        assert result.rejected is rejected and (placement.model_failure is not None) is rejected, (depth, result.error)
        assert vela.compare(placement, result) == [], depth
        if rejected:
            assert placement.ops_on_target == 0 and placement.first_unsupported["op"] == "RESHAPE"
            assert "IFM shape [1, 4], OFM shape [1, 8, 4]" in placement.model_failure
        else:
            assert placement.fully_on_target and [o.on_npu for o in result.ops] == [True, True]
