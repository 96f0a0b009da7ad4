"""The language server's parts in process: positions in the three encodings, edits that rebuild
the fixed text exactly, where the suppression comment goes, and how settings resolve. The
client's side (`lsp_client`) counts positions with Python's codecs, independently of qfix."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from lsp_client import apply_edits, position
from qfix.lsp.actions import code_actions
from qfix.lsp.documents import check_python
from qfix.lsp.edits import text_edits, workspace_edit
from qfix.lsp.positions import LineIndex, encoding_name, units
from qfix.lsp.settings import Overrides, resolve
from qfix.source.engine import lint_source

ENCODINGS = ("utf-16", "utf-8", "utf-32")
ODD = "a😀é\r\nb\rc\n\x0cd\u2028e\x1cf\n\n🐍🐍 x\tz"  # LSP lines: a😀é | b | c | \x0cd\u2028e\x1cf | '' | 🐍🐍 x\tz


def test_units_per_encoding():
    assert [units("a😀é", e) for e in ENCODINGS] == [4, 7, 3]
    kinds = (lsp.PositionEncodingKind.Utf16, lsp.PositionEncodingKind.Utf8, lsp.PositionEncodingKind.Utf32)
    assert [encoding_name(k) for k in kinds] == [encoding_name(k.value) for k in kinds] == list(ENCODINGS)
    assert encoding_name(None) == encoding_name("utf-7") == "utf-16"


def test_lines_break_where_lsp_breaks_them():
    index = LineIndex(ODD)
    assert [index.line(k) for k in range(len(index.starts))] == ["a😀é", "b", "c", "\x0cd\u2028e\x1cf", "", "🐍🐍 x\tz"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_offset_round_trips_and_matches_the_clients_count(encoding):
    index = LineIndex(ODD)
    for i in range(len(ODD) + 1):
        if ODD[i - 1:i + 1] == "\r\n":
            continue  # between \r and \n: no position
        pos = index.position_at(i, encoding)
        assert pos == position(ODD, i, encoding), i
        assert index.offset(pos, encoding) == i


def test_positions_outside_the_text_are_clamped():
    index = LineIndex("ab\ncd")
    assert index.position(7, 0) == lsp.Position(1, 2)
    assert index.position(0, 99) == lsp.Position(0, 2)
    assert index.offset(lsp.Position(0, 99)) == 2
    assert index.end() == lsp.Position(1, 2)


def random_text(rng: random.Random) -> str:
    pieces = ["x = 1", "\n", "\r\n", "\r", "😀", "é", "\x0c", "    ", "import tf", "\u2028", "#"]
    return "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_text_edits_rebuild_the_new_text_exactly(encoding):
    rng = random.Random(7)
    for _ in range(400):
        old, new = random_text(rng), random_text(rng)
        if rng.random() < 0.5:  # a nearby text, as a fix makes
            cut = rng.randrange(len(old) + 1)
            new = old[:cut] + random_text(rng) + old[cut + rng.randrange(3):]
        edits = text_edits(old, new, encoding)
        assert apply_edits(old, edits, encoding) == new, (old, new)
        assert (edits == []) == (old == new)


def test_workspace_edit_is_versioned_when_the_client_can_take_it():
    edit = lsp.TextEdit(lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)), "x")
    versioned = workspace_edit("file:///a.py", 3, [edit], True)
    assert versioned.document_changes[0].text_document.version == 3 and versioned.changes is None
    assert workspace_edit("file:///a.py", 3, [edit], False).changes == {"file:///a.py": [edit]}


# --------------------------------------------------------------------------------------------
# The suppression comment
# --------------------------------------------------------------------------------------------
def suppressed(text: str, code: str) -> str | None:
    """`text` after the suppress action for the first `code` finding (None: no such action).
    The same with the finding's statement tokenized alone (the statements' lengths known, as in
    the server after its first check) as with the whole text tokenized."""
    checked = check_python(text, None, resolve(None, Overrides()))
    finding = next(f for f in checked.findings if f.violation.code == code)

    def hides() -> list[lsp.CodeAction]:
        actions = code_actions(checked, [finding], [lsp.CodeActionKind.QuickFix],
                               lambda edits: workspace_edit("file:///t.py", 1, edits, False))
        return [a for a in actions if a.title.startswith("Suppress")]

    parsed, checked.parsed = checked.parsed, None  # without the statements' extents: the whole text
    hide = hides()
    checked.parsed = parsed
    parsed.prepare()
    assert parsed.lengths is not None or "\r" in text
    assert hides() == hide
    if not hide:
        return None
    new = apply_edits(text, hide[0].edit.changes["file:///t.py"])
    assert code not in [v.code for v in lint_source(new, rules=checked.settings.rules).violations], new
    return new


INT8 = "import tensorflow as tf\nc.inference_input_type = tf.lite.constants.INT8"


def test_suppression_goes_at_the_end_of_the_line():
    assert suppressed(INT8 + "   \n", "QF204") == INT8 + "  # qfix: ignore[QF204]\n"
    assert suppressed(INT8, "QF204") == INT8 + "  # qfix: ignore[QF204]"  # no final line break
    assert suppressed(INT8 + "  # keep\n", "QF204") == INT8 + "  # keep  # qfix: ignore[QF204]\n"
    assert suppressed(INT8 + "\r\nx = 1\r\n", "QF204") == INT8 + "  # qfix: ignore[QF204]\r\nx = 1\r\n"


def test_suppression_extends_an_existing_comment():
    assert suppressed(INT8 + "  # qfix: ignore[QF999]\n", "QF204") == INT8 + "  # qfix: ignore[QF999, QF204]\n"
    # a file-level comment on the line: the engine reads no line suppression there
    assert suppressed(INT8 + "  # qfix: ignore-file[QF999]\n", "QF204") is None


def test_suppression_skips_a_line_that_ends_inside_a_string_or_after_a_backslash():
    lam = "import keras\nx = keras.layers.Lambda(lambda t: t * 2.0, name='''a\nb''')(inputs)\n"
    assert suppressed(lam, "QF202") == lam.replace("(inputs)\n", "(inputs)  # qfix: ignore[QF202]\n")
    inside = INT8 + "; s = '''a\nb'''\n"
    assert suppressed(inside, "QF204") is None  # starts and ends on a line that ends in a string
    cont = INT8 + " + \\\n    1\n"
    assert suppressed(cont, "QF204") is None


def test_suppression_counts_lines_as_python_does():
    text = "import tensorflow as tf\ns = '\x0c\u2028'\n" + INT8.split("\n")[1] + "\n"
    assert suppressed(text, "QF204") == text[:-1] + "  # qfix: ignore[QF204]\n"
    before = 'import tensorflow as tf\ndef f():\n    """a\n    b"""\n\n# c\n'  # statements before it
    text = before + INT8.split("\n")[1] + "  # keep\ny = (1,\n     2)\n"
    assert suppressed(text, "QF204") == text.replace("# keep", "# keep  # qfix: ignore[QF204]")


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
def test_overrides_accept_the_usual_spellings_and_say_what_they_ignore():
    o, problems = Overrides.parse({"qfix": {"target": "int8", "select": "QF2, QF4", "ignore": ["QF401"],
                                            "unsafe-fixes": True}})
    assert o == Overrides("int8", ("QF2", "QF4"), ("QF401",), True) and problems == []
    assert Overrides.parse({"unsafe_fixes": False})[0].unsafe_fixes is False
    assert Overrides.parse({"unsafeFixes": True})[0].unsafe_fixes is True
    o, problems = Overrides.parse({"target": 3, "select": [1], "colour": "red", "ignore": None})
    assert o == Overrides() and len(problems) == 3
    assert Overrides.parse("edgetpu")[1] and Overrides.parse(None) == (Overrides(), [])


def test_settings_resolve_like_the_command_line(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[tool.qfix]\ntarget = "edgetpu"\nselect = ["QF2"]\nignore = ["QF203"]\n'
                                             'unsafe-fixes = true\nexclude = ["build"]\n')
    doc = tmp_path / "pkg" / "m.py"
    s = resolve(doc, Overrides())
    assert (s.target, s.select, s.ignore, s.unsafe_fixes, s.excluded) == ("edgetpu", ["QF2"], ["QF203"], True, False)
    assert {r.code for r in s.rules} == {"QF202", "QF204", "QF205"}
    s = resolve(doc, Overrides(target="int8", select=("QF4",), ignore=("QF401",), unsafe_fixes=False))
    assert (s.target, s.select, s.ignore, s.unsafe_fixes) == ("int8", ["QF4"], ["QF203", "QF401"], False)
    assert resolve(tmp_path / "pkg" / "build" / "gen.py", Overrides()).excluded  # in an excluded folder
    assert resolve(doc, Overrides(target="nosuch")).error.code == "QF910"
    assert resolve(doc, Overrides(select=("QF77",))).error.code == "QF914"
    assert resolve(doc, Overrides(select=("QF102",))).error.code == "QF914"  # a model-only code
    assert resolve(tmp_path / "m.keras", Overrides(select=("QF102",)), model=True).error is None
    assert resolve(tmp_path / "m.keras", Overrides(), model=True).target == "edgetpu"
    bare = resolve(None, Overrides())
    assert (bare.target, bare.config, bare.error) == ("edgetpu", None, None) and bare.rules  # as on the command line
    assert resolve(None, Overrides(target="none")).target is None
