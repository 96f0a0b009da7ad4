"""The text edits that turn a document's text into a fixed text, exactly.

The fixers work on the whole text (the same `qfix.source.engine` calls `qfix FILE --write`
makes); the editor gets the difference as a few `TextEdit`s on whole lines (difflib's opcodes
over the lines, line breaks kept), so that the client's markers and cursor outside the changed
lines stay where they are. All ranges refer to the original text and do not overlap, as LSP
requires ("TextEdit[]": applied as if simultaneously).
"""

from __future__ import annotations

from difflib import SequenceMatcher

from lsprotocol import types as lsp

from qfix.lsp.positions import UTF16, LineIndex


def _lines(index: LineIndex) -> list[str]:
    """The lines of the text with their line breaks (the last one possibly empty)."""
    bounds = [*index.starts, len(index.text)]
    return [index.text[bounds[k]:bounds[k + 1]] for k in range(len(index.starts))]


def text_edits(old: str, new: str, encoding: str = UTF16) -> list[lsp.TextEdit]:
    """Edits that make `old` into `new` (none when they are equal)."""
    if old == new:
        return []
    index = LineIndex(old)
    a, b = _lines(index), _lines(LineIndex(new))
    bounds = [*index.starts, len(old)]
    # the lines both texts begin and end with are left out of the diff: a fix changes a few
    # lines of a long file, and difflib's matching over repeated lines costs ~50 ms per 1,000
    top = 0
    while top < min(len(a), len(b)) and a[top] == b[top]:
        top += 1
    tail = 0
    while tail < min(len(a), len(b)) - top and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    edits = []
    matcher = SequenceMatcher(None, a[top:len(a) - tail], b[top:len(b) - tail], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        i1, i2, j1, j2 = i1 + top, i2 + top, j1 + top, j2 + top
        rng = lsp.Range(index.position_at(bounds[i1], encoding), index.position_at(bounds[i2], encoding))
        edits.append(lsp.TextEdit(range=rng, new_text="".join(b[j1:j2])))
    return edits


def workspace_edit(uri: str, version: int | None, edits: list[lsp.TextEdit],
                   document_changes: bool) -> lsp.WorkspaceEdit:
    """A WorkspaceEdit for one document: versioned `documentChanges` when the client supports
    them (it then refuses edits made for an older version), else the plain `changes` map."""
    if document_changes:
        doc = lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(text_document=doc, edits=edits)])
    return lsp.WorkspaceEdit(changes={uri: edits})
