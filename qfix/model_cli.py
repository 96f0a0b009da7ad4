"""`qfix MODEL.keras`: the check run (and, later, the rewrite loop) with its progress and report."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, TextIO

from rich.console import Console

from .pipeline import Options, run_check
from .report.json_report import check_json, dumps
from .report.text import render_check


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[TextIO]:
    """TensorFlow's C++ logging writes to fd 2 before any Python setting can stop it. Point fd 2
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not console.is_terminal:  # CI logs and pipes: wide enough that findings stay on one line
        console.width = max(console.width, 140)
    with quiet_native_stderr() as err_stream:
        if output_format == "json":
            result = run_check(path, opts)
        else:
            err = Console(file=err_stream)
            with err.status("reading the model") as status:
                result = run_check(path, opts, progress=lambda msg: status.update(msg))
    if output_format == "json":
        print(dumps(check_json(result)))
    else:
        render_check(result, console)
    return result.exit_code()
