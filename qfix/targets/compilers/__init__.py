"""The real compilers behind target profiles, chosen by the profile's `toolchain.name`.

A compiler module has `NAME` (the toolchain name it implements), `available()` (where it is
installed, or None), `run(tflite_bytes, **options)` (a result with `to_json()`, or None when it
is not installed) and `compare(placement, result)` (where it and the profile disagree). It may
also have `options(profile)` (the run's arguments the profile sets, e.g. Vela's accelerator
configuration), `apply(placement, result, profile)` (the compiler's placement becomes the
verdict, True when it did: Vela; without it the compiler only reports disagreements:
edgetpu_compiler),
`summary_line(result)` (one line for the text report) and `WHEN` (when it runs, for `qfix
targets`). A target whose toolchain has no module here is judged by its profile alone.
A compiler module has `NAME` (the toolchain name it implements), `available()` (its binary
on this machine, or None), `run(tflite_bytes)` (a result with `to_json()`, or None when it is
not installed) and `compare(placement, result)` (where it and the profile disagree). A target
whose toolchain has no module here is judged by its profile alone.

Optional, for a runtime that runs the model rather than a compiler that maps it:
`KIND = "runtime"`; `NEEDS_SAMPLES = True` (then `run(tflite_bytes, samples, timeout,
memory_limit)` gets the integer tensors LiteRT was fed and gave, `Fidelity.raw`); `MEASURES`
(the `--memory` kinds it measures) with `memory(result)` -> {kind: (bytes, what)}. A compiler
may have `MEASURES` and `memory(result)` too (Vela: its output's size, its SRAM estimate).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

from qfix.targets.compilers import edgetpu, tflm, vela

if TYPE_CHECKING:  # pragma: no cover
    from qfix.targets import Profile
    from qfix.targets.check import Placement

COMPILERS: dict[str, ModuleType] = {m.NAME: m for m in (edgetpu, tflm, vela)}


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
    if hasattr(compiler, "apply"):
        return f"real compiler ({compiler.NAME}) {getattr(compiler, 'WHEN', 'when installed')}, else profile"
    return f"real compiler ({compiler.NAME}) when on PATH, else profile"


def judge(profile: "Profile", tflite: bytes, placement: "Placement",
          progress: Callable[[str], None] = lambda _: None,
          compiled: dict[str, bytes] | None = None) -> dict[str, Any] | None:
    """Run the profile's compiler on `tflite` when it is installed: the report's `compiler`
    object (`used`, `result`, `disagreements` with the profile, `verdict`: whose placement
    `placement` now holds), or None when there is no compiler to run. A compiler with `apply`
    overwrites `placement` with its own when it ran. The file the compiler wrote (Vela's
    `_vela.tflite`) goes into `compiled`, keyed by its suffix, when a dict is given."""
    real = find(profile)
    if real is None or getattr(real, "KIND", "compiler") == "runtime" or real.available() is None:
        return None  # a runtime runs the model on samples after the numbers check (runtime_for)
    opts = real.options(profile) if hasattr(real, "options") else {}
    progress(f"compiling with {real.NAME}" + (f" ({', '.join(map(str, opts.values()))})" if opts else ""))
    result = real.run(tflite, **opts)
    if result is None:
        return None
    out = {"used": real.NAME, "result": result.to_json(), "disagreements": real.compare(placement, result),
           "verdict": "profile"}
    if compiled is not None and getattr(result, "output", None):
        compiled[getattr(real, "OUTPUT_SUFFIX", f"_{real.NAME}.tflite")] = result.output
    if hasattr(real, "apply") and real.apply(placement, result, profile):
        out["verdict"] = real.NAME
    if hasattr(real, "summary_line"):
        out["summary"] = real.summary_line(result)
    if hasattr(real, "notes"):  # how it was run, when the profile left it to a default
        placement.warnings.extend(real.notes(profile))
    if hasattr(real, "memory"):  # its --memory figures (Vela: its output's size, its SRAM estimate)
        out["memory"] = real.memory(result)
    return out


def runtime_for(profile: "Profile") -> ModuleType | None:
    """The profile's runtime that runs the converted model on the samples LiteRT ran
    (`NEEDS_SAMPLES`: the TFLM interpreter), or None."""
    real = find(profile)
    return real if getattr(real, "NEEDS_SAMPLES", False) else None


def measures(profile: "Profile") -> frozenset[str]:
    """The `--memory` kinds a run for this target measures: the .tflite's size (flash) always;
    more when the profile's real tool reports them (the TFLM tensor arena, Vela's SRAM
    estimate: ram)."""
    compiler = find(profile)
    return frozenset({"flash"}) | getattr(compiler, "MEASURES", frozenset())
