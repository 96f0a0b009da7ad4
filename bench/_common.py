"""Shared bits of the benchmarks: a cache of built application models and timed subprocesses."""

from __future__ import annotations

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
