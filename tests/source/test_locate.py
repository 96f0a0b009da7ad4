"""`qfix.source.locate` gives the ranges libcst's PositionProvider gives, node for node: on real
files (qfix's own sources and the fixture trees: decorators, nested blocks, comments before and
after statements, strings over several lines, files without a trailing newline, CRLF files)."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from qfix.source.locate import locate, whole
from qfix.source.util import iter_nodes

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "qfix" / "source").glob("*.py"), *(ROOT / "fixtures").rglob("*.py")])

ODD = {
    "no trailing newline": "import keras\n\n@deco\ndef f(x):\n    '''a\n    b'''\n    return x  # c\n# after\nx = f(1)",
    "crlf": "import keras\r\nif x:\r\n    y = 1\r\n    # end of block\r\nelse:\r\n    y = 2\r\nz = (1,\r\n     2)\r\n",
    "comments first": "# header\n\n# more\nimport tensorflow as tf; a = 1\nclass A:\n    def g(self): pass\n\n\n\nb = A()\n",
    "tabs and continuation": "def f():\n\tif a and \\\n\t\t\tb:\n\t\treturn 1\nv = f()\n",
}


def check(module: cst.Module, samples: int | None = None) -> int:
    """Compares the ranges of `samples` nodes spread over the module (all when None)."""
    full = whole(module)
    nodes = list(iter_nodes(module))[1:]
    step = max(1, len(nodes) // samples) if samples else 1
    for node in nodes[::step]:
        assert locate(module, [node])[node] == full[node], (type(node).__name__, module.code_for_node(node)[:80])
    return len(nodes[::step])


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_real_files(path: Path):
    module = cst.parse_module(path.read_text(encoding="utf-8"))
    assert check(module, samples=6) > 0 or not module.body


@pytest.mark.parametrize("name", ODD)
def test_odd_layouts_every_node(name: str):
    assert check(cst.parse_module(ODD[name])) > 3


def test_several_nodes_and_the_module_itself():
    module = cst.parse_module(ODD["comments first"])
    full = whole(module)
    nodes = list(iter_nodes(module))
    first, last = nodes[3], nodes[-2]
    got = locate(module, [first, last])
    assert got[first] == full[first] and got[last] == full[last]
    assert locate(module, [module])[module] == full[module]  # not under a statement: the whole provider
    assert locate(module, []) == {}
