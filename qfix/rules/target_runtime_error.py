"""QF309 target-runtime-error: the target's real runtime cannot run the converted model (verify).

## What it does
Runs the converted model in the target's own runtime when qfix has it (the TFLite Micro
interpreter, `pip install --pre tflite-micro`), on the calibration samples, in a child
process, and fires when the interpreter cannot build the model, allocate its tensors or
invoke it, or crashes. The message carries the runtime's own words ("Didn't find op for
builtin opcode", "Node ARG_MAX (number 2) failed to invoke with status 1").

## Why is this bad?
The op table predicts; the runtime decides. A kernel that refuses a tensor type, an op
version it does not know or an output dtype it cannot write (ARG_MAX with an int64 output
on TFLM: "Only int32_t are supported currently") passes an op-name check and still stops
the model on the device.

## Example
A Conv2D with `activation="gelu"` for TFLM: the converter writes a GELU op, which TFLM does
not register, and the interpreter stops before the first sample: "Didn't find op for
builtin opcode 'GELU'" (QF302 predicts it from the model; the runtime confirms it).

## Use instead
What the runtime's message names: an op it registers (the static rules' fixes, e.g. gelu's
tanh approximation), a supported dtype, or a layer qfix's other rules can rewrite.

## Fix safety
Display-only.

## Targets
Targets whose profile's toolchain is a runtime qfix can run (`toolchain.name` naming a
module with `KIND = "runtime"` in `qfix/targets/compilers/`). Without it installed, the
profile's verdict stands alone.
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.rules.base import VerifyRule
from qfix.types import Violation


class TargetRuntimeError(VerifyRule):
    """Converted-model side of QF309 target-runtime-error; documented once, in the module
    docstring (`qfix rule QF309`). Judged on the runtime's result (qfix.jobs.runtime)."""

    code = "QF309"
    name = "target-runtime-error"

    def check(self, placement, profile) -> Iterable[Violation]:
        return ()  # needs the runtime's result: see judge()

    def judge(self, compiler: dict[str, Any] | None, target_name: str) -> Iterable[Violation]:
        """`compiler`: the verification's `compiler` entry (a runtime's `result` inside)."""
        if not compiler or compiler.get("kind") != "runtime":
            return
        result = compiler.get("result") or {}
        if result.get("ok") or result.get("skipped"):
            return  # ran, or qfix did not start it (its reason is in the report, not the runtime's)
        yield self.violation(f"the {compiler.get('used')} interpreter cannot run the model for {target_name}: "
                             f"{result.get('error')}", None)
