"""What an unrolled RNN leaves (review of QF303/QF305 on the Edge TPU), on tiny real models of
both dialects and real conversions.

Fault 1: QF303's "LSTM becomes WHILE" stayed a blocker (or was "proven" by a QF304 about a PACK)
after QF305's unroll removed every WHILE, whenever another cut remained. A finding is now
resolved when its own cause (the ops it names) is gone from its layer, whatever else cuts.
Fault 2: the UNPACK -> STRIDED_SLICE swap only matched an RNN reading the model input through one
RESHAPE; an RNN after a Conv1D kept its UNPACK. Now every static UNPACK is sliced, exactly.
Fault 3: a returned sequence was stacked with PACK on the batch axis, which the Edge TPU refuses;
qfix now packs on axis 1 and reshapes, exactly. tf_keras's GRU split its gates with SPLIT_V,
which the Edge TPU lacks; equal sizes are now a SPLIT, exactly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fixtures.build import save_all
from tests.jobs.test_isolation import leftovers, qfix

pytestmark = pytest.mark.tf


def _k3_gru_lstm(K):  # fault 1's smallest input: a GRU returning its sequence into an LSTM
    x = K.Input((5, 16))
    y = K.layers.LSTM(4, name="lstm")(K.layers.GRU(8, return_sequences=True, name="gru")(x))
    return K.Model(x, K.layers.Dense(2)(y))


def _k3_seq_rnn(K):  # a SimpleRNN returning its sequence into a Dense (PACK on axis 0)
    x = K.Input((5, 16))
    return K.Model(x, K.layers.Dense(2)(K.layers.SimpleRNN(8, return_sequences=True, name="rnn")(x)))


def _k3_conv_rnn(K):  # fault 2's smallest input: the RNN reads a Conv1D, not the model input
    x = K.Input((5, 16))
    return K.Model(x, K.layers.Dense(2)(K.layers.SimpleRNN(8, name="rnn")(K.layers.Conv1D(8, 1)(x))))


def _k3_masked_lstm(K):  # the cut stays elsewhere (Masking's float NOT_EQUAL): QF303's WHILE is gone
    x = K.Input((5, 16))
    return K.Model(x, K.layers.Dense(2)(K.layers.LSTM(4, name="lstm")(K.layers.Masking()(x))))


def _tfk_conv_seq_rnn(K):  # tf_keras: after a Conv1D and returning its sequence (UNPACK and PACK)
    x = K.Input((5, 16))
    y = K.layers.SimpleRNN(8, return_sequences=True, name="rnn")(K.layers.Conv1D(8, 1)(x))
    return K.Model(x, K.layers.Dense(2)(y))


def _tfk_gru(K):  # tf_keras's GRU splits its gates with SPLIT_V (equal sizes)
    x = K.Input((5, 16))
    return K.Model(x, K.layers.Dense(2)(K.layers.GRU(8, name="gru")(x)))


MODELS = {
    "k3_gru_lstm": ("k3", _k3_gru_lstm), "k3_seq_rnn": ("k3", _k3_seq_rnn),
    "k3_conv_rnn": ("k3", _k3_conv_rnn), "k3_masked_lstm": ("k3", _k3_masked_lstm),
    "tfk_conv_seq_rnn": ("tfk", _tfk_conv_seq_rnn), "tfk_gru": ("tfk", _tfk_gru),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return save_all(tmp_path_factory.mktemp("unrolled_rnn"), MODELS)


@pytest.fixture(scope="module")
def reports(models, tmp_path_factory):
    """One run of the main job per model (edgetpu, the default target): name -> (exit, report)."""
    tmp = tmp_path_factory.mktemp("runs")
    out: dict[str, tuple[int, dict]] = {}
    for name, path in models.items():
        proc = qfix(str(path), "--samples", "4", "--format", "json", "--out-dir", str(tmp / name), tmp=tmp)
        assert proc.stderr == "", proc.stderr
        out[name] = (proc.returncode, json.loads(proc.stdout))
    assert leftovers(tmp) == []
    return out


def by_code(report: dict, code: str) -> list[dict]:
    return [f for f in report["findings"] if f["code"] == code]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_qf303_while_is_resolved_once_unrolled(reports, name):
    """Fault 1 and its kind: the unroll removed the WHILE, so QF303 is resolved (applied) whatever
    else the converted model keeps, and no QF303 claims a QF304 about another op proves it."""
    _, report = reports[name]
    qf305 = by_code(report, "QF305")
    assert qf305 and all(f["applied"] for f in qf305)
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5
    assert "WHILE" not in {o["op"] for o in report["verification"]["ops"]}
    qf303 = [f for f in by_code(report, "QF303") if f["layer"] != "masking"]  # the Masking's own stays
    assert qf303 and all(f["applied"] for f in qf303), qf303
    assert not any("proves it" in f["message"] for f in report["findings"])


@pytest.mark.parametrize("name", ["k3_gru_lstm", "k3_seq_rnn", "k3_conv_rnn", "tfk_conv_seq_rnn", "tfk_gru"])
def test_unrolled_rnn_runs_whole_on_the_edge_tpu(reports, name):
    """Faults 2 and 3: no UNPACK, no PACK on the batch axis and no SPLIT_V are left, so the model
    runs fully on the Edge TPU (before: cut at the UNPACK, the PACK or the SPLIT_V, exit 1).
    TF 2.21 sometimes leaves the first step's SPLIT in float (QF305's docs): then that float
    island (QF405) is the only cut."""
    code, report = reports[name]
    ver = report["verification"]
    assert {o["op"] for o in ver["ops"]}.isdisjoint({"UNPACK", "SPLIT_V"})
    assert not [o for o in ver["ops"] if o["op"] == "PACK" and "batch dimension" in o["reason"]]
    if by_code(report, "QF405"):
        assert ver["first_unsupported"]["op"] == "DEQUANTIZE" and code == 1
        return
    assert code == 0 and ver["fully_on_target"], ver["first_unsupported"]
    assert not by_code(report, "QF304")


def test_masked_lstm_keeps_its_own_cut(reports):
    """The Masking's float NOT_EQUAL still cuts the graph (QF304/QF405), charged to the Masking,
    which QF303 names statically (tests/jobs/test_masking.py)."""
    code, report = reports["k3_masked_lstm"]
    assert code == 1 and by_code(report, "QF304") and by_code(report, "QF405")
    assert {f["layer"] for f in by_code(report, "QF304") + by_code(report, "QF405")} == {"masking"}


def _fixed_int8(models, name: str, tmp: Path) -> tuple[bytes, object]:
    """The int8 conversion (which keeps UNPACK and PACK) of `name` unrolled by QF305."""
    from qfix.convert.calibration import synthetic_calibration
    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.keras import input_specs, load_model
    from qfix.jobs.check import Options, context
    from qfix.jobs.fix import apply_fixes
    from qfix.model.archive import read_archive
    from qfix.model.writer import write_archive
    from qfix.targets import load_profile

    a = read_archive(models[name])
    opts = Options(target="int8", select=["QF305"])
    config, weights, _, _ = apply_fixes(a.config, a.weights_bytes, a.dialect,
                                        context(load_profile("int8"), opts), opts, unsafe=False)
    fixed = load_model(write_archive(tmp / f"{name}.keras", config, a.metadata, weights), a.dialect)
    return convert(fixed, recipe_for("int8"), synthetic_calibration(input_specs(fixed), 4)).tflite, fixed


def _outputs(tflite: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _on_edgetpu(tflite: bytes) -> tuple[list[str], int]:
    """The ops the Edge TPU refuses on their own account (not after the cut), and how many map."""
    from qfix.targets import load_profile
    from qfix.targets.check import check
    from qfix.targets.tflite import read_tflite

    placement = check(read_tflite(tflite), load_profile("edgetpu"))
    own = [p.op for p in placement.ops if not p.on_target and not p.boundary and not p.spread]
    return own, placement.ops_on_target


@pytest.mark.parametrize("name", ["k3_conv_rnn", "k3_seq_rnn", "tfk_conv_seq_rnn", "k3_gru_lstm", "tfk_gru"])
def test_swaps_are_bit_identical_and_map_more_ops(models, name, tmp_path):
    """The swaps on a conversion that keeps UNPACK, PACK(axis 0) and SPLIT_V (int8 runs them): the
    integer outputs are the same, bit for bit, and more ops map to the Edge TPU."""
    from qfix.convert.equal_split import split_v_as_split
    from qfix.convert.unbatched_pack import pack_off_batch
    from qfix.convert.unstack import slice_time_steps
    from qfix.targets.tflite import read_tflite

    original, fixed = _fixed_int8(models, name, tmp_path)
    sliced, unpacks = slice_time_steps(original)
    packed, packs = pack_off_batch(sliced)
    swapped, splits = split_v_as_split(packed)
    before = [op.name for op in read_tflite(original).ops]
    after = read_tflite(swapped).ops
    assert unpacks == before.count("UNPACK") >= 1
    assert packs == before.count("PACK") == (0 if name in ("k3_conv_rnn", "tfk_gru") else 1)
    assert splits == before.count("SPLIT_V") and (splits >= 1) == (name == "tfk_gru")  # one a step but the first
    assert {op.name for op in after}.isdisjoint({"UNPACK", "SPLIT_V"})
    assert all(op.options.get("axis") != 0 for op in after if op.name == "PACK")
    # More ops map, and none of the swapped kinds is left off the target on its own account (the
    # count of ops on target alone can tie when TF leaves a float island before them).
    own_before, on_before = _on_edgetpu(original)
    own_after, on_after = _on_edgetpu(swapped)
    assert on_after >= on_before and len(own_after) < len(own_before)
    assert not {"UNPACK", "SPLIT_V", "PACK"} & set(own_after), own_after
    x = np.random.default_rng(0).integers(-128, 128, (8, *fixed.inputs[0].shape[1:]), dtype=np.int8)
    for sample in x:
        assert np.array_equal(_outputs(original, sample[None]), _outputs(swapped, sample[None])), name


def test_qf305_fix_says_what_the_conversion_does(models):
    """QF305's fix text claims the PACK swap only for a layer that returns its sequence, and only
    on a target whose PACK refuses the batch axis (the Edge TPU, not int8)."""
    from qfix.jobs.check import Options, context
    from qfix.model.archive import read_archive
    from qfix.model.graph import build_graph
    from qfix.rules.lint import lint
    from qfix.targets import load_profile

    def fix_texts(name: str, target: str) -> dict[str, str]:
        a = read_archive(models[name])
        found = lint(build_graph(a.config, a.dialect), context(load_profile(target), Options()))
        return {v.location.layer: v.fix.description for v in found if v.code == "QF305"}

    stacks = "stacks the returned sequence on axis 1"
    assert stacks in fix_texts("k3_seq_rnn", "edgetpu")["rnn"]
    assert stacks in fix_texts("tfk_conv_seq_rnn", "edgetpu")["rnn"]
    assert stacks not in fix_texts("k3_conv_rnn", "edgetpu")["rnn"]
    texts = fix_texts("k3_gru_lstm", "edgetpu")
    assert stacks in texts["gru"] and stacks not in texts["lstm"]
    assert all(stacks not in t and "STRIDED_SLICE" not in t for t in fix_texts("k3_seq_rnn", "int8").values())
    assert "SPLIT (Coral Edge TPU has no SPLIT_V)" in fix_texts("tfk_gru", "edgetpu")["gru"]
    assert "SPLIT_V" not in fix_texts("k3_seq_rnn", "edgetpu")["rnn"]  # Keras 3's GRU/LSTM split with SPLIT

    # A ConvLSTM2D's steps come from a 5-D input: still cut on the Edge TPU, and the fix says so
    from qfix.model.cases import functional_config

    def conv_lstm(rank: int):
        shape = (None, 3, *([8] * rank), 2)
        return functional_config([("x", shape, "float32")],
                                 [("c", f"ConvLSTM{rank}D", {"filters": 2, "kernel_size": 3, "padding": "same"},
                                   ["x"], "float32", (None, *([8] * rank), 2))], ["c"])

    def conv_fix(rank: int, target: str) -> str:
        (v,) = [v for v in lint(build_graph(conv_lstm(rank), "keras3"), context(load_profile(target), Options()))
                if v.code == "QF305"]
        return v.fix.description

    assert "maps only the 3 innermost: the graph is still cut at this layer" in conv_fix(2, "edgetpu")
    assert "5-D input" in conv_fix(2, "edgetpu")
    assert "still cut" not in conv_fix(1, "edgetpu")  # (1, T, W, C): within the 3 innermost
    assert "still cut" not in conv_fix(2, "int8")
