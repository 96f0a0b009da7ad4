"""The JSON report: one object per run, model or source, with stable keys (README.md, "JSON
report"). Both shapes share `schema`, `qfix_version`, `input`, `target`, `findings` (the same
finding objects, `Violation.to_json`) and `exit_code`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from qfix import __version__
from qfix.report.text import unsafe_fixes_left

if TYPE_CHECKING:  # the model front end must not load libcst
    from qfix.source.runner import SourceRun

SCHEMA = 1


def source_json(run: SourceRun) -> dict[str, Any]:
    """A source run: `findings` are what the files hold now, plus, after --write, the findings
    whose fix was written (`applied: true`)."""
    return {
        "schema": SCHEMA,
        "qfix_version": __version__,
        "input": list(run.paths),
        "target": run.target,
        "findings": [v.to_json() for v in (*run.fixed, *run.shown)],
        "files": {"checked": run.checked, "written": run.written},
        "exit_code": run.exit_code,
    }


def check_json(result, outputs: dict[str, Any] | None = None, float_equivalence: Any = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from qfix.targets.compilers import verdict_source  # model runs only (it loads the check)

    ver = result.verification
    return {
        "schema": SCHEMA,
        "qfix_version": __version__,
        "input": str(result.path),
        "dialect": result.archive.dialect,
        "keras_version": result.archive.keras_version,
        "target": result.profile.id,
        "verdict_source": verdict_source(result.profile),
        "findings": [v.to_json() for v in result.findings],
        "outputs": outputs or {"model": None, "tflite": None},
        "verification": ver.to_json() if ver else {"converted": False, "reason": result.not_converted},
        "float_equivalence": float_equivalence,
        "input_quantization": result.input_quantization,
        "unsafe_fixes_available": unsafe_fixes_left(result.findings),
        "memory_budget": result.budget.to_json() if result.budget else None,
        "exit_code": result.exit_code(),
        **(extra or {}),
    }


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, default=str, allow_nan=False)


def fix_json(run) -> dict[str, Any]:
    """The main job's report: the check keys (for the fixed model) plus the rewrites."""
    fe = run.float_equivalence
    out = check_json(run.result, outputs=run.outputs,
                     float_equivalence=None if fe is None else {
                         "max_abs_diff": fe,
                         "samples": run.result.verification.fidelity.samples if run.result.verification else 0,
                         "unsafe": any(f.applicability == "unsafe" for f in run.active),
                         "tolerance": run.tolerance})
    if run.unsafe:
        out["unsafe_fixes_available"] = []
    out["fixes"] = [f.to_json() for f in run.fixes]
    out["not_applied"] = run.skipped
    out["before"] = run.before.to_json() if run.before is not None else None
    out["before_failure"] = run.before_failure
    out["float_reference_failure"] = run.float_reference_failure
    out["model_not_written"] = run.not_written
    out["batch_note"] = run.batch_note
    return out
