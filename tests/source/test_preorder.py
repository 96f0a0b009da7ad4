"""`qfix.source.preorder`: the flat walk the whole-file passes share gives, node for node, what
the field walk it replaced gives (`iter_nodes`, and a recursive visit/leave), on qfix's own
sources, the fixture trees and odd layouts; the scope tables and the names bound anywhere read
from it match a walk of their own."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from qfix.source import memo
from qfix.source.arrays import Binding, scope_bindings
from qfix.source.preorder import (_STATEMENTS, Preorder, child_subtree, forget_subtrees, index_module, region, statement_preorder,
                                  subtree)
from qfix.source.rule import _tflite_names
from qfix.source.util import child_nodes, iter_nodes

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "qfix" / "source").glob("*.py"), *(ROOT / "fixtures").rglob("*.py")])

ODD = (
    "@deco(a, b=lambda q: q)\nasync def f(x, *a, k=[i for i in y], **kw) -> int:\n"
    "    class C(B, metaclass=M):\n        z: int = 1\n    with open(p) as (a, b):\n        pass\n"
    "    try:\n        yield (w := 3)\n    except E as e:\n        global g\n    finally:\n        del z\n"
    "match v:\n    case 'a' | 'b':\n        x = {k: v for k, v in d}\n    case _:\n        pass\n"
    "if a: b = 1\nelif c: d = 2\nelse: e = 3\nfor i, (j, k) in x: break\nwhile t: continue\n"
)


def modules():
    for path in FILES:
        yield str(path.relative_to(ROOT)), cst.parse_module(path.read_text(encoding="utf-8"))
    yield "odd", cst.parse_module(ODD)


@pytest.mark.parametrize(("name", "module"), list(modules()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_subtree_is_the_field_walk(name: str, module: cst.Module):
    for stmt in module.body:
        p = Preorder(stmt)
        assert list(p.nodes) == list(iter_nodes(stmt))
        for i, node in enumerate(p.nodes):
            assert list(p.nodes[i:p.end[i]]) == list(iter_nodes(node)), type(node).__name__
        kinds = {type(p.nodes[i]) for i in p.statements.values()}
        assert all(issubclass(k, (cst.BaseStatement, cst.BaseSuite)) for k in kinds)


def test_the_statement_types_are_libcsts():
    concrete = {t for t in vars(cst).values() if isinstance(t, type) and issubclass(t, (cst.BaseStatement, cst.BaseSuite))
                and not getattr(t, "__abstractmethods__", None)}
    assert _STATEMENTS == concrete


def _reference(node: cst.CSTNode, out: list) -> None:
    out.append(("visit", node))
    for child in child_nodes(node):
        _reference(child, out)
    out.append(("leave", node))


@pytest.mark.parametrize(("name", "module"), list(modules())[-3:], ids=lambda x: x if isinstance(x, str) else "")
def test_walk_calls_visit_before_and_leave_after_each_subtree(name: str, module: cst.Module):
    types = {cst.FunctionDef, cst.ClassDef, cst.Call, cst.Name, cst.IndentedBlock, cst.If}
    got: list = []
    visit = {t: [lambda n: got.append(("visit", n))] for t in types}
    leave = {t: [lambda n: got.append(("leave", n))] for t in types}
    for stmt in module.body:
        Preorder(stmt).walk(visit, leave)
    want: list = []
    for stmt in module.body:
        _reference(stmt, want)
    assert [(k, id(n)) for k, n in got] == [(k, id(n)) for k, n in want if type(n) in types]


def test_subtree_and_region_of_the_module_last_indexed():
    module = cst.parse_module(ODD)
    preorders = index_module(module)
    fn = module.body[0]
    assert subtree(fn) is not None and subtree(fn)[0] is fn
    nodes, end, at = region(fn.body)
    assert nodes is preorders[0].nodes and nodes[at] is fn.body  # a slice, not a walk of its own
    assert statement_preorder(fn) is preorders[0]
    call = fn.decorators[0].decorator  # not a statement: a walk of its own
    assert list(subtree(call)) == list(iter_nodes(call))
    nodes, end, at = region(call)
    assert nodes[at] is call and list(nodes[at:end[at]]) == list(iter_nodes(call))
    forget_subtrees()
    nodes, _, _ = region(fn)
    assert nodes is not preorders[0].nodes  # forgotten: walked again


def test_child_subtree_skips_the_earlier_siblings():
    stmt = cst.parse_module("x.a = [tf.lite.Optimize.DEFAULT, y]\n").body[0]
    p = Preorder(stmt)
    assign = stmt.body[0]
    i = p.nodes.index(assign)
    assert list(child_subtree(p.nodes, p.end, i, assign.value)) == list(iter_nodes(assign.value))
    assert list(child_subtree(p.nodes, p.end, i, assign.targets[0])) == list(iter_nodes(assign.targets[0]))


def test_preorders_are_kept_between_checks_only_with_memo():
    module = cst.parse_module(ODD)
    forget_subtrees()
    assert statement_preorder(module.body[1]) is not statement_preorder(module.body[1])
    memo.enable()
    try:
        assert statement_preorder(module.body[1]) is statement_preorder(module.body[1])
    finally:
        memo.enable(False)


def _bindings_by_walk(body: cst.CSTNode) -> dict[str, int]:
    """Names bound in `body` not below a nested scope, counted, by a walk of their own."""
    nested = (cst.FunctionDef, cst.ClassDef, cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)
    out: dict[str, int] = {}
    stack = list(child_nodes(body))
    while stack:
        x = stack.pop()
        if isinstance(x, nested):
            if isinstance(x, (cst.FunctionDef, cst.ClassDef)):
                out[x.name.value] = out.get(x.name.value, 0) + 1
            continue
        if isinstance(x, cst.AssignTarget) and isinstance(x.target, cst.Name):
            out[x.target.value] = out.get(x.target.value, 0) + 1
        stack.extend(child_nodes(x))
    return out


def test_scope_bindings_skip_nested_scopes():
    module = cst.parse_module(
        "a = 1\ndef f(p):\n    b = 2\n    def g():\n        c = 3\n    h = lambda: (d := 4)\n    e = [z for z in b]\n"
        "class K:\n    m = 5\nn = 6\n")
    index_module(module)
    table = scope_bindings(module)
    assert {k: len(v) for k, v in table.items() if k in "afKn"} == {"a": 1, "f": 1, "K": 1, "n": 1}
    assert not {"b", "c", "d", "m", "z"} & set(table)
    inner = scope_bindings(module.body[1].body, module.body[1].params)
    assert set(inner) == {"p", "b", "g", "h", "e"}
    assert isinstance(inner["g"][0], Binding) and inner["g"][0].how == "def"
    forget_subtrees()  # not indexed: the same table from a walk of its own
    assert set(scope_bindings(module.body[1].body, module.body[1].params)) == set(inner)
    for name, count in _bindings_by_walk(module).items():
        assert len(table[name]) == count


@pytest.mark.parametrize(("code", "names"), [
    ('open("out/model_INT8.tflite", "wb")', ["model_int8"]),
    ("p = 'a_fp16.tflite'; q = \"dir/x_weight_quant.TFLITE\"", ["a_fp16", "x_weight_quant"]),
    ('p = f"{name}_edgetpu.tflite"', ["{name}_edgetpu"]),
    ("# int8 first\np = 'model.tflite'", ["model"]),  # a keyword on an earlier line is not the name
    ("x = 1", []),
])
def test_tflite_names(code: str, names: list[str]):
    assert _tflite_names(code).split("\n") == (names or [""])
