"""One pre-order walk per top-level statement, shared by every whole-file pass of a check.

The engine's walk (the rules' visit/leave callbacks), the file's activity, the names bound
anywhere, the converter analysis's escapes and `locate`'s node ids each went over every
statement: four to five walks of each tree, most of a check's time after libcst's parse.
`Preorder` walks a statement once into a flat tuple of its meaningful nodes (the engine's
order: source order, no whitespace or punctuation, `qfix.source.util.child_nodes`) and the end
of each node's subtree in it, so a subtree is a slice and the engine's walk a loop.

`index_module(module)` makes (or, in the editor, reuses through `qfix.source.memo`: a statement
the edit did not touch is the same node) each top-level statement's `Preorder` and registers
the statements and blocks inside it, so that `subtree(stmt)` of any of them is a slice. Other
nodes get a walk of their own, kept until the next check (`forget_subtrees`).
"""

from __future__ import annotations

from typing import Any, Callable

import libcst as cst

from qfix.source import memo
from qfix.source.util import _NODE_TYPES, _REV, _fields, is_node_type, iter_nodes

# the nodes whose subtree the passes ask for (`subtree`, `region`): libcst's concrete statements
# and blocks (listed: computing them from libcst's ABCs took 5 ms of the server's start-up;
# tests/source/test_preorder.py checks the list against libcst's classes)
_STATEMENTS = frozenset((
    cst.ClassDef, cst.For, cst.FunctionDef, cst.If, cst.IndentedBlock, cst.Match, cst.SimpleStatementLine,
    cst.SimpleStatementSuite, cst.Try, cst.TryStar, cst.While, cst.With,
))


class Preorder:
    """The meaningful nodes under `root` (itself first) in pre-order: `nodes[i:end[i]]` is the
    subtree of `nodes[i]`; `statements` maps the id of each statement and block in it to its
    index."""

    __slots__ = ("nodes", "end", "statements")

    def __init__(self, root: cst.CSTNode) -> None:
        nodes: list[Any] = []
        end: list[int] = []
        statements: dict[int, int] = {}
        rev = _REV
        node_get = _NODE_TYPES.get
        stack: list[Any] = [root]
        pop, push = stack.pop, stack.append
        while stack:
            x = pop()
            t = type(x)
            if t is int:  # the subtree of nodes[x] ends here
                end[x] = len(nodes)
                continue
            i = len(nodes)
            nodes.append(x)
            end.append(i + 1)
            if t in _STATEMENTS:
                statements[id(x)] = i
            names = rev.get(t)
            if names is None:
                _fields(t)
                names = rev[t]
            depth = len(stack)
            push(i)
            for name in names:
                v = getattr(x, name)
                tv = type(v)
                if tv is tuple or tv is list:
                    for c in reversed(v):
                        tc = type(c)
                        ok = node_get(tc)
                        if ok or (ok is None and is_node_type(tc)):
                            push(c)
                else:
                    ok = node_get(tv)
                    if ok or (ok is None and is_node_type(tv)):
                        push(v)
            if len(stack) == depth + 1:  # a leaf: its end is set, no marker needed
                pop()
        self.nodes = tuple(nodes)
        self.end = end
        self.statements = statements

    def walk(self, visit: dict[type, list[Callable[[Any], None]]], leave: dict[type, list[Callable[[Any], None]]]) -> None:
        """Call `visit[type(node)]` on each node in order and `leave[type(node)]` after its
        subtree (what the engine's walk did with a stack, as one loop)."""
        nodes, end = self.nodes, self.end
        visit_get = visit.get
        open_: list[tuple[int, Any]] = []  # (end of its subtree, node) with leave callbacks
        for i, x in enumerate(nodes):
            while open_ and open_[-1][0] <= i:
                node = open_.pop()[1]
                for cb in leave[type(node)]:
                    cb(node)
            t = type(x)
            cbs = visit_get(t)
            if cbs:
                for cb in cbs:
                    cb(x)
            if t in leave:
                open_.append((end[i], x))
        while open_:
            node = open_.pop()[1]
            for cb in leave[type(node)]:
                cb(node)


def statement_preorder(stmt: cst.CSTNode) -> Preorder:
    """The `Preorder` of a top-level statement: the module last indexed's, else made (and kept
    between an editor's checks, `qfix.source.memo`)."""
    hit = _INDEXED.get(id(stmt))
    if hit is not None and hit[0] is stmt and hit[2] == 0:
        return hit[1]
    return memo.of("preorder", stmt, Preorder)


# id of a statement -> (its node, the Preorder holding it, its index there); id of another node
# -> (node, its subtree). Filled by `index_module` and `subtree`, emptied when a check starts.
_INDEXED: dict[int, tuple[Any, Preorder, int]] = {}
_SUBTREES: dict[int, tuple[Any, tuple[Any, ...]]] = {}


def index_module(module: cst.Module) -> list[Preorder]:
    """Each top-level statement's `Preorder`, its statements registered for `subtree`."""
    forget_subtrees()
    out = []
    for stmt in module.body:
        p = statement_preorder(stmt)
        nodes = p.nodes
        _INDEXED.update((k, (nodes[i], p, i)) for k, i in p.statements.items())
        out.append(p)
    return out


def region(node: cst.CSTNode) -> tuple[tuple[cst.CSTNode, ...], list[int], int]:
    """`(nodes, end, i)` with `nodes[i] is node`: the pre-order holding `node` (its statement's,
    when `node` is a statement or block of the module last indexed, else a walk of its own),
    so that `nodes[i:end[i]]` is its subtree and `end[j]` skips the subtree at `j`."""
    hit = _INDEXED.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1].nodes, hit[1].end, hit[2]
    p = Preorder(node)
    return p.nodes, p.end, 0


def child_subtree(nodes: tuple[cst.CSTNode, ...], end: list[int], i: int, child: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
    """The subtree of `child`, a child of `nodes[i]` (found by skipping its earlier siblings'
    subtrees), as a slice of `nodes`."""
    j, stop = i + 1, end[i]
    while j < stop and nodes[j] is not child:
        j = end[j]
    if j >= stop:  # not a meaningful child: walk it
        return tuple(iter_nodes(child))
    return nodes[j:end[j]]


def subtree(node: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
    """`iter_nodes(node)` as a tuple: a slice of its statement's `Preorder` when `node` is a
    statement or block of the module last indexed, else computed once until `forget_subtrees()`."""
    hit = _INDEXED.get(id(node))
    if hit is not None and hit[0] is node:
        p, i = hit[1], hit[2]
        return p.nodes[i:p.end[i]]
    got = _SUBTREES.get(id(node))
    if got is not None and got[0] is node:
        return got[1]
    out = tuple(iter_nodes(node))
    _SUBTREES[id(node)] = (node, out)
    return out


def forget_subtrees() -> None:
    _INDEXED.clear()
    _SUBTREES.clear()
