"""Results of pure functions of one subtree, kept from one check of a document to the next.

After an edit the editor's module shares every unchanged top-level statement's nodes with the
previous one (`qfix.source.incremental`). A few whole-file passes of the rules are unions of
per-statement (or per-function) results that depend on that subtree alone: the names bound
anywhere, a function's binding table, the node ids under a statement (`locate`), a statement's
generated text. Those are kept here by node identity, so the next check computes them only for
the statements that changed; the file-wide parts that depend on several statements (the import
aliases, the converter analysis, `Activity`) are computed again, whole.

Off unless `enable()`d (the language server): a command-line run checks each file once and
would only hold the trees alive. An entry holds its node, so the node's `id` cannot be reused
while the entry exists; the table is emptied when it reaches `LIMIT` entries. Values are
shared between checks: callers must not change them.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

LIMIT = 5_000  # about ten 1,000-line documents; bounds the old statements kept alive

_on = False
_table: dict[tuple[Hashable, int], tuple[Any, Any]] = {}


def enable(on: bool = True) -> None:
    global _on
    _on = on
    if not on:
        _table.clear()


def of(kind: Hashable, node: Any, compute: Callable[[Any], Any]) -> Any:
    """`compute(node)`, or its value from an earlier call with this very node and `kind`."""
    if not _on:
        return compute(node)
    key = (kind, id(node))
    hit = _table.get(key)
    if hit is not None and hit[0] is node:
        return hit[1]
    value = compute(node)
    if len(_table) >= LIMIT:
        _table.clear()
    _table[key] = (node, value)
    return value
