"""Positions as LSP counts them: zero-based lines split at `\\r\\n`, `\\r` or `\\n` only, and
columns in the code units of the negotiated position encoding (UTF-16 unless the client offers
UTF-8 or UTF-32 in `general.positionEncodings`; LSP 3.17, "Position" and "PositionEncodingKind").

qfix's findings carry libcst positions: one-based lines split at the same three line breaks,
and one-based columns counted in code points (Python `str` indices). Python's `str.splitlines`
is not used: it also breaks at `\\f`, `\\x1c` or U+2028, which neither Python's tokenizer nor an
LSP client treats as a line break.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from lsprotocol import types as lsp

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"  # PositionEncodingKind's values


def encoding_name(kind: object) -> str:
    """The value (`utf-8`, `utf-16`, `utf-32`) of a PositionEncodingKind or of its string; UTF-16,
    LSP's default, for anything else. (`str()` of the enum member gives its Python name.)"""
    value = getattr(kind, "value", kind)
    return value if value in (UTF8, UTF32) else UTF16


def units(text: str, encoding: str = UTF16) -> int:
    """How many code units of `encoding` the string `text` takes (UTF-16: characters outside
    the Basic Multilingual Plane count 2; UTF-8: the encoded bytes; UTF-32: the code points)."""
    if encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


class LineIndex:
    """One document's text with the offset where each line starts.

    `starts[k]` is the code-point offset of line k; a text ending in a line break has a last,
    empty line (LSP counts it). Positions outside the text are clamped to it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]

    def line(self, k: int) -> str:
        """Line `k` without its line break ('' beyond the last line)."""
        if not 0 <= k < len(self.starts):
            return ""
        end = self.starts[k + 1] if k + 1 < len(self.starts) else len(self.text)
        return _LINE_BREAK.sub("", self.text[self.starts[k]:end], count=1)

    def position(self, line: int, column: int, encoding: str = UTF16) -> lsp.Position:
        """The LSP position of zero-based `line` and code-point `column` (clamped to the text)."""
        if line < 0:
            return lsp.Position(0, 0)
        if line >= len(self.starts):
            last = len(self.starts) - 1
            return lsp.Position(last, units(self.line(last), encoding))
        text = self.line(line)
        return lsp.Position(line, units(text[:max(0, min(column, len(text)))], encoding))

    def position_at(self, offset: int, encoding: str = UTF16) -> lsp.Position:
        """The LSP position of code-point `offset` into the text."""
        offset = max(0, min(offset, len(self.text)))
        k = bisect_right(self.starts, offset) - 1
        return self.position(k, offset - self.starts[k], encoding)

    def offset(self, position: lsp.Position, encoding: str = UTF16) -> int:
        """The code-point offset of an LSP position (a column past the line's end is its end;
        a column inside a UTF-16 surrogate pair or a UTF-8 sequence rounds down)."""
        k = max(0, min(position.line, len(self.starts) - 1))
        text = self.line(k)
        count = 0
        for i, c in enumerate(text):
            if count + units(c, encoding) > position.character:
                return self.starts[k] + i
            count += units(c, encoding)
        return self.starts[k] + len(text)

    def end(self, encoding: str = UTF16) -> lsp.Position:
        return self.position_at(len(self.text), encoding)


def finding_range(index: LineIndex, line: int | None, col: int | None, end_line: int | None,
                  end_col: int | None, encoding: str = UTF16) -> lsp.Range:
    """The LSP range of a finding located by one-based `line`/`col` (code points, libcst) up to
    `end_line`/`end_col` (exclusive). Without a line: the file's first character. Without an
    end: the rest of the start line."""
    if line is None:
        return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    start = index.position(line - 1, (col or 1) - 1, encoding)
    if end_line is None or end_col is None:
        end = index.position(line - 1, len(index.line(line - 1)), encoding)
    else:
        end = index.position(end_line - 1, end_col - 1, encoding)
    return lsp.Range(start, end)
