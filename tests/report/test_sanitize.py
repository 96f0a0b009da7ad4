"""printable: nothing from a file reaches the terminal as a control sequence."""

from qfix.report.sanitize import printable


def test_controls_and_bidi_are_escaped():
    assert printable("x\x1b]0;pwned\x07\x1b[2Jy") == "x\\x1b]0;pwned\\x07\\x1b[2Jy"
    assert printable("a\nb\tc\x9b") == "a\\nb\\tc\\x9b"
    assert printable("abc\u202efed") == "abc\\u202efed"
    assert printable("ünïcödé 层") == "ünïcödé 层"  # printable text is kept as it is


def test_keep_and_limit():
    assert printable("a\nb\x1b", keep="\n") == "a\nb\\x1b"
    assert printable("x" * 10, limit=4) == "xxxx… (6 more characters)"
