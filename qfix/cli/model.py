"""`qfix MODEL.keras`: the check run (and, later, the rewrite loop) with its progress and report."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, TextIO

from rich.console import Console

from qfix.jobs.check import Options, run_check
from qfix.report.json_report import check_json, dumps, fix_json
from qfix.report.text import render_check, render_fix


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[TextIO]:
    """Native code writes to fd 2 before any Python setting can stop it (the worker sends
    TensorFlow's to its log once started; not what it or a library prints before). Point fd 2
    at /dev/null for the run and hand back a stream on the real stderr for our progress."""
    if os.environ.get("QFIX_DEBUG"):
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    real = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield real
    finally:
        real.flush()
        real.close()
        os.dup2(saved, 2)
        os.close(saved)


def run_model(path: Path, opts: Options, console: Console, *, output_format: str, check: bool,
              diff: bool, unsafe_fixes: bool, out_dir: Path | None, in_place: bool) -> int:
    """`--check` reports; `--diff` prints the config diff of the fixes; otherwise rewrite,
    convert, verify and write the outputs. `--mode qat`: the QAT job (qfix.jobs.qat), with or
    without `--check`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not console.is_terminal:  # CI logs and pipes: wide enough that findings stay on one line
        console.width = max(console.width, 140)
    rewrite = not check and not opts.static_only
    with quiet_native_stderr() as err_stream:
        err = Console(file=err_stream)
        with err.status("reading the model") as status:
            progress = (lambda msg: None) if output_format == "json" else (lambda msg: status.update(msg))
            if opts.mode == "qat":
                from qfix.jobs.qat import run_qat

                run = run_qat(path, opts, check=check, unsafe=unsafe_fixes, out_dir=out_dir, progress=progress)
            elif rewrite:
                from qfix.jobs.fix import run_fix

                run = run_fix(path, opts, unsafe=unsafe_fixes, out_dir=out_dir, in_place=in_place,
                              diff_only=diff, progress=progress)
            else:
                result = run_check(path, opts, progress=progress)
    if opts.mode == "qat":
        from qfix.report.qat import qat_json, render_qat

        if output_format == "json":
            print(dumps(qat_json(run)))
        else:
            render_qat(run, console)
        return run.exit_code()
    if rewrite and diff:
        print(run.diff or "", end="")
        return 1 if run.diff else 0
    if output_format == "json":
        print(dumps(fix_json(run) if rewrite else check_json(result)))
    elif rewrite:
        render_fix(run, console)
    else:
        render_check(result, console)
    return (run.result if rewrite else result).exit_code()
