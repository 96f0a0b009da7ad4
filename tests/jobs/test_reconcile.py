"""A static blocker the verification's placement contradicts does not stay a blocker: on a full
run (every op on target) and, layer by layer, on a partial run (issue 13, item 1)."""

from __future__ import annotations

from qfix.jobs.check import reconcile
from qfix.jobs.prove import Verification
from qfix.targets.check import OpPlacement, Placement
from qfix.types import Location, Severity, Violation


def _placement(ops: list[tuple[str, str | None, bool]]) -> Placement:
    placed = [OpPlacement(i, op, 1, layer, on, "mapped" if on else "no NPU kernel", "")
              for i, (op, layer, on) in enumerate(ops)]
    first = next((p for p in placed if not p.on_target), None)
    return Placement("my_npu", len(placed), sum(p.on_target for p in placed), first is None,
                     None if first is None else {"op": first.op, "layer": first.layer}, [], [], placed, [])


def _qf302(layer: str) -> Violation:
    return Violation("QF302", "unsupported-activation", f"Conv2D {layer!r} uses relu (RELU)", Location(layer=layer),
                     severity=Severity.BLOCKER)


def test_a_static_blocker_on_a_layer_the_placement_puts_on_target_becomes_a_warning():
    ver = Verification(_placement([("CONV_2D", "c1", True), ("CONV_2D", "c1", True), ("GELU", "g", False)]),
                       None, None, 0.0)
    on, off, unseen = _qf302("c1"), _qf302("g"), _qf302("nowhere")
    reconcile([on, off, unseen], ver)
    assert on.severity == Severity.WARNING and "every op of 'c1'" in on.message
    assert off.severity == Severity.BLOCKER and unseen.severity == Severity.BLOCKER


def test_a_layer_with_one_op_off_target_keeps_its_blocker():
    ver = Verification(_placement([("CONV_2D", "c1", True), ("RELU", "c1", False)]), None, None, 0.0)
    v = _qf302("c1")
    reconcile([v], ver)
    assert v.severity == Severity.BLOCKER


def test_a_full_run_disproves_every_static_blocker():
    ver = Verification(_placement([("CONV_2D", "c1", True)]), None, None, 0.0)
    v = _qf302("elsewhere")
    reconcile([v], ver)
    assert v.severity == Severity.WARNING and "runs fully on the target" in v.message
