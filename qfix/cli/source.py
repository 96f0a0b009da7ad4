"""CLI-facing entry of the source front end: `qfix PATH.py|DIR ...`.

`run(...)` returns the exit code: 0 when no findings are left, 1 when findings remain (or,
without --write, when there is anything to report), 2 on bad usage or configuration.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

from qfix.types import Applicability, QfixError, Violation
from qfix.source.config import load_config
from qfix.source.engine import select_rules, target_profile
from qfix.source.runner import FileResult, Job, collect_files, run_files, write_atomic

OUTPUT_FORMATS = ("text", "concise", "json")


def _print(console: Any, text: str = "") -> None:
    if console is None:
        print(text)
        return
    try:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    except TypeError:  # a plain file-like console
        console.print(text)


def _rel(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def format_violation(v: Violation, *, after_write: bool = False) -> str:
    loc = v.location
    fixable = v.fix is not None and v.fix.applicability is Applicability.SAFE
    mark = " [*]" if fixable and not (after_write and v.applied) else ""
    return f"{_rel(loc.path or '-')}:{loc.line or 1}:{loc.col or 1}: {v.code}{mark} {v.message}"


def unified_diff(path: str, old: str, new: str) -> str:
    rel = _rel(path)
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{rel.lstrip('/')}", tofile=f"b/{rel.lstrip('/')}"
        )
    )


def _json_item(v: Violation) -> dict[str, Any]:
    d = v.to_json()
    d["kind"] = "source"
    d["filename"] = v.location.path
    return d


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
) -> int:
    """Check (and with `write`, fix) Python sources. Returns the exit code (0/1/2)."""
    if output_format not in OUTPUT_FORMATS:
        _print(console, f"QF914 unknown output format {output_format!r} (use one of: {', '.join(OUTPUT_FORMATS)})")
        return 2
    paths = [Path(p) for p in paths] or [Path(".")]
    missing = [p for p in paths if not p.exists()]
    if missing:
        _print(console, f"QF907 no such file or folder: {missing[0]}")
        return 2
    try:
        cfg = load_config(paths)
    except QfixError as exc:
        _print(console, f"{exc.code} {exc.message}")
        return 2
    target = target or cfg.target
    if target is not None:
        try:
            target_profile(target)  # the same QF910 / QF912 as for models
        except QfixError as exc:
            _print(console, f"{exc.code} {exc.message}")
            return 2
    select = select if select else cfg.select
    ignore = list(cfg.ignore) + list(ignore or [])
    unsafe_fixes = unsafe_fixes or cfg.unsafe_fixes
    rules = select_rules(select=select, ignore=ignore)
    if select and not rules:
        _print(console, f"QF914 --select {','.join(select)} matches no source rule")
        return 2

    files = collect_files(paths, cfg.exclude, cfg.root)
    explicit = {p for p in paths if p.is_file()}
    job = Job(
        select=select, ignore=ignore, target=target, unsafe_fixes=unsafe_fixes,
        fix=True, options=cfg.rule_options(),
    )
    results = run_files(files, job, jobs=jobs, explicit=explicit)

    written = 0
    if write:
        for r in results:
            if r.new_code is not None:
                try:
                    write_atomic(Path(r.path), r.new_code, r.encoding)
                    written += 1
                except OSError as exc:
                    _print(console, f"QF913 cannot write {r.path}: {exc}")
                    return 2

    if not write:  # nothing was applied to the files: findings refer to the text on disk
        for r in results:
            for v in r.violations:
                v.applied = False
    shown = [v for r in results for v in (r.remaining if write else r.violations)]
    fixed_total = sum(r.fixed for r in results)
    remaining_total = sum(len(r.remaining) for r in results)
    if output_format == "json":
        payload = [_json_item(v) for v in shown]
        if write:
            payload = [_json_item(v) for r in results for v in r.remaining]
        _print(console, json.dumps(payload, indent=2))
    else:
        if not (diff and not write):  # --diff alone prints only the diffs (Ruff)
            for v in shown:
                _print(console, format_violation(v, after_write=write))
        if not write:
            for r in results:
                if r.new_code is not None and r.old_code is not None:
                    _print(console, unified_diff(r.path, r.old_code, r.new_code).rstrip("\n"))
        if not (diff and not write):
            _print(console, _summary(results, write=write, unsafe_fixes=unsafe_fixes, fixed=fixed_total, written=written))

    if write:
        return 1 if remaining_total else 0
    if diff:
        return 1 if any(r.new_code is not None for r in results) else 0
    return 1 if shown else 0


def _summary(results: list[FileResult], *, write: bool, unsafe_fixes: bool, fixed: int, written: int) -> str:
    files = len([r for r in results if r.skipped is None])
    if write:
        remaining = sum(len(r.remaining) for r in results)
        if not fixed and not remaining:
            return f"All checks passed ({files} file{'s' * (files != 1)})."
        return f"Found {fixed + remaining} issue{'s' * (fixed + remaining != 1)} ({fixed} fixed in {written} file{'s' * (written != 1)}, {remaining} remaining)."
    vs = [v for r in results for v in r.violations]
    if not vs:
        return f"All checks passed ({files} file{'s' * (files != 1)})."
    safe = sum(1 for v in vs if v.fix is not None and v.fix.applicability is Applicability.SAFE)
    unsafe = sum(1 for v in vs if v.fix is not None and v.fix.applicability is Applicability.UNSAFE)
    manual = len(vs) - safe - unsafe
    parts = [f"Found {len(vs)} issue{'s' * (len(vs) != 1)} in {files} file{'s' * (files != 1)}."]
    if safe:
        parts.append(f"[*] {safe} fixable with --write.")
    if unsafe:
        parts.append(f"{unsafe} more fix{'es' * (unsafe != 1)} available with --write --unsafe-fixes.")
    if manual:
        parts.append(f"{manual} need{'s' * (manual == 1)} manual attention.")
    return " ".join(parts)
