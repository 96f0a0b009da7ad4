"""qfix's Ethos-U profiles agree with the real Vela op by op on tiny converted models
(fixtures/ethos_models.py: one per group of ops or constraints), on U55, U65 and U85.

Where they disagreed, Vela won and the profile was corrected (the notes in ethos-u55.toml and
ethos-u85.toml); these tests keep it so. The facts Vela showed on the way are asserted too:
LeakyReLU and hard_swish on the NPU, no rank limit, batch > 1 blocking only MEAN.
"""

from __future__ import annotations

import os

import pytest

from qfix.targets import load_profile
from qfix.targets.check import check
from qfix.targets.compilers import vela
from qfix.targets.tflite import read_tflite

pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install '.[targets]')")
pytestmark = pytest.mark.tf

FAMILIES = ("ethos-u55", "ethos-u65", "ethos-u85")


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[bytes, list[str]]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from fixtures.ethos_models import build_all

    return build_all()


@pytest.fixture(scope="module")
def placed(models) -> dict[tuple[str, str], tuple[object, object]]:
    """(model, family) -> (the profile's placement, Vela's result)."""
    out = {}
    for name, (data, layers) in models.items():
        tfl = read_tflite(data)
        for family in FAMILIES:
            profile = load_profile(family)
            out[name, family] = (check(tfl, profile, layers), vela.run(data, **vela.options(profile)))
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_profile_agrees_with_vela_op_by_op(placed, family):
    found = {}
    for (name, fam), (placement, result) in placed.items():
        if fam == family:
            assert result.ok, (name, result.error)
            if diffs := vela.compare(placement, result):
                found[name] = diffs
    assert found == {}


def _cpu(placed, name, family) -> dict[str, str]:
    return {f"{o.index} {o.op}": o.reason for o in placed[name, family][1].ops if not o.on_npu}


def test_leaky_relu_hard_swish_transpose_and_resize_2x_run_on_every_npu(placed):
    for family in FAMILIES:
        result = placed["elementwise", family][1]
        assert all(o.on_npu for o in result.ops), _cpu(placed, "elementwise", family)
        assert {"LEAKY_RELU", "HARD_SWISH", "TRANSPOSE", "RESIZE_BILINEAR", "SOFTMAX"} <= {o.op for o in result.ops}


def test_no_rank_limit_but_mean_needs_batch_one(placed):
    for family in FAMILIES:
        off = _cpu(placed, "high_rank", family)
        assert list(off) == ["7 MEAN"] and off["7 MEAN"].startswith("Batch > 1"), off  # over axis 1 of a 5-D map
        assert _cpu(placed, "batch_two", family) == {"3 MEAN": "Batch > 1: 2, 4, 4, 8"}  # conv, pool, dense map


def test_cpu_ops_reasons_differ_by_family(placed):
    u55 = _cpu(placed, "cpu_fallback", "ethos-u55")
    assert u55 == {"0 CONV_2D": "Unsupported kernel stride: 4, 4",
                   "1 RESIZE_BILINEAR": "Scaling matches and operation has unsupported scale-factor=3",
                   "4 LOG_SOFTMAX": "Unsupported opType"}
    assert _cpu(placed, "cpu_fallback", "ethos-u65") == u55
    u85 = _cpu(placed, "cpu_fallback", "ethos-u85")  # the U85 has no stride limit, and other resize rules
    assert list(u85) == ["1 RESIZE_BILINEAR", "4 LOG_SOFTMAX"] and "power of two" in u85["1 RESIZE_BILINEAR"]


def test_u85_runs_div_and_select_the_u55_leaves_on_the_cpu(placed):
    u55 = {k.split()[1] for k in _cpu(placed, "activations", "ethos-u55")}
    u85 = {k.split()[1] for k in _cpu(placed, "activations", "ethos-u85")}
    assert {"DIV", "GREATER", "SELECT"} <= u55 and not {"DIV", "GREATER", "SELECT"} & u85


def test_strides_pools_resizes_and_deconvs_by_family(placed):
    """Vela's spatial limits, by the Keras layer of each CPU op: a stride above 3 only when the
    op pads (SAME that pads nothing counts as VALID), SAME pools up to 8x8, resize scales."""
    def cpu_layers(family):
        placement, result = placed["spatial", family]
        return {placement.ops[o.index].layer for o in result.ops if not o.on_npu}

    u55 = {"ap_k5_s4_pad", "conv_k7_s4_pad", "mp_k5_s4_pad", "bil_4x", "bil_half", "nn_3x", "nn_1x2x", "dc_s3",
           "dc_s2x1", "ap_k9_same"}
    assert cpu_layers("ethos-u55") == cpu_layers("ethos-u65") == u55
    assert cpu_layers("ethos-u85") == {"bil_half", "ap_k9_same"}


def test_dynamic_batch_maps_but_its_shape_arithmetic_does_not(placed):
    for family in FAMILIES:
        off = _cpu(placed, "dynamic_batch", family)
        assert {k.split()[1] for k in off} == {"SHAPE", "STRIDED_SLICE", "PACK"}, off
        assert {v for k, v in off.items() if "SHAPE" not in k} == {"Operation has shapeless tensor"}


def test_embedding_gather_stays_on_the_cpu_even_on_the_u85(placed):
    """Vela lists GATHER for the U85 but placed this Embedding's on the CPU without a reason."""
    for family in FAMILIES:
        placement, result = placed["embedding", family]
        gather = next(o for o in result.ops if o.op == "GATHER")
        assert not gather.on_npu and placement.ops[gather.index].layer == "emb"
