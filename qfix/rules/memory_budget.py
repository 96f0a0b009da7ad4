"""QF310 memory-budget-exceeded: the converted model does not fit the device's memory (verify).

## What it does
With `--memory flash=SIZE,ram=SIZE`, compares what the run measured with the budget: flash
with the converted `.tflite` (the flatbuffer a TFLite Micro application links in as a C
array), or with Vela's output `.tflite` on an Ethos-U target (the file the device flashes);
RAM with the tensor arena the real TFLM interpreter needed for the model, or with Vela's SRAM
estimate on an Ethos-U target. Sizes:
B, KB = KiB = 1024 B, MB = MiB = 1024² B (as microcontroller datasheets count). When the
runtime that measures the arena did not run (not installed, or the model failed in it), a
RAM budget cannot be shown to hold: that fires too, saying so.

## Why is this bad?
A model that is over its flash does not link; one whose arena is over the RAM fails in
`AllocateTensors()` on the device ("Failed to allocate memory"), after the firmware is
built.

## Example
`qfix model.keras --target tflm --memory flash=256KB,ram=64KB` for a Cortex-M4 with 256 KiB of
flash and 64 KiB of SRAM, on a model whose arena is 96 KiB.

## Use instead
A smaller model (fewer channels, a smaller input), or activations that live shorter
(TFLM's arena holds the tensors alive at the same time: a wide early layer costs most).

## Fix safety
Display-only.

## Targets
Every target for flash (the `.tflite` size, or the real compiler's output where it writes
one). RAM only where the target's real runtime or compiler measures it (the compiler module's
`MEASURES`): qfix refuses `ram=` elsewhere (QF914).
"""

from __future__ import annotations

from typing import Any, Iterable

from qfix.rules.base import VerifyRule
from qfix.targets.memory import MemoryBudget, format_bytes
from qfix.types import Violation


class MemoryBudgetExceeded(VerifyRule):
    """Converted-model side of QF310 memory-budget; documented once, in the module docstring
    (`qfix rule QF310`). Judged on the measured sizes (qfix.jobs.runtime)."""

    code = "QF310"
    name = "memory-budget-exceeded"

    def check(self, placement, profile) -> Iterable[Violation]:
        return ()  # needs the measured sizes and the budget: see judge()

    def judge(self, measured: dict[str, dict[str, Any]], budget: MemoryBudget | None) -> Iterable[Violation]:
        """`measured`: the verification's `memory` (kind -> {"bytes", "what"})."""
        if budget is None:
            return
        for kind, limit in (("flash", budget.flash), ("ram", budget.ram)):
            got = measured.get(kind)
            if limit is None:
                continue
            if got is None:  # the runtime that measures it did not run (not installed, or failed)
                yield self.violation(f"--memory {kind}={format_bytes(limit)}: not measured in this run (the "
                                     "runtime that measures it did not run the model), so the model is not "
                                     "shown to fit", None)
            elif got["bytes"] > limit:
                yield self.violation(
                    f"{kind}: {got['what']} needs {format_bytes(got['bytes'])} ({got['bytes']:,} bytes), over the "
                    f"budget of {format_bytes(limit)} ({limit:,} bytes) by {got['bytes'] - limit:,} bytes", None)
