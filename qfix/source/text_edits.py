"""Each source fix on its own, as plain text replacements (`qfix.types.TextEdit`).

The engine applies fixes as libcst edits, several per round until the file is stable. A report
that hands fixes to another tool (SARIF's `fixes`, a code action) needs each finding's fix by
itself, as text: `attach` applies one finding's edits alone to the text they were found in and
turns the change into the smallest replacements (changed lines from difflib, then the common
start and end of each changed block trimmed), located in the original text.

Lines end at `\\r\\n`, `\\n` or `\\r`, as for Python's tokenizer and libcst (`str.splitlines`
also splits at form feeds and U+2028, which Python source does not).
"""

from __future__ import annotations

import bisect
import difflib
import re
from typing import Sequence

import libcst as cst

from qfix.types import TextEdit
from qfix.source.engine import LintResult, apply_fix
from qfix.source.parse import parse_module

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
NEWLINES = ("\r\n", "\n", "\r")  # what ends a line, for reports that must say it (SARIF)


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their line ends; `"".join` of them is `text`."""
    return _LINE.findall(text)


def line_starts(lines: Sequence[str]) -> list[int]:
    """The offset of each line's first character (at least one entry: [0] for no text)."""
    starts, offset = [0], 0
    for line in lines[:-1]:
        offset += len(line)
        starts.append(offset)
    return starts


def position(starts: Sequence[int], offset: int) -> tuple[int, int]:
    """(line, col), 1-based, of the character at `offset` (code points from the start)."""
    i = bisect.bisect_right(starts, offset) - 1
    return i + 1, offset - starts[i] + 1


def replacements(old: str, new: str) -> list[TextEdit]:
    """The edits that turn `old` into `new`, in order, positions in `old` (none if equal)."""
    if old == new:
        return []
    a, b = split_lines(old), split_lines(new)
    starts = line_starts(a)
    offsets = [*starts, len(old)] if a else [0]  # offset of line i, and of the end
    out: list[TextEdit] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        was, now = "".join(a[i1:i2]), "".join(b[j1:j2])
        head = _common_prefix(was, now)
        tail = _common_prefix(was[head:][::-1], now[head:][::-1])
        head, tail = _whole_words(was, now, head, tail)
        begin = offsets[i1] + head
        end = offsets[i1] + len(was) - tail
        (line, col), (end_line, end_col) = position(starts, begin), position(starts, end)
        out.append(TextEdit(line, col, end_line, end_col, now[head:len(now) - tail]))
    return out


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _whole_words(was: str, now: str, head: int, tail: int) -> tuple[int, int]:
    """Shrink the kept start and end so no name is cut in two: `INT8` -> `int8` is replaced
    whole, not as `INT` -> `int` before a kept `8` (easier to read in a viewer's diff)."""
    def cuts(text: str, at: int) -> bool:  # a name runs across offset `at` of `text`
        return 0 < at < len(text) and _word(text[at - 1]) and _word(text[at])

    while head > 0 and (cuts(was, head) or cuts(now, head)):
        head -= 1
    while tail > 0 and (cuts(was, len(was) - tail) or cuts(now, len(now) - tail)):
        tail -= 1
    return head, tail


def _common_prefix(x: str, y: str) -> int:
    n = 0
    for p, q in zip(x, y):
        if p != q:
            break
        n += 1
    return n


def attach(code: str, lint: LintResult) -> None:
    """Set `Fix.text_edits` of every finding in `lint` whose fix carries edits: that fix applied
    alone to `code` (the text `lint` was found in). A fix that does not apply alone, or whose
    result does not parse, gets none (the engine reports such a fix as QF916 when it runs)."""
    if lint.module is None:
        return
    for rep in lint.reports:
        fix = rep.violation.fix
        if fix is None or not fix.edits:
            continue
        try:
            new = apply_fix(lint.module, fix.edits).code
            parse_module(new)
        except Exception:  # noqa: BLE001 - a broken fix is left without text edits
            continue
        fix.text_edits = replacements(code, new)
