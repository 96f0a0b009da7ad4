"""CLI-facing entry of the source front end: `qfix PATH.py|DIR ...`: configuration, rule
selection, the run over files, writing, and the exit code. Rendering is in `qfix.report`.

`run(...)` returns the exit code: 0 when no findings are left, 1 when findings remain (with
--diff as without it). Bad usage or configuration raises
QfixError, which the CLI prints as one line on stderr with exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from qfix.types import QfixError
from qfix.report.json_report import dumps, source_json
from qfix.report.source import FORMATS as OUTPUT_FORMATS, render_concise, render_text, summary
from qfix.rules import select as select_rules, source_rules, unknown_selectors
from qfix.source.config import load_config
from qfix.source.engine import target_profile
from qfix.source.runner import Job, SourceRun, collect_files, run_files, write_all


DEFAULT_TARGET = "edgetpu"
NO_TARGET = "none"  # `--target none` / `target = "none"`: no target rules (QF301, QF302, QF402, QF403)


def _print(console: Any, text: str = "") -> None:
    if console is None:
        print(text)
        return
    try:
        # emoji=False: a message quoting `:fire:` stays as written (rich would draw the emoji)
        console.print(text, markup=False, highlight=False, soft_wrap=True, emoji=False)
    except TypeError:  # a plain file-like console
        console.print(text)


def run(
    paths: list[Path],
    *,
    write: bool,
    unsafe_fixes: bool,
    diff: bool,
    select: list[str] | None,
    ignore: list[str] | None,
    target: str | None,
    output_format: str,
    console: Any,
    jobs: int | None = None,
    force_exclude: bool = False,
) -> int:
    """Check (and with `write`, fix) Python sources. Returns the exit code (0/1/2)."""
    if output_format not in OUTPUT_FORMATS:
        raise QfixError("QF914", f"unknown output format {output_format!r} (use one of: {', '.join(OUTPUT_FORMATS)})")
    if diff and output_format == "concise":
        raise QfixError("QF914", "--diff and --format concise do not combine: --diff prints the patch of the "
                                 "fixes, --format concise one line per finding")
    paths = [Path(p) for p in paths] or [Path(".")]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise QfixError("QF907", f"no such file or folder: {missing[0]}")
    cfg = load_config(paths)
    # the README's default for every run: a script that converts is checked for the Edge TPU
    # unless --target or [tool.qfix] says otherwise (rules gate themselves on what the file does);
    # `--target ''` is refused by target_profile, not replaced by the default
    target = cfg.target if target is None else target
    target = DEFAULT_TARGET if target is None else target
    if target == NO_TARGET:  # a float-only code base: the rules that need no target
        target = None
    else:
        target_profile(target)  # the same QF910 / QF912 as for models
    select = select if select else cfg.select
    ignore = list(cfg.ignore) + list(ignore or [])
    unsafe_fixes = unsafe_fixes or cfg.unsafe_fixes
    unknown = unknown_selectors([*(select or []), *ignore])
    if unknown:
        raise QfixError("QF914", f"unknown rule selector {', '.join(unknown)} in --select/--ignore or [tool.qfix] "
                                 "(see `qfix rules`)")
    rules = select_rules(source_rules(), select, ignore)
    if select and not rules:
        raise QfixError("QF914", f"--select {','.join(select)} matches no source rule")

    files = collect_files(paths, cfg.exclude, cfg.root, force_exclude=force_exclude)
    explicit = {p for p in paths if p.is_file()}
    job = Job(
        rules=rules, target=target, unsafe_fixes=unsafe_fixes,
        fix=True, options=cfg.rule_options(),
        text_edits=output_format == "sarif", write=write,  # SARIF's fixes: each finding's fix as text
    )
    results = run_files(files, job, jobs=jobs, explicit=explicit)

    written = 0
    if write:  # all fixed files or none: a failure leaves every file as it was
        written = write_all([(Path(r.path), r.new_code, r.encoding) for r in results if r.new_code is not None])

    if not write:  # nothing was applied to the files: findings refer to the text on disk
        for r in results:
            for v in r.violations:
                v.applied = False
    source_run = SourceRun([str(p) for p in paths], target, results, write=write, diff=diff, written=written)
    source_run.exit_code = _exit_code(source_run)
    if output_format == "json":
        _print(console, dumps(source_json(source_run)))
    elif output_format == "sarif":
        from qfix.report.sarif import dumps as sarif_dumps, source_log
        from qfix.rules.docs import catalogue

        _print(console, sarif_dumps(source_log(source_run, catalogue())))
    elif output_format == "github":
        from qfix.report.github import source_annotations

        for line in source_annotations(source_run):
            _print(console, line)
    else:
        for line in (render_concise if output_format == "concise" else render_text)(source_run):
            _print(console, line)
        if diff and not write and source_run.shown:
            # stdout stays a patch; the findings the diff does not show still fail the run (Ruff
            # prints its "Would fix" line on stderr too)
            print(summary(source_run), file=sys.stderr)
    return source_run.exit_code


def _exit_code(run: SourceRun) -> int:
    """1 while findings remain (after --write: in the written files; else, --diff included,
    every finding, display-only ones too: a diff shows only part of what is wrong); else 0."""
    if run.write:
        return 1 if any(r.remaining for r in run.files) else 0
    return 1 if run.shown else 0
