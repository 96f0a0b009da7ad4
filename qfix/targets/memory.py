"""Memory budgets (`--memory flash=1MB,ram=256KB`) and byte counts for reports.

Units, case-insensitive: B; KB and KiB = 1024 bytes; MB and MiB = 1024² bytes; GB and GiB =
1024³ bytes (the DRAM of an Ethos-U65/U85 system). KB, MB and GB
follow the JEDEC usage for memory (JESD100B.01; recalled), as datasheets write it: "256 KB
SRAM" is 262,144 bytes, so a budget copied from a datasheet means what the chip has. A bare
number is bytes. Decimals are allowed (`1.5MB`); the budget is rounded down to whole bytes.

- `flash`: bytes for the model itself, compared with the converted `.tflite` (a TFLM
  application links the flatbuffer into flash as a C array; code size is not counted).
- `ram`: bytes for the tensor arena, compared with the arena the real TFLM interpreter needed
  (measured only by a target whose runtime reports it: `MEASURES` of its compiler module).

Pure Python: the CLI parses the option before anything is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from qfix.types import QfixError

UNITS = {"b": 1, "kb": 1024, "kib": 1024, "mb": 1024 ** 2, "mib": 1024 ** 2, "gb": 1024 ** 3, "gib": 1024 ** 3}
KINDS = ("flash", "ram")
# ASCII digits only: Python's float() and Decimal() also read other scripts' digits ("١").
_ITEM = re.compile(r"([A-Za-z]+)\s*=\s*([0-9]{1,15}(?:\.[0-9]{1,9})?)\s*([A-Za-z]*)")
# A signed size (`ram=-1`, `flash=+2MB`): said to be wrong as a size, not as a form.
_SIGNED = re.compile(r"([A-Za-z]+)\s*=\s*([-+])\s*[0-9.]+\s*[A-Za-z]*")
_MAX_BYTES = 1 << 50  # a petabyte: beyond any device, and far from float rounding
USAGE = "expected --memory flash=SIZE,ram=SIZE with SIZE like 1MB, 256KB, 512KiB or 4096 (bytes)"


@dataclass(frozen=True)
class MemoryBudget:
    """What the device has: `flash` and `ram` in bytes (None: that one is not limited)."""

    flash: int | None = None
    ram: int | None = None

    def to_json(self) -> dict[str, int | None]:
        return {"flash_bytes": self.flash, "ram_bytes": self.ram}

    def __str__(self) -> str:
        return ", ".join(f"{k} {format_bytes(v)}" for k, v in (("flash", self.flash), ("ram", self.ram)) if v)


def parse_memory(text: str) -> MemoryBudget:
    """`flash=1MB,ram=256KB` (either part may be left out) -> MemoryBudget. Raises QfixError
    QF914 naming the part that is wrong: an unknown kind, a unit, a number, a repeat, zero."""
    if not isinstance(text, str) or not text.strip():
        raise QfixError("QF914", f"--memory is empty; {USAGE}")
    found: dict[str, int] = {}
    for item in text.split(","):
        part = item.strip()
        if not part:
            raise QfixError("QF914", f"--memory {text!r:.80}: an empty item between commas; {USAGE}")
        m = _ITEM.fullmatch(part)
        if m is None:
            signed = _SIGNED.fullmatch(part)
            if signed is not None:
                raise QfixError("QF914", f"--memory {signed.group(1).lower():.30}: {part.split('=', 1)[1].strip()!r:.30}"
                                         " must be positive (a size with no sign, like 256KB)")
            raise QfixError("QF914", f"--memory item {part!r:.60} is not KIND=SIZE; {USAGE}")
        kind, number, unit = m.group(1).lower(), m.group(2), m.group(3).lower() or "b"
        if kind not in KINDS:
            raise QfixError("QF914", f"--memory: unknown memory {m.group(1)!r:.30} (known: flash, ram)")
        if kind in found:
            raise QfixError("QF914", f"--memory: {kind} is given twice")
        if unit not in UNITS:
            raise QfixError("QF914", f"--memory {kind}: unknown unit {m.group(3)!r:.20} (B, KB, MB, GB, KiB, MiB, GiB)")
        try:
            size = int(Decimal(number) * UNITS[unit])
        except InvalidOperation:  # pragma: no cover  (the pattern admits plain decimals only)
            raise QfixError("QF914", f"--memory {kind}: {number!r} is not a number") from None
        if size <= 0:
            raise QfixError("QF914", f"--memory {kind}: {number}{m.group(3)} is less than one byte")
        if size > _MAX_BYTES:
            raise QfixError("QF914", f"--memory {kind}: {number}{m.group(3)} is more than any device has")
        found[kind] = size
    return MemoryBudget(found.get("flash"), found.get("ram"))


def format_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'; exact bytes below 1 KiB; None -> 'unknown'."""
    if n is None:
        return "unknown"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"
