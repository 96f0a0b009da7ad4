"""The placement lines of the text report (issue 13, item 7): a float16 target has no float
islands to count, and an islands target cuts nothing, so it lists its CPU ops instead of a
"first unsupported"."""

from __future__ import annotations

from rich.console import Console

from qfix.jobs.prove import Verification
from qfix.report.text import render_verification
from qfix.targets.check import OpPlacement, Placement


def _text(spread: str, integer: bool) -> str:
    ops = [OpPlacement(0, "CONV_2D", 1, "c", True, "on", ""),
           OpPlacement(1, "WHILE", 1, "lstm", False, "falls back to the CPU", "WHILE is not in the op table")]
    first = {"op": "WHILE", "layer": "lstm", "reason": "WHILE is not in the op table", "index": 1,
             "status": "falls back to the CPU", "fix_hint": None}
    fallback = [{"index": 1, "op": "WHILE", "layer": "lstm", "status": "falls back to the CPU",
                 "reason": "WHILE is not in the op table"}] if spread == "islands" else []
    pl = Placement("t", 2, 1, False, first, [], [], ops, [], fallback=fallback, spread=spread, integer=integer)
    console = Console(record=True, width=200)
    render_verification(Verification(pl, None, None, 1.0, recipe="r"), console)
    return console.export_text()


def test_a_float16_islands_target_counts_no_float_tensors_and_names_no_cut():
    out = _text("islands", integer=False)
    assert "placement: 1/2 ops on target, converted in 1.0s" in out and "float tensor" not in out
    assert "first unsupported" not in out
    assert "falls back to the CPU: WHILE (op 1) from layer 'lstm' — WHILE is not in the op table" in out


def test_a_single_cut_integer_target_keeps_both():
    out = _text("prefix", integer=True)
    assert "placement: 1/2 ops on target, 0 float tensor(s), converted in 1.0s" in out
    assert "first unsupported: WHILE (op 1) from layer 'lstm'" in out
