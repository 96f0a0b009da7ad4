"""`qfix MODEL.keras`: the check run (and, later, the rewrite loop) with its progress and report."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator, TextIO

from rich.console import Console

from qfix.jobs.check import Options, run_check
from qfix.report.json_report import check_json, dumps, fix_json
from qfix.report.sanitize import printable
from qfix.report.text import render_check, render_fix
from qfix.types import QfixError


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


def model_job(path: Path, opts: Options, *, quiet: bool, check: bool, diff: bool, unsafe_fixes: bool,
              out_dir: Path | None, in_place: bool) -> tuple[str, Any]:
    """Run the job `qfix MODEL.keras` asks for: ("qat", QatRun), ("fix", FixRun) or ("check",
    Result). `--check` reports; otherwise rewrite, convert, verify and write the outputs (or,
    with `--diff`, only the config diff). `--mode qat`: the QAT job, with or without `--check`.
    `quiet`: no progress line (the report is machine-read)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    rewrite = not check and not opts.static_only
    with quiet_native_stderr() as err_stream:
        err = Console(file=err_stream)
        with err.status("reading the model") as status:
            progress = (lambda msg: None) if quiet else (lambda msg: status.update(msg))
            if opts.mode == "qat":
                from qfix.jobs.qat import run_qat

                return "qat", run_qat(path, opts, check=check, unsafe=unsafe_fixes, out_dir=out_dir, progress=progress)
            if rewrite:
                from qfix.jobs.fix import run_fix

                return "fix", run_fix(path, opts, unsafe=unsafe_fixes, out_dir=out_dir, in_place=in_place,
                                      diff_only=diff, progress=progress)
            return "check", run_check(path, opts, progress=progress)


def report_json(kind: str, run: Any) -> dict[str, Any]:
    """The JSON report of a model job's result (README, "JSON report")."""
    if kind == "qat":
        from qfix.report.qat import qat_json

        return qat_json(run)
    return fix_json(run) if kind == "fix" else check_json(run)


def exit_code(kind: str, run: Any) -> int:
    return run.exit_code() if kind == "qat" else (run.result if kind == "fix" else run).exit_code()


def findings(kind: str, run: Any) -> list:
    return (run if kind == "check" else run.result).findings


def run_model(path: Path, opts: Options, console: Console, *, output_format: str, check: bool,
              diff: bool, unsafe_fixes: bool, out_dir: Path | None, in_place: bool) -> int:
    """One model in text or JSON: run its job, print its report, return its exit status."""
    if not console.is_terminal:  # CI logs and pipes: wide enough that findings stay on one line
        console.width = max(console.width, 140)
    kind, run = model_job(path, opts, quiet=output_format == "json", check=check, diff=diff,
                          unsafe_fixes=unsafe_fixes, out_dir=out_dir, in_place=in_place)
    if kind == "fix" and diff:
        print(run.diff or "", end="")
        return 1 if run.diff else 0
    if output_format == "json":
        print(dumps(report_json(kind, run)))
    elif kind == "qat":
        from qfix.report.qat import render_qat

        render_qat(run, console)
    elif kind == "fix":
        render_fix(run, console)
    else:
        render_check(run, console)
    return exit_code(kind, run)


def run_models_for_ci(models: list[Path], opts: Options, *, output_format: str, check: bool, diff: bool,
                      unsafe_fixes: bool, out_dir: Path | None, in_place: bool) -> int:
    """`--format sarif|github` over one or more models: each model's job in turn, then one SARIF
    log holding every model's findings, or one annotation per finding. A single model's error
    is the run's (one line on stderr, exit 2, no report); with several, an error in one is
    printed on stderr, recorded in the report (a SARIF tool execution notification, a GitHub
    error annotation) and the others run. The exit status is the worst."""
    from qfix.report.sarif import ModelReport

    reports: list[ModelReport] = []
    for path in models:
        try:
            kind, run = model_job(path, opts, quiet=True, check=check, diff=diff, unsafe_fixes=unsafe_fixes,
                                  out_dir=out_dir, in_place=in_place)
        except QfixError as exc:
            if len(models) == 1:
                raise
            print(printable(f"{exc.code} {exc.message}", limit=2000), file=sys.stderr, flush=True)
            reports.append(ModelReport(path, [], 2, error=exc))
            continue
        reports.append(ModelReport(path, findings(kind, run), exit_code(kind, run), report_json(kind, run)))
    if output_format == "sarif":
        from qfix.report.sarif import dumps as sarif_dumps, model_log
        from qfix.rules.docs import catalogue

        print(sarif_dumps(model_log(reports, catalogue())))
    else:
        from qfix.report.github import error_annotation, model_annotations

        for r in reports:
            for line in ([error_annotation(r.path, r.error)] if r.error else model_annotations(r.path, r.findings)):
                print(line)
    return max(r.exit_code for r in reports)
