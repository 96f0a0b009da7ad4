"""Each source fix alone as text replacements (`qfix.source.text_edits`): what SARIF's `fixes`
carry. Applied to the text the finding was found in, they give exactly the text the engine's
libcst edits give, and for a file with one fixable finding, exactly what `--write` writes."""

from __future__ import annotations

import random

import libcst as cst
import pytest

from qfix.rules import source_rules
from qfix.source.engine import apply_edits, fix_source, lint_source
from qfix.source.text_edits import attach, line_starts, position, replacements, split_lines
from qfix.types import TextEdit


def apply(text: str, edits: list[TextEdit]) -> str:
    """The edits (positions in `text`, in order, not overlapping) applied to `text`."""
    starts = line_starts(split_lines(text))

    def offset(line: int, col: int) -> int:
        return (starts[line - 1] if line <= len(starts) else len(text)) + col - 1

    out, at = [], 0
    for e in edits:
        begin, end = offset(e.line, e.col), offset(e.end_line, e.end_col)
        assert at <= begin <= end <= len(text), (e, at)
        out += [text[at:begin], e.new_text]
        at = end
    return "".join(out) + text[at:]


@pytest.mark.parametrize("old,new", [
    ("", "x = 1\n"),
    ("x = 1\n", ""),
    ("a\nb\nc\n", "a\nB\nc\n"),
    ("a\nb\nc", "a\nb\nc\nd"),  # appended after a last line without a newline
    ("a\r\nb\r\n", "import os\r\na\r\nb\r\n"),
    ("a\rb\r", "a\rb2\r"),  # old Mac line ends: Python's tokenizer splits there too
    ("x = f(INT8)\n", "x = f(int8)\n"),
    ("s = '🐍é'\nt = 1\n", "s = '🐍é'\nt = 2\nu = 3\n"),
    ("one\ntwo\nthree\nfour\n", "zero\none\n2\nthree\nfive\n"),
])
def test_replacements_turn_old_into_new(old, new):
    edits = replacements(old, new)
    assert apply(old, edits) == new
    assert (edits == []) == (old == new)


def test_replacements_round_trip_on_random_edits():
    rng = random.Random(12)
    alphabet = ["a", "b", "_", "1", " ", "(", ")", "\n", "\r\n", "é", "🐍"]
    for _ in range(300):
        old = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        new = list(old)
        for _ in range(rng.randint(1, 4)):
            i = rng.randint(0, len(new))
            if rng.random() < 0.5 and i < len(new):
                del new[i:i + rng.randint(1, 3)]
            else:
                new[i:i] = rng.choice(alphabet)
        new = "".join(new)
        assert apply(old, replacements(old, new)) == new, (old, new)


def test_names_are_replaced_whole():
    (e,) = replacements("c.x = tf.lite.constants.INT8\n", "c.x = tf.int8\n")
    assert e.new_text == "int8" and (e.line, e.col, e.end_line, e.end_col) == (1, 10, 1, 29)


def test_positions_count_code_points_and_follow_python_line_ends():
    lines = split_lines("a\r\nb\rc\nd")
    assert lines == ["a\r\n", "b\r", "c\n", "d"]
    starts = line_starts(lines)
    assert [position(starts, o) for o in (0, 3, 5, 7, 8)] == [(1, 1), (2, 1), (3, 1), (4, 1), (4, 2)]
    assert "".join(split_lines("x\x0cy\u2028z\n")) == "x\x0cy\u2028z\n" and len(split_lines("x\x0cy\u2028z\n")) == 1


def _cases():
    for rule in source_rules():
        for i, case in enumerate(rule.INVALID):
            yield pytest.param(rule, case, id=f"{rule.code}-{i}")


@pytest.mark.parametrize("rule,case", list(_cases()))
def test_every_fix_as_text_is_the_fix_alone(rule, case):
    """Every embedded case of every source rule: each finding's text edits give the text its
    libcst edits give alone, which parses; with one fixable finding fixed in one round, that is
    `--write`'s text (fix_source with --unsafe-fixes)."""
    code = case.source()
    lint = lint_source(code, rules=[rule], target=case.target, options=case.options)
    attach(code, lint)
    fixable = [v for v in lint.violations if v.fix is not None and v.fix.edits]
    for v in fixable:
        alone = apply_edits(lint.module, v.fix.edits, lint.positions).code
        assert apply(code, v.fix.text_edits) == alone
        cst.parse_module(alone)
    for v in lint.violations:
        if v.fix is None or not v.fix.edits:
            assert v.fix is None or v.fix.text_edits == []
    fr = fix_source(code, rules=[rule], target=case.target, options=case.options, unsafe_fixes=True)
    if len(fixable) == 1 and fr.iterations == 1:
        assert apply(code, fixable[0].fix.text_edits) == fr.code
