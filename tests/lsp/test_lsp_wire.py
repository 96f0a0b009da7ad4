"""What a broken or hostile client sends, byte for byte, to `qfix lsp` (the installed console
script): requests it cannot read get JSON-RPC errors with their ids, bodies that are not JSON a
parse error, and the server goes on checking documents and ends cleanly on shutdown/exit."""

from __future__ import annotations

from pathlib import Path

from lsp_client import TRAIN, Wire

URI_OK = "file:///tmp/qfix-wire/ok.py"


def test_malformed_requests_get_errors_and_the_server_keeps_answering(tmp_path: Path):
    wire = Wire(tmp_path)
    try:
        wire.send({"id": 1, "method": "initialize", "params": {"capabilities": {}, "rootUri": tmp_path.as_uri()}})
        assert "capabilities" in wire.response(1)["result"]
        wire.send({"method": "initialized", "params": {}})

        wire.send({"id": 2, "method": "textDocument/codeAction", "params": {"textDocument": 5}})
        assert wire.response(2)["error"]["code"] == -32602  # invalid params
        wire.send({"id": "three", "method": "textDocument/codeAction", "params": None})
        assert wire.response("three")["error"]["code"] == -32602
        wire.send({"id": 4, "method": "qfix/noSuchMethod", "params": {}})
        assert wire.response(4)["error"]["code"] == -32601  # method not found
        wire.raw(b"{not json at all}")
        assert wire.response(None)["error"]["code"] == -32700  # parse error, id null
        wire.raw(b"[1, 2, 3]")
        wire.raw(b'"a string"')
        wire.send({"method": "textDocument/didOpen", "params": {"textDocument": {"uri": 7}}})
        wire.send({"method": "textDocument/didChange", "params": {"textDocument": {"uri": URI_OK, "version": 2},
                                                                  "contentChanges": [{"text": "x"}]}})
        wire.send({"method": "$/unknownNotification", "params": {"x": 1}})
        wire.send({"id": 5, "method": "textDocument/codeAction", "params": {
            "textDocument": {"uri": URI_OK}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            "context": {"diagnostics": []}}})
        assert wire.response(5)["result"] is None  # a document that is not open: nothing to act on
        for n, data in enumerate(({"uri": [1]}, {"uri": URI_OK, "version": "x"}, "junk", None), start=10):
            wire.send({"id": n, "method": "codeAction/resolve", "params": {"title": "made up", "data": data}})
            assert wire.response(n)["result"]["title"] == "made up"  # returned as sent: no edit

        # still checking documents
        wire.send({"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": URI_OK, "languageId": "python", "version": 1, "text": TRAIN}}})
        diags = wire.next(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                          and m["params"]["uri"] == URI_OK)["params"]["diagnostics"]
        assert [d["code"] for d in diags] == ["QF202", "QF204", "QF105", "QF104"]

        wire.send({"id": 6, "method": "shutdown"})
        assert "error" not in wire.response(6)
        # LSP: a request after shutdown is an InvalidRequest error, not left unanswered (review)
        wire.send({"id": 7, "method": "textDocument/codeAction", "params": {
            "textDocument": {"uri": URI_OK}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            "context": {"diagnostics": []}}})
        assert wire.response(7)["error"]["code"] == -32600
        wire.send({"id": 8, "method": "shutdown"})
        assert wire.response(8)["error"]["code"] == -32600
        wire.send({"method": "exit"})
        assert wire.close() == 0
    finally:
        wire.close()


def test_exit_without_shutdown_and_a_closed_stream_end_the_server(tmp_path: Path):
    wire = Wire(tmp_path, "--stdio")  # what some clients pass: accepted
    try:
        wire.send({"id": 1, "method": "initialize", "params": {"capabilities": {}}})
        wire.response(1)
        wire.send({"method": "exit"})
        assert wire.close() == 1  # LSP: exit before shutdown ends with 1
    finally:
        wire.close()
    wire = Wire(tmp_path)
    wire.send({"id": 1, "method": "initialize", "params": {"capabilities": {}}})
    wire.response(1)
    assert wire.close() in (0, 1)  # the client went away: the server ends, no hang
    assert b"Traceback" not in wire.proc.stderr.read()


def test_a_ranged_change_is_applied_where_it_says(tmp_path: Path):
    """The server asks for Full sync; a client that sends ranged changes anyway (review of issue
    12: pygls took the fragment for the whole document) gets them applied at their UTF-16 range."""
    wire = Wire(tmp_path)
    uri = (tmp_path / "ranged.py").as_uri()
    try:
        wire.send({"id": 1, "method": "initialize", "params": {"capabilities": {}, "rootUri": tmp_path.as_uri()}})
        wire.response(1)
        wire.send({"method": "initialized", "params": {}})
        wire.send({"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": TRAIN}}})
        wire.next(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri)
        # line 5 is `label = "café 😀"; x = keras.layers.Lambda(...)`, the emoji two UTF-16 units:
        # replace ` x =` (UTF-16 columns 18-22) by `xx = `, and delete line 6 entirely
        wire.send({"method": "textDocument/didChange", "params": {"textDocument": {"uri": uri, "version": 2},
            "contentChanges": [
                {"range": {"start": {"line": 5, "character": 18}, "end": {"line": 5, "character": 22}}, "text": "xx = "},
                {"range": {"start": {"line": 6, "character": 0}, "end": {"line": 7, "character": 0}}, "text": ""}]}})
        diags = wire.next(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                          and m["params"]["uri"] == uri and m["params"].get("version") == 2)["params"]["diagnostics"]
        # the text `qfix` gets for the same edit: `label = "café 😀";xx =  keras.layers.Lambda(...)`,
        # the Lambda at code point 23 (UTF-16 unit 24), and no `c = tflite_converter(m)` line
        lam = next(d for d in diags if d["code"] == "QF202")
        assert lam["range"]["start"] == {"line": 5, "character": 24}
        assert [d["range"]["start"]["line"] for d in diags if d["code"] == "QF204"] == [6]  # was line 7
        wire.send({"id": 2, "method": "textDocument/codeAction", "params": {
            "textDocument": {"uri": uri}, "range": lam["range"], "context": {"diagnostics": [], "only": ["source.fixAll"]}}})
        assert wire.response(2)  # the server still answers
    finally:
        wire.close()
