"""libcst's parse of a whole file, where deep nesting cannot take the process down.

libcst's native (Rust) parser recurses once per nesting level and has no depth limit of its
own: 1,500 nested parentheses, or a chain of 8,000 `and`, overflow its thread's stack, a
segmentation fault that ends the command line run and the language server alike, with no word.
So the parse runs in a thread of its own with a large stack (`STACK`: only what the parse
touches is ever committed): a chain of 50,000 `and` parses there in 2 s.

What CPython itself refuses for its depth (more than 200 nested brackets: "too many nested
parentheses"; 100 indentation levels; an expression nested some 3,000 deep: RecursionError) is
refused here too, in its words: Python cannot run such a file, and libcst's parse of the last
kind takes minutes (a chain of 10,000 `+`) or gigabytes (8,000 unary minus: 3.5 GB). CPython's
parser (~9 ms for 1,000 lines) is asked only when a cheap scan says the text may be that deep:
a bracket nesting over 200, an indentation of 100 characters, or one statement of over
`LONG_STATEMENT` characters (a physical line, a bracketed span, or many backslash
continuations). Other syntax CPython 3.11 refuses is left to libcst, which knows newer grammars.
"""

from __future__ import annotations

import ast
import re
import threading
from typing import Any

import libcst as cst

STACK = 1 << 30  # bytes of stack for the parsing thread (virtual: committed as it is used)
MAX_BRACKETS = 200  # CPython's tokenizer: MAXLEVEL, "too many nested parentheses"
# CPython's recursion limit stops an expression nested ~3,000 deep, at least 3,000 characters
LONG_STATEMENT = 3000
_BRACKETS = re.compile(r"[()\[\]{}]")
_DEEP_INDENT = re.compile(r"^[ \t]{100}", re.MULTILINE)  # 100 levels need 100 whitespace characters
_LONG_LINE = re.compile(r"[^\n]{%d}" % LONG_STATEMENT)
# CPython's errors for a text nested deeper than it parses (tokenizer.c, compile.c)
_TOO_DEEP = ("too many nested parentheses", "too many levels of indentation", "too many statically nested blocks")


def parse_module(text: str) -> cst.Module:
    """`libcst.parse_module(text)` in a thread with a large stack. Raises libcst's
    ParserSyntaxError, ValueError or RecursionError as `libcst.parse_module` would, and
    SyntaxError or RecursionError (CPython's) for a text nested deeper than CPython parses."""
    _refuse_what_cpython_cannot_nest(text)
    return _in_big_stack(cst.parse_module, text)


def _refuse_what_cpython_cannot_nest(text: str) -> None:
    if not _may_be_too_deep(text):
        return
    try:
        compile(text, "<file>", "exec", ast.PyCF_ONLY_AST)
    except SyntaxError as exc:
        if any(t in str(exc.msg) for t in _TOO_DEEP):
            raise
    except MemoryError:  # CPython's parser gave up on a chain of unary operators
        raise RecursionError("nested too deeply for Python's own parser (it ran out of memory)") from None
    except ValueError:  # a null byte: libcst's to report
        pass


def _may_be_too_deep(text: str) -> bool:
    """Whether `text` may hold what CPython refuses for its depth (see the module docstring);
    brackets in strings and comments count too: it only decides whether CPython is asked."""
    if _LONG_LINE.search(text) or _DEEP_INDENT.search(text) or text.count("\\\n") * 80 > LONG_STATEMENT:
        return True
    depth = deepest = start = 0
    for m in _BRACKETS.finditer(text):
        if m.group() in "([{":
            if depth == 0:
                start = m.start()
            depth += 1
            deepest = max(deepest, depth)
        elif depth:
            depth -= 1
            if depth == 0 and m.start() - start > LONG_STATEMENT:
                return True
    return deepest > MAX_BRACKETS or (depth > 0 and len(text) - start > LONG_STATEMENT)


def _in_big_stack(fn, arg: Any) -> Any:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append((True, fn(arg)))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            out.append((False, exc))

    try:
        previous = threading.stack_size(STACK)
    except (ValueError, RuntimeError):  # the platform refuses the size: parse here
        return fn(arg)
    try:
        thread = threading.Thread(target=run, name="qfix-parse", daemon=True)
        thread.start()
    except RuntimeError:  # no thread (resource limits): parse here
        return fn(arg)
    finally:
        threading.stack_size(previous)
    thread.join()
    ok, value = out[0]
    if ok:
        return value
    raise value
