"""Codemod throughput (files/s) vs libcst's bare parse + print of the same files.

    python bench/bench_codemod.py [--limit N] [--target edgetpu] [--jobs 2] [--repeat 1]

Corpus: the installed sources of tensorflow_model_optimization, tf_keras and keras. The
codemod run is qfix's full source pipeline per file (read, parse, one batched visit of every
source rule, fixes until stable where a fix applies, no write), generated files included so
both sides see exactly the same files. The baseline is `libcst.parse_module(text).code`.
Both are timed serially and with a process pool of `--jobs` workers, in alternating chunks
of 50 files (the machine is shared: load changes minute to minute). Target: ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import libcst  # noqa: E402

from qfix.source.runner import Job, collect_files, process_file  # noqa: E402
from qfix.rules import source_rules  # noqa: E402


def corpus_roots() -> list[Path]:
    import importlib.util

    roots = []
    for name in ("tensorflow_model_optimization", "tf_keras", "keras"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.append(Path(list(spec.submodule_search_locations)[0]))
    return roots


def baseline_one(path: str) -> int:
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8")
    try:
        return len(libcst.parse_module(text).code)
    except Exception:  # noqa: BLE001
        return 0


_JOB: Job | None = None


def codemod_one(path: str) -> int:
    res = process_file(path, _JOB or Job(source_rules()), explicit=True)
    return len(res.violations)


def _init(job: Job) -> None:
    global _JOB
    _JOB = job
    libcst.parse_module("x = 1\n")


def _run_chunk(fn, files: list[str], pool: ProcessPoolExecutor | None) -> float:
    t = time.perf_counter()
    if pool is None:
        for f in files:
            fn(f)
    else:
        list(pool.map(fn, files, chunksize=4))
    return time.perf_counter() - t


def timed_pair(files: list[str], jobs: int, job: Job, chunk: int = 50) -> tuple[float, float]:
    """Baseline and codemod timed in alternating chunks of files, so that the load of a
    shared machine falls on both sides alike. Returns (baseline seconds, codemod seconds)."""
    base = mod = 0.0
    pool = None
    if jobs > 1:
        pool = ProcessPoolExecutor(max_workers=jobs, initializer=_init, initargs=(job,))
        list(pool.map(baseline_one, files[:jobs]))  # start the workers
    else:
        _init(job)
    try:
        for i in range(0, len(files), chunk):
            part = files[i : i + chunk]
            if (i // chunk) % 2:
                mod += _run_chunk(codemod_one, part, pool)
                base += _run_chunk(baseline_one, part, pool)
            else:
                base += _run_chunk(baseline_one, part, pool)
                mod += _run_chunk(codemod_one, part, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    return base, mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="use every k-th file so that about N files remain")
    ap.add_argument("--target", default="edgetpu")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    files = [str(f) for f in collect_files(corpus_roots())]
    if args.limit and len(files) > args.limit:
        step = len(files) / args.limit
        files = [files[int(i * step)] for i in range(args.limit)]
    size = sum(os.path.getsize(f) for f in files)
    job = Job(source_rules(), target=args.target, fix=True, unsafe_fixes=True, include_generated=True)
    print(f"corpus: {len(files)} files, {size / 1e6:.1f} MB, target={args.target}, cores={os.cpu_count()}")
    for jobs in (1, args.jobs):
        base, mod = timed_pair(files, jobs, job)
        label = "serial" if jobs == 1 else f"{jobs} processes"
        print(
            f"{label:>12}: libcst parse+print {len(files) / base:7.1f} files/s | "
            f"qfix codemod {len(files) / mod:7.1f} files/s | ratio {base / mod:.2f}x"
        )
        if args.jobs == 1:
            break


if __name__ == "__main__":
    main()
