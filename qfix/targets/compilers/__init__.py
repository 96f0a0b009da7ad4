"""The real compilers behind target profiles, chosen by the profile's `toolchain.name`.

A compiler module has `NAME` (the toolchain name it implements), `available()` (its binary
on this machine, or None), `run(tflite_bytes)` (a result with `to_json()`, or None when it is
not installed) and `compare(placement, result)` (where it and the profile disagree). A target
whose toolchain has no module here is judged by its profile alone.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from qfix.targets.compilers import edgetpu

if TYPE_CHECKING:  # pragma: no cover
    from qfix.targets import Profile

COMPILERS: dict[str, ModuleType] = {m.NAME: m for m in (edgetpu,)}


def find(profile: "Profile") -> ModuleType | None:
    """The compiler wrapper for the profile's toolchain, None when qfix has none for it."""
    return COMPILERS.get(str(profile.toolchain.get("name", "")))


def verdict_source(profile: "Profile") -> str:
    """How `--check` obtains this target's verdict, for `qfix targets`."""
    compiler = find(profile)
    if compiler is None:
        return "profile only"
    return f"real compiler ({compiler.NAME}) when on PATH, else profile"
