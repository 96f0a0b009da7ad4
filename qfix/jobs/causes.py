"""One cause, one blocker: when the verification proves a cause the static rules predicted, the
report keeps one blocker for it, the verification's. The same cause means the same op: the
prediction's ops (`Violation.ops`) and the QF304's meet on the same layer.

A missing op shows up up to three times: the static prediction (QF302 unsupported-activation,
QF303 unsupported-layer), the converted model's op (QF304 target-op-unsupported) and, for a
target with a runtime, the runtime refusing to load it (QF309 target-runtime-error, e.g. TFLM's
"Didn't find op for builtin opcode 'GELU'"). QF304 names ops the converted model does contain,
so it stays the blocker; the runtime's words join it, and the prediction becomes a warning that
points to it (it keeps its fix: the rewrite is still the remedy).
"""

from __future__ import annotations

import re
from typing import Any

from qfix.types import Severity, Violation

# Static rules whose finding is a prediction of an op the target lacks, made from the config.
PREDICTS_OPS = frozenset({"QF302", "QF303"})


def one_blocker_per_cause(findings: list[Violation], ver: Any) -> list[Violation]:
    """`findings` with each proven cause reported once (see the module docstring); `ver` is the
    run's qfix.jobs.prove.Verification. Returns the new list; findings are edited in place."""
    proven: dict[str, set[str]] = {}  # layer -> the ops a QF304 blocker finds off target there
    for v in findings:
        if v.code == "QF304" and v.severity == Severity.BLOCKER and v.location.layer is not None:
            proven.setdefault(v.location.layer, set()).update(v.ops)
    out: list[Violation] = []
    for v in findings:
        if v.code == "QF309" and v.severity == Severity.BLOCKER and _fold_runtime(v, findings, ver):
            continue
        # The same cause: the layer's QF304 names an op the prediction named (an unrolled GRU's
        # PACK does not prove its WHILE).
        if (v.code in PREDICTS_OPS and v.severity == Severity.BLOCKER and not v.applied
                and set(v.ops) & proven.get(v.location.layer, set())):
            v.severity = Severity.WARNING
            v.message = f"{v.message} (the converted model proves it: QF304 on {v.location.layer!r} is the blocker)"
        out.append(v)
    return out


def _fold_runtime(runtime: Violation, findings: list[Violation], ver: Any) -> bool:
    """Put a runtime's refusal into the QF304 blocker of the op it names; False when it names
    none of them (then it is a cause of its own and stays)."""
    error = str(((ver.compiler or {}).get("result") or {}).get("error") or "")
    named = set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", error))
    for v in findings:
        if v.code != "QF304" or v.severity != Severity.BLOCKER:
            continue
        ops = set(re.findall(r"\b([A-Z][A-Z0-9_]{2,}) \(op ", v.message))
        if ops & named:
            tool = (ver.compiler or {}).get("used") or "the runtime"
            v.message = f"{v.message} — {tool}: {error}"
            return True
    return False
