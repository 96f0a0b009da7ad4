"""The report renderers on typed results: source text/concise/JSON from a SourceRun, and the
diffs of model configs and source text."""

from __future__ import annotations

import json

from qfix.report.diff import config_diff, unified_diff
from qfix.report.json_report import dumps, source_json
from qfix.report.source import format_violation, render_concise, render_text, summary
from qfix.source.runner import FileResult, SourceRun
from qfix.types import Applicability, Fix, Location, Violation


def finding(code: str, line: int, applicability: Applicability | None, description: str = "do this") -> Violation:
    fix = None if applicability is None else Fix(applicability, description)
    return Violation(code, "some-rule", f"message {code}", Location(path="/nowhere/a.py", line=line, col=3,
                                                                      end_line=line, end_col=9), fix=fix)


def run_of(*violations: Violation, write: bool = False) -> SourceRun:
    r = FileResult("/nowhere/a.py", violations=list(violations), remaining=list(violations))
    return SourceRun(["/nowhere"], "edgetpu", [r, FileResult("/nowhere/gen.py", skipped="generated")], write=write)


def test_text_puts_a_help_line_under_every_finding_with_a_fix():
    run = run_of(finding("QF202", 1, Applicability.SAFE, "use Rescaling"),
                 finding("QF501", 2, Applicability.UNSAFE, "use tf_keras"),
                 finding("QF302", 3, Applicability.DISPLAY_ONLY, "use relu"),
                 finding("QF205", 4, None))
    assert render_text(run) == [
        "/nowhere/a.py:1:3: QF202 [*] message QF202",
        "  help: use Rescaling",
        "/nowhere/a.py:2:3: QF501 message QF501",
        "  help: use tf_keras (unsafe fix: --write --unsafe-fixes)",
        "/nowhere/a.py:3:3: QF302 message QF302",
        "  help: use relu",
        "/nowhere/a.py:4:3: QF205 message QF205",
        "Found 4 issues in 1 file. [*] 1 fixable with --write. 1 more fix available with --write --unsafe-fixes. "
        "2 need manual attention.",
    ]
    assert render_concise(run) == [format_violation(v) for v in run.shown] + [summary(run)]


def test_a_clean_run_and_a_written_run_summaries():
    assert render_concise(run_of()) == ["All checks passed (1 file)."]
    done = finding("QF202", 1, Applicability.SAFE)
    done.applied = True
    left = finding("QF302", 3, Applicability.DISPLAY_ONLY)
    r = FileResult("/nowhere/a.py", violations=[done, left], remaining=[left], fixed=[done])
    run = SourceRun(["/nowhere/a.py"], None, [r], write=True, written=1, exit_code=1)
    assert summary(run) == "Found 2 issues (1 fixed in 1 file, 1 remaining)."
    data = json.loads(dumps(source_json(run)))
    assert [(f["code"], f["applied"]) for f in data["findings"]] == [("QF202", True), ("QF302", False)]
    assert data["files"] == {"checked": 1, "written": 1} and data["exit_code"] == 1 and data["target"] is None


def test_diffs():
    d = config_diff({"b": 1, "a": [1, 2]}, {"a": [1, 3], "b": 1}, "m.keras")
    assert d.startswith("--- a/m.keras/config.json\n+++ b/m.keras/config.json\n")
    assert "\n-  2\n+  3\n" in d and d.count("\n-") == 1  # keys sorted: only the changed value differs
    assert config_diff({"a": 1}, {"a": 1}, "m.keras") == ""
    layered = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "name": "x", "config": {"name": "x"}},
        {"class_name": "LeakyReLU", "name": "act", "config": {"name": "act"}},
        {"class_name": "Dense", "name": "gone", "config": {"name": "gone"}}]}}
    fixed = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "name": "x", "config": {"name": "x"}},
        {"class_name": "PReLU", "name": "act", "config": {"name": "act"}},
        {"class_name": "Add", "name": "new", "config": {"name": "new"}}]}}
    d = config_diff(layered, fixed, "m.keras")
    labels = [l[4:] for l in d.splitlines() if l.startswith("--- ")]
    # the model with its layer names, then each changed, added and removed layer on its own
    assert labels == ["a/m.keras/config.json", "a/m.keras/config.json#/config/layers/1",
                      "a/m.keras/config.json#/config/layers/2", "a/m.keras/config.json#/config/layers/2"]
    assert '-   "gone"\n+   "new"' in d and '- "class_name": "LeakyReLU",\n+ "class_name": "PReLU",' in d
    u = unified_diff("/nowhere/a.py", "x = 1\ny = 2\n", "x = 1\ny = 3\n")
    assert u.splitlines()[:2] == ["--- a/nowhere/a.py", "+++ b/nowhere/a.py"]
    assert u.endswith("-y = 2\n+y = 3\n")
