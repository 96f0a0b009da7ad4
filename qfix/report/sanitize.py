"""Make text that came from a file safe to print on a terminal.

Layer names, messages that quote them, paths and notes come from files qfix did not write. A
layer named `"x\\x1b]0;pwned\\x07\\x1b[2J"` must not retitle or clear the user's terminal, and a
file name with a newline must not split a one-line error in two. `printable` replaces every
control character (C0, DEL, C1), and the bidirectional overrides that reorder what a reader
sees (the "Trojan Source" characters, CVE-2021-42574), by its Python escape; everything else
is kept as it is. JSON output needs none of this: `json.dumps` escapes control characters.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; bidi embeddings/overrides (U+202A-U+202E) and isolates
# (U+2066-U+2069); the line and paragraph separators some terminals honour.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return repr(ch)[1:-1] if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def printable(text: object, keep: str = "", limit: int | None = None) -> str:
    """`text` (str() of it) with control and bidi characters escaped (`\\x1b`, `\\n`, `\\u202e`).
    Characters in `keep` (e.g. "\\n\\t" for a diff's own line structure) stay as they are.
    With `limit`, text longer than that many characters is cut, saying how much was left out
    (a file controls how long a layer name, and so a message quoting it, is)."""
    s = str(text)
    if limit is not None and len(s) > limit:
        s = f"{s[:limit]}… ({len(s) - limit} more characters)"
    if keep:
        return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m), s)
    return _UNSAFE.sub(_escape, s)
