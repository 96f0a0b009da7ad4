"""The real compilers behind target profiles, chosen by the profile's `toolchain.name`.

A compiler module has `NAME` (the toolchain name it implements), `available()` (its binary
on this machine, or None), `run(tflite_bytes)` (a result with `to_json()`, or None when it is
not installed) and `compare(placement, result)` (where it and the profile disagree). A target
whose toolchain has no module here is judged by its profile alone.

Optional, for a runtime that runs the model rather than a compiler that maps it:
`KIND = "runtime"`; `NEEDS_SAMPLES = True` (then `run(tflite_bytes, samples, timeout,
memory_limit)` gets the integer tensors LiteRT was fed and gave, `Fidelity.raw`); `MEASURES`
(the `--memory` kinds it measures) with `memory(result)` -> {kind: (bytes, what)}.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from qfix.targets.compilers import edgetpu, tflm

if TYPE_CHECKING:  # pragma: no cover
    from qfix.targets import Profile

COMPILERS: dict[str, ModuleType] = {m.NAME: m for m in (edgetpu, tflm)}


def find(profile: "Profile") -> ModuleType | None:
    """The compiler wrapper for the profile's toolchain, None when qfix has none for it."""
    return COMPILERS.get(str(profile.toolchain.get("name", "")))


def verdict_source(profile: "Profile") -> str:
    """How `--check` obtains this target's verdict, for `qfix targets`: the real tool when
    qfix has a module for the profile's toolchain, else the profile (with the profile's
    `toolchain.note`, e.g. why no real check is possible here)."""
    compiler = find(profile)
    note = profile.toolchain.get("note")
    if compiler is None:
        return f"profile only ({note})" if note else "profile only"
    if getattr(compiler, "KIND", "compiler") == "runtime":
        return f"real runtime ({compiler.NAME} interpreter) when installed, else profile"
    return f"real compiler ({compiler.NAME}) when on PATH, else profile"


def runtime_for(profile: "Profile") -> ModuleType | None:
    """The profile's runtime that runs the converted model on the samples LiteRT ran
    (`NEEDS_SAMPLES`: the TFLM interpreter), or None."""
    real = find(profile)
    return real if getattr(real, "NEEDS_SAMPLES", False) else None


def measures(profile: "Profile") -> frozenset[str]:
    """The `--memory` kinds a run for this target measures: the .tflite's size (flash) always;
    more when the profile's real tool reports them (the TFLM tensor arena: ram)."""
    compiler = find(profile)
    return frozenset({"flash"}) | getattr(compiler, "MEASURES", frozenset())
