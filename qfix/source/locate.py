"""Line/column ranges of a few nodes of a module, without positions for the whole tree.

libcst's `PositionProvider` generates the code of the whole module while recording a range for
every node: about a third of a 1,000-line file's check, where a check wants the ranges of its
few findings. `locate` records them only for the top-level statements that hold the wanted
nodes, with the same codegen state libcst's provider uses (so the ranges are the provider's,
not a re-derivation); the statements before them are generated without recording, just to
count their lines (both kept per statement by `qfix.source.memo` in the editor). A node not found under a top-level statement (the Module itself, a node of
another tree) falls back to the whole provider.

Ranges are `libcst.metadata.CodeRange`: lines 1-based, columns 0-based in code points.
`PositionProvidingCodegenState` and `CodegenState` are libcst internals (1.5-1.9 checked);
tests/source/test_locate.py compares the result with the provider's on real files.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider
from libcst.metadata.position_provider import PositionProvidingCodegenState

from qfix.source import memo
from qfix.source.preorder import subtree


class _Ranges:
    """What `PositionProvidingCodegenState` writes to (libcst's provider keeps `_computed`)."""

    def __init__(self) -> None:
        self._computed: dict[cst.CSTNode, CodeRange] = {}


def whole(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    """libcst's PositionProvider over the whole module (the module is not copied)."""
    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


def locate(module: cst.Module, nodes: Iterable[cst.CSTNode]) -> Mapping[cst.CSTNode, CodeRange]:
    """Ranges (as `PositionProvider` gives them) for at least `nodes`, which must belong to
    `module`; nodes of the statements that hold them get theirs too, others are absent."""
    wanted = {id(n) for n in nodes}
    if not wanted:
        return {}
    holders: set[int] = set()
    found: set[int] = set()
    for i, stmt in enumerate(module.body):
        hits = wanted.intersection(memo.of("node_ids", stmt, _node_ids))
        if hits:
            holders.add(i)
            found |= hits
    if found != wanted:
        return whole(module)
    ranges = _Ranges()
    state = PositionProvidingCodegenState(default_indent=module.default_indent,
                                          default_newline=module.default_newline, provider=ranges)
    for line in module.header:
        line._codegen(state)
    for i, stmt in enumerate(module.body[:max(holders) + 1]):
        if i in holders:
            stmt._codegen(state)
        else:  # only its extent: a top-level statement starts and ends at column 0
            kind = ("code", module.default_indent, module.default_newline)
            state._update_position(memo.of(kind, stmt, lambda s: _code(s, module)))
    return ranges._computed


def _node_ids(stmt: cst.CSTNode) -> frozenset[int]:
    return frozenset(map(id, subtree(stmt)))


def _code(stmt: cst.CSTNode, module: cst.Module) -> str:
    plain = CodegenState(default_indent=module.default_indent, default_newline=module.default_newline)
    stmt._codegen(plain)
    return "".join(plain.tokens)
