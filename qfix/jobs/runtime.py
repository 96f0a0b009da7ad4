"""Judging what the target's real runtime and the memory budget say about a verified
conversion: QF309 (the runtime cannot run the model), QF410 (its outputs are more than one
quantization step from LiteRT's) and QF310 (over the `--memory` budget).

Pure Python over the verification's `compiler` and `memory` entries: no TensorFlow here.
"""

from __future__ import annotations

from typing import Any

from qfix.rules.memory_budget import MemoryBudgetExceeded
from qfix.rules.runtime_output_mismatch import RuntimeOutputMismatch
from qfix.rules.target_runtime_error import TargetRuntimeError
from qfix.targets import Profile
from qfix.targets.compilers import find, measures
from qfix.targets.memory import MemoryBudget
from qfix.types import QfixError, Violation


def check_budget(budget: MemoryBudget | None, profile: Profile) -> None:
    """QF914 when the budget names a memory this target's run never measures (`ram` needs a
    runtime or compiler that reports it: TFLM's arena, Vela's SRAM estimate): a check that cannot
    fail would read as a pass."""
    if budget is None:
        return
    known = measures(profile)
    if budget.ram is not None and "ram" not in known:
        tool = find(profile)
        why = (f"its toolchain ({profile.toolchain.get('name') or 'none'}) reports no RAM figure" if tool is None
               else f"{tool.NAME} reports no RAM figure")
        raise QfixError("QF914", f"--memory ram=...: target {profile.id} measures flash only (the .tflite size); "
                                 f"{why}. RAM is measured for targets whose runtime or compiler reports it (see qfix targets)")


def runtime_findings(ver: Any, profile: Profile, budget: MemoryBudget | None) -> list[Violation]:
    """QF309, QF410 and QF310 for the verified conversion `ver` (qfix.jobs.prove.Verification)."""
    out = list(TargetRuntimeError().judge(ver.compiler, profile.name))
    out += RuntimeOutputMismatch().judge(ver.compiler)
    out += MemoryBudgetExceeded().judge(ver.memory, budget)
    return out
