"""One cause, one blocker (issue 13, items 2 and 5): QF304 gives one row per layer and cause,
an all-or-nothing failure is summarised in the cause's row, a runtime's refusal of the same op
joins that row, and the static prediction of it becomes a warning pointing there."""

from __future__ import annotations

from qfix.jobs.causes import one_blocker_per_cause
from qfix.jobs.check import reconcile
from qfix.jobs.prove import Verification
from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.rules.base import Context
from qfix.rules.target_op_unsupported import TargetOpUnsupported
from qfix.rules.unsupported_layer import UnsupportedLayer
from qfix.targets import load_profile
from qfix.targets.check import OpPlacement, Placement
from qfix.types import Location, Severity, Violation


def _placement(profile, ops) -> Placement:
    """ops: (op, layer, on_target, reason, spread)."""
    placed = [OpPlacement(i, op, 1, layer, on, "" if on else "off", reason, spread=spread)
              for i, (op, layer, on, reason, spread) in enumerate(ops)]
    first = next((p for p in placed if not p.on_target and not p.spread), None)
    return Placement(profile.id, len(placed), sum(p.on_target for p in placed), first is None,
                     None if first is None else {"op": first.op, "layer": first.layer, "index": first.index,
                                                 "reason": first.reason}, [], [], placed, [])


def test_keras3_lstm_is_predicted_as_the_while_loop_it_converts_to():
    gpu = load_profile("gpu")
    config = functional_config([("x", (1, 5, 4), "float32")], [("lstm", "LSTM", {"units": 4}, ["x"])], ["lstm"])
    (k3,) = UnsupportedLayer().check(build_graph(config, "keras3"), Context(gpu))
    assert "becomes WHILE" in k3.message and "UNIDIRECTIONAL_SEQUENCE_LSTM" not in k3.message


def test_gpu_lstm_gives_one_blocker():
    gpu = load_profile("gpu")
    pl = _placement(gpu, [("FULLY_CONNECTED", "fc", True, "", False),
                          ("WHILE", "lstm", False, "WHILE is not in the op table", False),
                          ("STRIDED_SLICE", "lstm", False, "Slice does not support shrink_axis_mask", False),
                          ("STRIDED_SLICE", "lstm", False, "Slice does not support shrink_axis_mask", False)])
    qf304 = list(TargetOpUnsupported().check(pl, gpu))
    assert [v.message for v in qf304] == [
        "WHILE (op 1), STRIDED_SLICE (op 2, 3) from layer 'lstm': WHILE: WHILE is not in the op table; "
        "STRIDED_SLICE: Slice does not support shrink_axis_mask — falls back to the CPU"]
    qf303 = Violation("QF303", "unsupported-layer", "LSTM 'lstm' becomes WHILE", Location(layer="lstm"), ops=("WHILE",))
    ver = Verification(pl, None, None, 0.0)
    findings = [qf303, *qf304]
    reconcile(findings, ver)
    findings = one_blocker_per_cause(findings, ver)
    assert [(v.code, v.severity) for v in findings] == [("QF303", Severity.WARNING), ("QF304", Severity.BLOCKER)]
    assert "QF304 on 'lstm' is the blocker" in qf303.message


def test_a_qf304_about_another_op_of_the_layer_proves_nothing():
    """The same cause means the same op: an unrolled GRU's PACK (QF304, the Edge TPU's cut) does
    not prove QF303's WHILE on the same layer, which stays as it was (review: "proves it" on a
    QF304 about PACK). The rules name the ops: QF303's WHILE, QF304's PACK."""
    edgetpu = load_profile("edgetpu")
    config = functional_config([("x", (1, 5, 4), "float32")], [("gru", "GRU", {"units": 4}, ["x"])], ["gru"])
    (qf303,) = UnsupportedLayer().check(build_graph(config, "keras3"), Context(edgetpu))
    assert qf303.ops == ("WHILE",)
    pl = _placement(edgetpu, [("FULLY_CONNECTED", "gru", True, "", False),
                              ("PACK", "gru", False, "No packing in batch dimension.", False),
                              ("FULLY_CONNECTED", "dense", False, "after the cut", True)])
    qf304 = list(TargetOpUnsupported().check(pl, edgetpu))
    assert [v.ops for v in qf304] == [("PACK",)]
    ver = Verification(pl, None, None, 0.0)
    findings = one_blocker_per_cause([qf303, *qf304], ver)
    assert [(v.code, v.severity) for v in findings] == [("QF303", Severity.BLOCKER), ("QF304", Severity.BLOCKER)]
    assert "proves it" not in qf303.message


def test_tflm_missing_op_gives_one_blocker_with_the_runtime_s_words():
    tflm = load_profile("tflm")
    spread = "the model fails on op 1 (GELU), so nothing runs"
    ops = [("CONV_2D", "c1", False, spread, True), ("GELU", "gelu", False, "GELU is not in the op table", False)]
    ops += [("MEAN", f"l{i}", False, spread, True) for i in range(14)]
    pl = _placement(tflm, ops)
    error = "RuntimeError: TFLM failed to allocate tensors: Didn't find op for builtin opcode 'GELU'"
    ver = Verification(pl, None, {"used": "tflite-micro", "kind": "runtime", "result": {"ok": False, "error": error}}, 0.0)
    qf302 = Violation("QF302", "unsupported-activation", "Activation 'gelu' uses gelu (GELU)", Location(layer="gelu"),
                      ops=("GELU",))
    qf309 = Violation("QF309", "target-runtime-error", f"the tflite-micro interpreter cannot run the model: {error}")
    findings = [qf302, *TargetOpUnsupported().check(pl, tflm), qf309]
    reconcile(findings, ver)
    findings = one_blocker_per_cause(findings, ver)
    blockers = [v for v in findings if v.severity == Severity.BLOCKER]
    assert [v.code for v in blockers] == ["QF304"]
    (b,) = blockers
    assert b.message.startswith("GELU (op 1) from layer 'gelu': GELU is not in the op table")
    assert "the other 15 op(s) of the model do not run either" in b.message
    assert b.message.endswith(f"tflite-micro: {error}")
    assert [v.code for v in findings] == ["QF302", "QF304"]


def test_a_runtime_error_naming_no_blocked_op_stays():
    tflm = load_profile("tflm")
    pl = _placement(tflm, [("CONV_2D", "c1", True, "", False)])
    error = "RuntimeError: Dimension mismatch"
    ver = Verification(pl, None, {"used": "tflite-micro", "kind": "runtime", "result": {"ok": False, "error": error}}, 0.0)
    qf309 = Violation("QF309", "target-runtime-error", error)
    assert one_blocker_per_cause([qf309], ver) == [qf309] and qf309.severity == Severity.BLOCKER
