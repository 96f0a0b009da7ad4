"""QF410 runtime-output-mismatch: the target's runtime computes other numbers than LiteRT (verify).

## What it does
Feeds the target's real runtime (the TFLite Micro interpreter) the very integer tensors the
LiteRT interpreter was fed in the fidelity check and compares the outputs value by value.
Values within one quantization step of LiteRT's count as matching (two correct int8 kernels
may round a product differently); the finding fires when any value is further apart, and
gives the count and the largest difference in steps. The same inputs also run through
LiteRT's reference kernels (`OpResolverType.BUILTIN_REF`, the portable kernels TFLM's are
ported from): when TFLM matches those, the difference is the rounding of LiteRT's optimized
kernels (XNNPACK, ruy — seen up to 3 steps on RESIZE_BILINEAR and TRANSPOSE_CONV outputs), and
the finding is information, not a warning.

## Why is this bad?
qfix's numbers (SQNR, max error, top-1 agreement) are measured with LiteRT. When the
device's runtime computes something else, those numbers do not describe the device, and a
kernel that differs by several steps is a bug or an unsupported corner of it.

## Example
A kernel whose int8 implementation differs from LiteRT's (an activation computed with a
lookup table on one side and in fixed point on the other) moving some outputs by 3 steps.

## Use instead
Check the op the difference comes from (compare layer by layer with an intermediate
output), report it to the runtime's maintainers, or replace the op.

## Fix safety
Display-only.

## Targets
Targets whose profile's toolchain is a runtime qfix can run (`KIND = "runtime"`), when the
runtime ran the model.
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.rules.base import VerifyRule
from qfix.types import Severity, Violation


class RuntimeOutputMismatch(VerifyRule):
    """Converted-model side of QF410 runtime-output-mismatch; documented once, in the module
    docstring (`qfix rule QF410`). Judged on the runtime's result (qfix.jobs.runtime)."""

    code = "QF410"
    name = "runtime-output-mismatch"

    def check(self, placement, profile) -> Iterable[Violation]:
        return ()  # needs the runtime's result: see judge()

    def judge(self, compiler: dict[str, Any] | None) -> Iterable[Violation]:
        if not compiler or compiler.get("kind") != "runtime":
            return
        r = compiler.get("result") or {}
        if not r.get("ok") or not r.get("beyond_one_step"):
            return
        worst = max(r.get("outputs") or [{}], key=lambda o: o.get("max_abs_diff", 0))
        steps = "" if r.get("max_diff_steps") is None else f", up to {r['max_diff_steps']} step(s) apart"
        ref = r.get("reference_kernels") or {}
        disagree = (f"{compiler.get('used')} and LiteRT disagree on {r['beyond_one_step']} of {r['values']} output "
                    f"value(s) by more than one quantization step{steps} (worst output {worst.get('name')!r}, "
                    f"{r['samples']} samples)")
        if not ref.get("error") and ref.get("values") and not ref.get("beyond_one_step"):
            # TFLM computes what the reference kernels compute: the optimized kernels round otherwise.
            yield self.violation(
                f"{disagree}, yet it matches LiteRT's reference kernels ({ref['differing']} of {ref['values']} "
                "values differ, none by more than one step): the difference is the rounding of LiteRT's optimized "
                "kernels, which qfix's numbers were measured with; on the device expect the reference's values",
                None, Severity.INFO)
            return
        yield self.violation(f"{disagree}: qfix's numbers are LiteRT's, not the device's", None, Severity.WARNING)
