"""Text renderers of a source run (`qfix PATH.py|DIR`), Ruff style.

`text`: one line per finding, `path:line:col: CODE [*] message` (`[*]`: a safe fix `--write`
applies), then an indented `help: ...` line for a finding that carries a fix description
(display-only suggestions included), the diffs of the fixes when not writing, and a summary.
`concise`: exactly one line per finding and the one-line summary; no help lines, no diffs.
`--diff` alone prints only the diffs (Ruff).
"""

from __future__ import annotations

from qfix.report.diff import rel, unified_diff
from qfix.report.sanitize import printable
from qfix.source.runner import SourceRun
from qfix.types import Applicability, Violation

FORMATS = ("text", "concise", "json", "sarif", "github")


def _plural(n: int, word: str, suffix: str = "s") -> str:
    return f"{n} {word}{suffix * (n != 1)}"


def format_violation(v: Violation, *, after_write: bool = False) -> str:
    """`path:line:col: CODE [*] message`; `[*]` marks a safe fix not yet applied."""
    loc = v.location
    safe = v.fix is not None and v.fix.applicability is Applicability.SAFE
    mark = " [*]" if safe and not (after_write and v.applied) else ""
    return printable(f"{rel(loc.path or '-')}:{loc.line or 1}:{loc.col or 1}: {v.code}{mark} {v.message}", limit=2000)


def help_line(v: Violation) -> str | None:
    """The fix as advice under the finding, or None when the finding has no fix."""
    if v.fix is None or not v.fix.description:
        return None
    note = " (unsafe fix: --write --unsafe-fixes)" if v.fix.applicability is Applicability.UNSAFE else ""
    # A suggestion may span lines (a code snippet): keep them, aligned under the first.
    return printable(f"  help: {v.fix.description}{note}", keep="\n").replace("\n", "\n        ")


def summary(run: SourceRun) -> str:
    """One line: counts of findings and what --write / --unsafe-fixes would do with them."""
    if run.write:
        fixed, remaining = len(run.fixed), len(run.shown)
        if not fixed and not remaining:
            return f"All checks passed ({_plural(run.checked, 'file')})."
        return (f"Found {_plural(fixed + remaining, 'issue')} ({fixed} fixed in {_plural(run.written, 'file')}, "
                f"{remaining} remaining).")
    vs = run.shown
    if not vs:
        return f"All checks passed ({_plural(run.checked, 'file')})."
    safe = sum(1 for v in vs if v.fix is not None and v.fix.applicability is Applicability.SAFE)
    unsafe = sum(1 for v in vs if v.fix is not None and v.fix.applicability is Applicability.UNSAFE)
    manual = len(vs) - safe - unsafe
    where = len({v.location.path for v in vs})
    of = f" (of {run.checked} checked)" if where < run.checked else ""
    parts = [f"Found {_plural(len(vs), 'issue')} in {_plural(where, 'file')}{of}."]
    if safe:
        parts.append(f"[*] {safe} fixable with --write.")
    if unsafe:
        parts.append(f"{unsafe} more {'fix' if unsafe == 1 else 'fixes'} available with --write --unsafe-fixes.")
    if manual:
        parts.append(f"{manual} need{'s' * (manual == 1)} manual attention.")
    return " ".join(parts)


def render_text(run: SourceRun) -> list[str]:
    lines: list[str] = []
    diff_only = run.diff and not run.write
    if not diff_only:
        for v in run.shown:
            lines.append(format_violation(v, after_write=run.write))
            hint = help_line(v)
            if hint:
                lines.append(hint)
    if not run.write:
        for r in run.files:
            if r.new_code is not None and r.old_code is not None:
                lines.append(printable(unified_diff(r.path, r.old_code, r.new_code).rstrip("\n"), keep="\n\t"))
    if not diff_only:
        lines.append(summary(run))
    return lines


def render_concise(run: SourceRun) -> list[str]:
    return [*(format_violation(v, after_write=run.write) for v in run.shown), summary(run)]
