"""bench/targets.py's accounting: the per-target columns, the summary's "qfix below plain" and
disagreement counts, and `--report` over the committed results (bench/targets-results/).

Fast: no conversion; the rows are the shape `qfix_run`/`plain_runs` write, the report runs the
script as a user does.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "targets.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports its sibling _common
    try:
        spec = importlib.util.spec_from_file_location("bench_targets", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def placed(on: int, total: int, **more) -> dict:
    return {"converted": True, "ops_on_target": on, "ops_total": total, "fully_on_target": on == total,
            "first_unsupported": None if on == total else {"op": "MEAN", "layer": "gap", "reason": "Batch > 1"},
            "float_tensors": 0, **more}


def test_verification_keeps_what_each_target_adds(bench):
    ver = {"converted": True, "ops_total": 3, "ops_on_target": 3, "fully_on_target": True, "first_unsupported": None,
           "float_tensors": [], "fallback": [], "fidelity": {"sqnr_db": 30.0},
           "compiler": {"used": "tflite-micro", "kind": "runtime", "result": {
               "ok": True, "values": 8, "differing": 1, "beyond_one_step": 0, "max_diff_steps": 1,
               "arena_bytes": 2048, "arena_recorded": 1900, "model_bytes": 4000,
               "outputs": [{"index": 0, "name": "probs", "dtype": "int8", "values": 8, "differing": 1,
                            "beyond_one_step": 0, "max_diff_steps": 1, "max_abs_diff": 1.0}]}}}
    row = bench.verification(ver)
    assert row["tflm"]["outputs"] == [{"name": "probs", "dtype": "int8", "values": 8, "differing": 1,
                                       "beyond_one_step": 0, "max_diff_steps": 1, "max_abs_diff": 1.0}]
    assert "TFLM≠LiteRT 1/8 ≤1st; arena 2,048 B" in bench.specific(
        {"target": "tflm", "plain": None, "qfix": {"after": row}})
    vela = bench.verification({**ver, "compiler": {"used": "vela", "verdict": "vela", "disagreements": ["op 2 MEAN"],
                                                   "result": {"ok": True, "rejected": False, "estimates": None}}})
    assert vela["verdict"] == "vela" and vela["disagreements"] == ["op 2 MEAN"] and "tflm" not in vela
    assert bench.verification({"converted": False, "reason": "QF908"}) == {"converted": False, "reason": "QF908"}


def test_summary_counts_rows_below_plain_and_every_disagreement(bench):
    rows = [
        {"model": "m1", "target": "ethos-u55", "plain": placed(3, 4, disagreements=[]),
         "qfix": {"exit": 0, "before": placed(3, 4, disagreements=["op 1 X: vela NPU, profile CPU"]),
                  "after": placed(4, 4, disagreements=[])}},
        {"model": "m2", "target": "ethos-u55", "plain": placed(4, 4, disagreements=[]),
         "qfix": {"exit": 1, "after": placed(2, 4, disagreements=["op 3 MEAN: vela CPU (Batch > 1), profile NPU"])}},
        {"model": "m3", "target": "ethos-u55", "plain": {"target": "ethos-u55", "error": "QF908 no samples"},
         "qfix": {"exit": 2, "error": "QF908 no samples"}},
    ]
    text = bench.summary(rows)
    assert text.splitlines()[0] == (
        "ethos-u55: 3 models; fully on target plain 1, qfix before 0, after 1; op share after vs plain "
        "(2 with both): higher 1, lower 1; qfix exit 0/1/other: 1/1/1; profile vs Vela: 2 disagreement(s) "
        "in 20 op placements")
    assert "  qfix below plain: m2: 4/4 → 2/4" in text.splitlines()
    assert bench.disagreements(rows) == ["m1 ethos-u55 before: op 1 X: vela NPU, profile CPU",
                                         "m2 ethos-u55 after: op 3 MEAN: vela CPU (Batch > 1), profile NPU"]
    table = bench.table(rows)
    assert "m3" in table and "qfix exit 2: QF908 no samples" in table


def test_report_prints_every_committed_row():
    files = sorted((ROOT / "bench" / "targets-results").glob("*.json"))
    if not files:
        pytest.skip("no committed results")
    rows = [r for f in files for r in json.loads(f.read_text())]
    proc = subprocess.run([sys.executable, str(SCRIPT), "--report"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for r in rows:
        assert any(ln.startswith(f"{r['model']} ") and f" {r['target']} " in ln for ln in lines), (r["model"], r["target"])
    for target in {r["target"] for r in rows}:
        assert any(ln.startswith(f"{target}: ") for ln in lines), target
