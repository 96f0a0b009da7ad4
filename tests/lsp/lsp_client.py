"""What the language server's end-to-end tests share: a real LSP client (pytest-lsp's, on pygls)
that starts `qfix lsp` through the installed console script over stdio and records every
`textDocument/publishDiagnostics`, a client-side applier of the server's edits written
independently of the server's position code, and the real `qfix` CLI to compare with."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lsprotocol import types as lsp
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

import lsp_wire

ROOT = Path(__file__).resolve().parents[2]
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent))
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
FIXTURES = ROOT / "fixtures"

# Several findings of distinct codes: QF202 (safe, after a non-BMP character on its line),
# QF204 (safe, adds `import tensorflow as tf`), QF105 (unsafe), QF104 (display-only).
TRAIN = '''"""Export for the Edge TPU."""
from tensorflow.lite import constants
import keras
import numpy as np

label = "café 😀"; x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
c = tflite_converter(m)
c.inference_input_type = constants.INT8
noise = np.random.rand(1, 8, dtype=np.float32)
y = keras.ops.cast(keras.random.normal([3]), "uint8")
'''
PYPROJECT = '[tool.qfix]\ntarget = "edgetpu"\n'


def make_client() -> LanguageClient:
    """pytest-lsp's test client, recording every publishDiagnostics (with its version)."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]
    client.registrations = []  # type: ignore[attr-defined]

    def publish(client: LanguageClient, params: lsp.PublishDiagnosticsParams) -> None:
        client.diagnostics[params.uri] = params.diagnostics
        client.published.append(params)  # type: ignore[attr-defined]

    def register(client: LanguageClient, params: lsp.RegistrationParams) -> None:
        client.registrations.extend(params.registrations)  # type: ignore[attr-defined]

    register_lsp_features(client, {**DEFAULT_CLIENT_FEATURES, lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish,
                                   lsp.CLIENT_REGISTER_CAPABILITY: register})
    return client


def server_config(**env: str) -> ClientServerConfig:
    assert QFIX, f"no qfix console script next to {sys.executable}"
    return ClientServerConfig(server_command=[QFIX, "lsp"], client_factory=make_client, server_env={**ENV, **env})


async def published(client: LanguageClient, uri: str, *, after: int = 0, version: int | None = None,
                    timeout: float = 60.0) -> lsp.PublishDiagnosticsParams:
    """The first publishDiagnostics for `uri` (of `version`, if given) among those received
    after the first `after` ones, waiting for it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for p in client.published[after:]:  # type: ignore[attr-defined]
            if p.uri == uri and (version is None or p.version == version):
                return p
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no diagnostics for {uri} (version {version}) within {timeout} s")
        await asyncio.sleep(0.02)


def open_doc(client: LanguageClient, uri: str, text: str, version: int = 1) -> int:
    """didOpen; returns how many diagnostics were published before it (for `published`)."""
    before = len(client.published)  # type: ignore[attr-defined]
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)))
    return before


def change_doc(client: LanguageClient, uri: str, text: str, version: int) -> int:
    before = len(client.published)  # type: ignore[attr-defined]
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        [lsp.TextDocumentContentChangeWholeDocument(text=text)]))
    return before


# --------------------------------------------------------------------------------------------
# The client's side of an edit: positions counted here with Python's codecs, not qfix's code
# --------------------------------------------------------------------------------------------
def _line_starts(text: str) -> list[int]:
    starts, i = [0], 0
    while i < len(text):
        if text[i] == "\r" and text[i + 1:i + 2] == "\n":
            i += 2
            starts.append(i)
            continue
        if text[i] in "\r\n":
            starts.append(i + 1)
        i += 1
    return starts


def offset(text: str, pos: lsp.Position, encoding: str = "utf-16") -> int:
    starts = _line_starts(text)
    start = starts[pos.line]
    end = starts[pos.line + 1] if pos.line + 1 < len(starts) else len(text)
    line = text[start:end].rstrip("\r\n")
    if encoding == "utf-32":
        return start + pos.character
    codec, width = ("utf-16-le", 2) if encoding == "utf-16" else ("utf-8", 1)
    data = line.encode(codec)
    assert pos.character * width <= len(data), (pos, line)
    return start + len(data[:pos.character * width].decode(codec))


def position(text: str, index: int, encoding: str = "utf-16") -> lsp.Position:
    """The LSP position of code-point `index` into `text` (the client's count)."""
    starts = _line_starts(text)
    line = max(k for k, s in enumerate(starts) if s <= index)
    prefix = text[starts[line]:index]
    units = {"utf-16": len(prefix.encode("utf-16-le")) // 2, "utf-8": len(prefix.encode("utf-8")),
             "utf-32": len(prefix)}[encoding]
    return lsp.Position(line, units)


def apply_edits(text: str, edits, encoding: str = "utf-16") -> str:
    spans = sorted(((offset(text, e.range.start, encoding), offset(text, e.range.end, encoding), e.new_text)
                    for e in edits), reverse=True)
    for (s, e, _), (s2, e2, _) in zip(spans[1:], spans):
        assert e <= s2, "overlapping edits"
    for s, e, new in spans:
        text = text[:s] + new + text[e:]
    return text


def edits_of(edit: lsp.WorkspaceEdit, uri: str, version: int | None = None) -> list[lsp.TextEdit]:
    """The edits a WorkspaceEdit makes to `uri` (checking the document version it was made for)."""
    if edit.document_changes:
        (change,) = edit.document_changes
        assert change.text_document.uri == uri
        if version is not None:
            assert change.text_document.version == version
        return list(change.edits)
    return list(edit.changes[uri])


def qfix(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script, running this checkout's code."""
    return subprocess.run([QFIX, *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300)


def written(text: str, folder: Path, *args: str) -> str:
    """What `qfix FILE --write ARGS` makes of `text` in a file of `folder` (same pyproject.toml)."""
    path = folder / "cli_copy.py"
    path.write_text(text, encoding="utf-8", newline="")
    try:
        r = qfix(str(path), "--write", *args, cwd=folder)
        assert r.returncode in (0, 1), r.stderr
        return path.read_bytes().decode("utf-8")
    finally:
        path.unlink()


# --------------------------------------------------------------------------------------------
# Bytes on the wire: for what a well-behaved client library refuses to send
# --------------------------------------------------------------------------------------------
class Wire(lsp_wire.Wire):
    """`qfix lsp` (the installed console script, this checkout's code) in raw LSP frames."""

    def __init__(self, cwd: Path, *args: str, **env: str) -> None:
        assert QFIX, f"no qfix console script next to {sys.executable}"
        super().__init__([QFIX, "lsp", *args], cwd, {**ENV, **env})


async def resolved(client: LanguageClient, action: lsp.CodeAction) -> lsp.CodeAction:
    """The action with its edit: as listed, or asked for with codeAction/resolve (the server lists
    quick fixes and the fix-all without their edit for clients that can resolve them)."""
    if action.edit is not None:
        return action
    return await client.code_action_resolve_async(action)
