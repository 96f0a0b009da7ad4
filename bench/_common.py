"""Shared bits of the benchmarks: a cache of built application models and timed subprocesses."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fixtures/ and qfix/ from a checkout
CACHE = ROOT / "bench" / ".cache"


def built_application(name: str, dialect: str = "k3", size: int = 96) -> Path:
    """Build (once) a keras.applications model with weights=None, in a subprocess so the
    calling process never imports TensorFlow."""
    from fixtures.applications import application_path

    path = application_path(name, dialect, CACHE, size)
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        code = (f"from fixtures.applications import build_application; "
                f"build_application({name!r}, {dialect!r}, {str(CACHE)!r}, size={size})")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stderr=subprocess.DEVNULL)
    return path


def timed(cmd: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall time and peak RSS (MiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) // 1024, proc


def blocker(after: dict, width: int) -> str:
    """The first blocker of a qfix `verification` summary ({converted, fully_on_target,
    first_unsupported, float_tensors, reason}): "-", "OP @layer: reason", "N float tensors" or
    why it did not convert, cut to `width` characters."""
    if after.get("fully_on_target"):
        return "-"
    first = after.get("first_unsupported")
    if first:
        return f"{first['op']} @{first.get('layer')}: {first.get('reason')}"[:width]
    if after.get("converted"):
        return f"{after.get('float_tensors', 0)} float tensors"
    return str(after.get("reason") or "not converted")[:width]


def columns(head: tuple[str, ...], lines: list[tuple[str, ...]]) -> str:
    """A plain-text table: each column as wide as its widest cell, a dashed rule under the head."""
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*ln) for ln in lines)])


def save_rows(rows: list[dict], out: Path) -> None:
    """Write the rows as JSON atomically (a temp file, then rename): an interrupted run keeps its last file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(out)
