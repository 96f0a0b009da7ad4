"""Deeply nested files never take qfix down (review of issue 12: 1,500 nested parentheses made
libcst's native parser overflow its stack; the command line and the language server died with a
segmentation fault, no word). Each kind of depth, through the installed console script: what
CPython refuses for its depth is QF915 in CPython's words, the rest is checked; every run ends
with its one line and an exit status, in seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qfix.source.parse import LONG_STATEMENT, MAX_BRACKETS, _may_be_too_deep, parse_module

DEEP = {
    # name: (text, what the run says)
    "parentheses": ("x = " + "(" * 1500 + "1" + ")" * 1500 + "\n", "too many nested parentheses"),
    "lists": ("x = " + "[" * 1500 + "]" * 1500 + "\n", "too many nested parentheses"),
    "indentation": ("".join("    " * i + "if x:\n" for i in range(150)) + "    " * 150 + "pass\n",
                    "too many levels of indentation"),
    "unary-chain": ("x = " + "-" * 20000 + "1\n", "nested too deeply for Python's own parser"),
    "not-chain": ("x = " + "not " * 10000 + "y\n", "nested too deeply for Python's own parser"),
    "binary-chain": ("x = " + "+".join(["1"] * 10000) + "\n", "maximum recursion depth"),
    "attribute-chain": ("x = a" + ".b" * 10000 + "\n", "maximum recursion depth"),
    "call-chain-over-lines": ("x = (f\n" + "()\n" * 10000 + ")\n", "maximum recursion depth"),
    "and-chain": ("x = " + " and ".join(["a"] * 20000) + "\n", None),  # CPython takes it: checked
}


def qfix(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qfix", str(path)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_file_is_reported_not_a_crash(tmp_path: Path, name: str):
    text, says = DEEP[name]
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    proc = qfix(path)
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr[-300:])  # not 139 (SIGSEGV) nor 137
    assert "Traceback" not in proc.stderr
    if says is None:
        assert proc.returncode == 0 and "All checks passed" in proc.stdout
    else:
        assert proc.returncode == 1 and "QF915" in proc.stdout and says in proc.stdout


def test_what_cpython_parses_is_not_refused():
    # 200 nested brackets, a 10,000-term flat chain, newer grammar (PEP 695): libcst decides
    assert parse_module("x = " + "(" * MAX_BRACKETS + "1" + ")" * MAX_BRACKETS + "\n")
    assert parse_module("x = " + " < ".join(["a"] * 10000) + "\n")
    assert parse_module("type Alias = list[int]\n" + "y = [" + "1, " * LONG_STATEMENT + "]\n")


@pytest.mark.parametrize(("text", "deep"), [
    ("import tensorflow as tf\nx = f(a, [b, {c: (d,)}])\n" * 500, False),
    ("x = '" + "a" * LONG_STATEMENT + "'\n", True),  # a long line: CPython is asked
    ("x = (\n" + "    1,\n" * LONG_STATEMENT + ")\n", True),  # a long bracketed span
    ("x = " + "(" * (MAX_BRACKETS + 1) + ")" * (MAX_BRACKETS + 1) + "\n", True),
    ("if a:\n" + " " * 100 + "pass\n", True),
])
def test_the_cheap_scan_asks_cpython_only_when_the_text_may_be_deep(text: str, deep: bool):
    assert _may_be_too_deep(text) is deep


def test_language_server_reports_a_deep_document_and_goes_on(tmp_path: Path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lsp"))
    from lsp_client import TRAIN, Wire

    wire = Wire(tmp_path)
    try:
        wire.send({"id": 1, "method": "initialize", "params": {"capabilities": {}, "rootUri": tmp_path.as_uri()}})
        wire.response(1)
        wire.send({"method": "initialized", "params": {}})
        for n, (name, (text, says)) in enumerate(list(DEEP.items())[:2] + [("ok", (TRAIN, None))]):
            uri = (tmp_path / f"{name}.py").as_uri()
            wire.send({"method": "textDocument/didOpen", "params": {"textDocument": {
                "uri": uri, "languageId": "python", "version": 1, "text": text}}})
            diags = wire.next(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                              and m["params"]["uri"] == uri, timeout=60)["params"]["diagnostics"]
            if says:
                assert [d["code"] for d in diags] == ["QF915"] and says in diags[0]["message"]
            else:
                assert "QF202" in [d["code"] for d in diags]
        wire.send({"id": 2, "method": "shutdown"})
        assert "error" not in wire.response(2)
        wire.send({"method": "exit"})
        assert wire.close() == 0
    finally:
        wire.close()
