"""Re-parsing an edited text by its changed top-level statements only (the editor's didChange).

libcst's parse is most of a check (~180 ms of ~290 for 1,000 lines) and an edit usually
touches one statement. `Parsed.update(new_text)` gives the module libcst's `parse_module` gives
for the new text, re-parsing only the top-level statements that hold the change and reusing the
others' nodes (immutable, so sharing them is safe). The result is always the full parse's (the
randomized test `tests/source/test_incremental.py` compares them node by node): wherever the
splice cannot be shown equal, the whole text is parsed.

Why the splice is the full parse:

* A top-level statement starts at column 0 of a line, after the previous one's last line, with
  no bracket open and the indentation stack at the top level. What the tokenizer and the
  grammar make of a statement's text depends only on that text and the lines before it that
  are not yet attributed (comment lines: a block's footer or the next statement's
  `leading_lines`). So the statements wholly before the change, and wholly after it, parse as
  they did.
* The changed region is widened by one unchanged statement on each side and parsed alone
  (after a `pass` line, so that its leading comments stay the statement's rather than becoming
  the module's header). The two boundary statements must come out equal (`deep_equals`) to the
  old ones and nothing may be left in the region's footer: then the region ends and starts in
  the same state as in the old parse, and its inner statements are what the full parse makes.
* Module fields the parser infers from the whole text are checked: `default_indent` (the first
  indented block's indent; blocks write `indent=None` when theirs is the default) must come out
  the same, `default_newline` is `\\n` (a text with `\\r` is parsed whole), the footer and
  `has_trailing_newline` are the old module's while the end is unchanged, and the header and
  encoding the old module's only when the first two lines are unchanged.
* A region that does not parse falls back to the full parse, which gives the real error (or,
  if the region was cut wrong, the real tree).

The statements' lengths (what maps the text's changed span onto statements) come from libcst's
codegen of each statement, once per document (`prepare`, off the critical path in the server),
then only for the re-parsed statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst._nodes.internal import CodegenState
from qfix.source.parse import parse_module

_PASS = "pass\n"


def _length(node: cst.CSTNode, module: cst.Module) -> int:
    return len(_code(node, module))


_SLOTS = ("body", "handlers", "cases", "orelse", "finalbody")  # in source order


def _block_indent(node: cst.CSTNode, default: str) -> str | None:
    """The indent of the first indented block in a top-level statement `node` (where the
    tokenizer's first INDENT is: nested blocks come after their parent's), None without one.
    Clauses (elif, else, except, finally, case) are searched in order."""
    if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite, cst.BaseSmallStatement)):
        return None
    for name in _SLOTS:
        value = getattr(node, name, None)
        for slot in value if isinstance(value, (tuple, list)) else [value]:
            if isinstance(slot, cst.IndentedBlock):
                return default if slot.indent is None else slot.indent
            if isinstance(slot, cst.CSTNode):
                got = _block_indent(slot, default)
                if got is not None:
                    return got
    return None


def _common(a: str, b: str, limit: int, cut) -> int:
    """The longest k <= limit with cut(a, k) == cut(b, k) (a common prefix or suffix), by
    bisection over slices compared in C."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cut(a, mid) == cut(b, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class Parsed:
    """A text and its libcst module (None when it does not parse: `error` holds why)."""

    text: str
    module: cst.Module | None
    error: Exception | None = None
    # per top-level statement: its length in characters; the header's and footer's
    lengths: list[int] | None = field(default=None, repr=False)
    head: int = 0
    foot: int = 0
    spliced: bool = False  # made by splicing (for the bench and the tests)
    # the last text before this one that parsed: an edit of a broken text is spliced into it
    base: "Parsed | None" = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> "Parsed":
        try:
            return cls(text, parse_module(text))
        except (cst.ParserSyntaxError, RecursionError, ValueError, SyntaxError) as exc:  # noqa: PERF203
            return cls(text, None, exc)

    @property
    def reusable(self) -> bool:
        m = self.module
        return m is not None and "\r" not in self.text

    def prepare(self) -> None:
        """Compute the statements' lengths (a codegen of the module), if not yet done."""
        m = self.module
        if self.lengths is not None or not self.reusable or m is None:
            return
        lengths = [_length(s, m) for s in m.body]
        head = sum(_length(line, m) for line in m.header)
        foot = sum(_length(line, m) for line in m.footer)
        if head + sum(lengths) + foot == len(self.text) + (not m.has_trailing_newline):
            self.lengths, self.head, self.foot = lengths, head, foot

    def update(self, text: str) -> "Parsed":
        """The parse of `text` (an edit of this one), reusing unchanged statements' nodes."""
        if text == self.text:
            return self
        good = self if self.module is not None else self.base
        spliced = good._splice(text) if good is not None and good.reusable and "\r" not in text else None
        if spliced is not None:
            return spliced
        out = Parsed.parse(text)
        if out.module is None:
            out.base = good
        return out

    # -- the splice ----------------------------------------------------------------------------
    def _splice(self, text: str) -> "Parsed | None":
        self.prepare()
        old, lengths, m = self.text, self.lengths, self.module
        if lengths is None or m is None:
            return None
        n = len(lengths)
        limit = min(len(old), len(text))
        p = _common(old, text, limit, lambda a, k: a[:k])
        s = _common(old, text, limit - p, lambda a, k: a[len(a) - k:])
        # statements wholly in the common prefix / suffix (by the old text's offsets)
        starts = []
        at = self.head
        for ln in lengths:
            starts.append(at)
            at += ln
        i0 = 0
        while i0 < n and starts[i0] + lengths[i0] <= p:
            i0 += 1
        j0 = n
        while j0 > 0 and starts[j0 - 1] >= len(old) - s:
            j0 -= 1
        # widen by one unchanged statement on each side (the boundary checks)
        i = max(i0 - 1, 0)
        j = min(j0 + 1, n)
        if i == 0 and j == n:
            return None
        if i > 0 and old.count("\n", 0, starts[i]) < 2:
            return None  # the first two lines (an encoding cookie) are in the region
        start = starts[i] if i > 0 else 0
        tail = (len(old) - starts[j]) if j < n else 0
        region = text[start:len(text) - tail]
        try:
            got = parse_module((_PASS if i > 0 else "") + region)
        except (cst.ParserSyntaxError, RecursionError, ValueError, SyntaxError):
            return None
        body = list(got.body[1:] if i > 0 else got.body)
        if i > 0:
            if got.header or not body or not body[0].deep_equals(m.body[i]):
                return None
        if j < n:
            if got.footer or not got.has_trailing_newline or not body or not body[-1].deep_equals(m.body[j - 1]):
                return None
            if i > 0 and len(body) < 2:
                return None
        # default_indent: the first indented block's, in the new order of statements
        kept = [*m.body[:i], *m.body[j:]]
        mid_default = got.default_indent
        new_default = None
        for stmt, default in [*((x, m.default_indent) for x in m.body[:i]), *((x, mid_default) for x in body),
                              *((x, m.default_indent) for x in m.body[j:])]:
            new_default = _block_indent(stmt, default)
            if new_default is not None:
                break
        if new_default is None:
            new_default = cst.Module(body=()).default_indent  # the parser's default
        if any(_block_indent(x, m.default_indent) is not None for x in kept) and new_default != m.default_indent:
            return None
        if any(_block_indent(x, mid_default) is not None for x in body) and new_default != mid_default:
            return None
        fields = {"body": [*m.body[:i], *body, *m.body[j:]], "default_indent": new_default}
        if i == 0:
            fields.update(header=got.header, encoding=got.encoding, default_newline=got.default_newline)
        if j == n:
            fields.update(footer=got.footer, has_trailing_newline=got.has_trailing_newline)
        module = m.with_changes(**fields)
        out = Parsed(text, module, spliced=True)
        mid = [_length(x, module) for x in body]
        head = self.head if i > 0 else sum(_length(x, module) for x in module.header)
        foot = self.foot if j < n else sum(_length(x, module) for x in module.footer)
        lens = [*lengths[:i], *mid, *lengths[j:]]
        if head + sum(lens) + foot == len(text) + (not module.has_trailing_newline):
            out.lengths, out.head, out.foot = lens, head, foot
        return out


def code_of(module: cst.Module, base: Parsed) -> str:
    """`module.code` for a module made from `base.module` by replacing some statements (a
    fix): the statements it shares with `base` are sliced from `base.text` instead of being
    generated again (the codegen of a 1,000-line module costs about a parse). Generated whole
    where the module's layout fields differ from the base's."""
    m, lengths = base.module, base.lengths
    if (m is None or lengths is None or not m.has_trailing_newline or not module.has_trailing_newline
            or not module.body or module.default_indent != m.default_indent
            or module.default_newline != m.default_newline):
        return module.code
    spans: dict[int, tuple[int, int]] = {}
    at = base.head
    for stmt, ln in zip(m.body, lengths):
        spans[id(stmt)] = (at, at + ln)
        at += ln
    text = base.text
    out = [text[:base.head] if _same(module.header, m.header) else "".join(_code(x, module) for x in module.header)]
    for stmt in module.body:
        span = spans.get(id(stmt))
        out.append(text[span[0]:span[1]] if span is not None else _code(stmt, module))
    out.append(text[len(text) - base.foot:] if _same(module.footer, m.footer) else "".join(_code(x, module) for x in module.footer))
    return "".join(out)


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _code(node: cst.CSTNode, module: cst.Module) -> str:
    state = CodegenState(default_indent=module.default_indent, default_newline=module.default_newline)
    node._codegen(state)
    return "".join(state.tokens)
