"""`qfix lsp` end to end: one server process (the installed console script) driven over stdio by
pytest-lsp's client with VS Code's capabilities (UTF-16 positions, versioned documentChanges),
in a workspace with a pyproject.toml and two `.keras` files. Each test uses its own documents,
so the tests hold in any order."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient, client_capabilities

from qfix.rules.docs import doc_url

from lsp_client import (FIXTURES, PYPROJECT, TRAIN, apply_edits, change_doc, edits_of, open_doc, position,
                        published, qfix, resolved, server_config, written)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    (ws / "pyproject.toml").write_text(PYPROJECT)
    (ws / "models").mkdir()
    shutil.copy(FIXTURES / "two_input_k3.keras", ws / "models" / "two_input.keras")
    (ws / "models" / "broken.keras").write_bytes(b"not a zip archive")
    return ws


@pytest_lsp.fixture(config=server_config(), scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=workspace.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]))
    yield
    await lsp_client.shutdown_session()


def uri_of(workspace: Path, name: str) -> str:
    return (workspace / name).as_uri()


def utf16_range(text: str, loc: dict) -> lsp.Range:
    """The LSP range of a finding of `qfix --format json` (1-based lines, code-point columns)."""
    lines = text.split("\n")

    def index(line: int, col: int) -> int:
        return sum(len(x) + 1 for x in lines[:line - 1]) + col - 1

    return lsp.Range(position(text, index(loc["line"], loc["col"])), position(text, index(loc["end_line"], loc["end_col"])))


async def test_diagnostics_are_the_cli_findings_at_their_exact_utf16_ranges(client: LanguageClient, workspace: Path):
    uri = uri_of(workspace, "diag.py")
    params = await published(client, uri, after=open_doc(client, uri, TRAIN), version=1)
    (workspace / "diag.py").write_text(TRAIN)  # the CLI reads files: the same text on disk
    cli = json.loads(qfix("diag.py", "--format", "json", cwd=workspace).stdout)["findings"]
    assert [d.code for d in params.diagnostics] == [f["code"] for f in cli] == ["QF202", "QF204", "QF105", "QF104"]
    for d, f in zip(params.diagnostics, cli):
        assert d.source == "qfix"
        assert d.code_description.href == doc_url(f["code"])
        assert d.severity == lsp.DiagnosticSeverity.Error  # blockers
        assert d.range == utf16_range(TRAIN, f["location"]), f["code"]
        assert d.message.startswith(f["message"])
    # the Lambda sits after "café 😀" on its line: 😀 is two UTF-16 code units
    lam = params.diagnostics[0]
    line = TRAIN.splitlines()[lam.range.start.line]
    assert lam.range.start.character == len(line[:line.index("keras.layers.Lambda")].encode("utf-16-le")) // 2
    assert lam.range.start.character == line.index("keras.layers.Lambda") + 1
    # a display-only fix shows under the message, as the CLI's help line
    assert "\nhelp: scale, zero_point" in params.diagnostics[3].message


async def code_actions(client: LanguageClient, uri: str, rng: lsp.Range, diagnostics=(), only=None):
    return await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri), range=rng,
        context=lsp.CodeActionContext(diagnostics=list(diagnostics), only=only))) or []


async def test_each_quick_fix_gives_what_write_gives_for_that_finding_alone(client: LanguageClient, workspace: Path):
    uri = uri_of(workspace, "quick.py")
    diags = (await published(client, uri, after=open_doc(client, uri, TRAIN), version=1)).diagnostics
    seen = {}
    for d in diags:
        actions = await code_actions(client, uri, d.range, [d], only=[lsp.CodeActionKind.QuickFix])
        fixes = [a for a in actions if a.title.startswith(f"qfix {d.code}:")]
        assert all(a.kind == lsp.CodeActionKind.QuickFix and list(a.diagnostics) == [d] for a in actions)
        assert not any(a.kind == "source.fixAll.qfix" for a in actions)  # not asked for
        if d.code == "QF104":  # display-only: nothing to apply
            assert fixes == []
            continue
        (fix,) = fixes
        unsafe = d.code == "QF105"
        assert fix.is_preferred is (not unsafe)
        assert fix.title.endswith("(unsafe)") is unsafe
        assert fix.edit is None  # VS Code resolves the edit of the action it picks
        fixed = apply_edits(TRAIN, edits_of((await resolved(client, fix)).edit, uri, version=1))
        expected = written(TRAIN, workspace, "--select", d.code, *(["--unsafe-fixes"] if unsafe else []))
        assert fixed == expected != TRAIN, d.code
        seen[d.code] = fixed
    assert set(seen) == {"QF202", "QF204", "QF105"}
    assert "import tensorflow as tf\n" in seen["QF204"]  # the import its fix adds


async def test_fix_all_gives_what_write_gives(client: LanguageClient, workspace: Path):
    uri = uri_of(workspace, "fixall.py")
    await published(client, uri, after=open_doc(client, uri, TRAIN), version=1)
    everything = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    expected = written(TRAIN, workspace)
    for only in (["source.fixAll.qfix"], ["source.fixAll"], ["source"], None):
        actions = [a for a in await code_actions(client, uri, everything, only=only) if a.kind == "source.fixAll.qfix"]
        (fix_all,) = actions
        assert fix_all.title == "qfix: apply all safe fixes"
        fixed = apply_edits(TRAIN, edits_of((await resolved(client, fix_all)).edit, uri, version=1))
        assert fixed == expected
        assert "Rescaling(2.0)" in fixed and "tf.int8" in fixed and "dtype=np.float32" in fixed  # QF105 is unsafe
    assert await code_actions(client, uri, everything, only=[lsp.CodeActionKind.Refactor]) == []
    # an action resolved after the document changed gets no edit (it was made for another text)
    (stale,) = await code_actions(client, uri, everything, only=["source.fixAll"])
    await published(client, uri, after=change_doc(client, uri, TRAIN + "z = 1\n", 2), version=2)
    assert (await client.code_action_resolve_async(stale)).edit is None


async def test_suppression_action_hides_the_finding(client: LanguageClient, workspace: Path):
    uri = uri_of(workspace, "suppress.py")
    diags = (await published(client, uri, after=open_doc(client, uri, TRAIN), version=1)).diagnostics
    text = TRAIN
    for version, code in enumerate(("QF105", "QF202"), start=2):
        d = next(d for d in diags if d.code == code)
        actions = await code_actions(client, uri, d.range, [d])
        (hide,) = [a for a in actions if a.title == f"Suppress {code} with `# qfix: ignore[{code}]`"]
        text = apply_edits(text, edits_of(hide.edit, uri, version=version - 1))
        assert f"  # qfix: ignore[{code}]\n" in text
        diags = (await published(client, uri, after=change_doc(client, uri, text, version), version=version)).diagnostics
        assert code not in [d.code for d in diags]
    assert [d.code for d in diags] == ["QF204", "QF104"]
    # the command line honours the same comments
    (workspace / "suppressed.py").write_text(text)
    r = qfix("suppressed.py", "--format", "json", cwd=workspace)
    assert [f["code"] for f in json.loads(r.stdout)["findings"]] == ["QF204", "QF104"]


async def test_changes_are_debounced_and_only_the_last_text_is_published(client: LanguageClient, workspace: Path):
    uri = uri_of(workspace, "typing.py")
    await published(client, uri, after=open_doc(client, uri, "x = 1\n"), version=1)
    start = len(client.published)
    for version in range(2, 7):  # five edits in a row, well within the debounce
        change_doc(client, uri, TRAIN[: 40 * version] + "\n", version)
    change_doc(client, uri, TRAIN, 7)
    last = await published(client, uri, after=start, version=7)
    versions = [p.version for p in client.published[start:] if p.uri == uri]
    assert versions[-1] == 7 and len(versions) < 6, versions
    assert [d.code for d in last.diagnostics] == ["QF202", "QF204", "QF105", "QF104"]
    # saving checks at once (the text is the editor's, not the file's)
    before = len(client.published)
    client.text_document_did_save(lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
    assert (await published(client, uri, after=before, version=7)).diagnostics == last.diagnostics


async def test_a_document_that_does_not_parse_is_one_diagnostic(client: LanguageClient, workspace: Path):
    uri = uri_of(workspace, "broken.py")
    text = "import keras\ndef f(:\n    pass\n"
    (d,) = (await published(client, uri, after=open_doc(client, uri, text), version=1)).diagnostics
    (workspace / "broken.py").write_text(text)
    (cli,) = json.loads(qfix("broken.py", "--format", "json", cwd=workspace).stdout)["findings"]
    assert d.code == cli["code"] == "QF915" and d.severity == lsp.DiagnosticSeverity.Error
    assert d.message == cli["message"]
    assert d.range.start == lsp.Position(cli["location"]["line"] - 1, cli["location"]["col"])  # where libcst says
    actions = await code_actions(client, uri, d.range, [d])
    assert actions == []  # nothing to fix, and no comment can hide a syntax error
    fixed = await published(client, uri, after=change_doc(client, uri, TRAIN, 2), version=2)
    assert [x.code for x in fixed.diagnostics] == ["QF202", "QF204", "QF105", "QF104"]


async def test_closed_document(client: LanguageClient, workspace: Path):
    uri = uri_of(workspace, "closed.py")
    await published(client, uri, after=open_doc(client, uri, TRAIN), version=1)
    before = len(client.published)
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
    assert list((await published(client, uri, after=before)).diagnostics) == []
    everything = lsp.Range(lsp.Position(0, 0), lsp.Position(9, 0))
    assert await code_actions(client, uri, everything) == []
    change_doc(client, uri, TRAIN, 2)  # a change to a document that is not open
    client.text_document_did_save(lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
    assert await code_actions(client, uri, everything) == []
    await assert_answers(client, workspace, "after-close.py")


async def assert_answers(client: LanguageClient, workspace: Path, name: str) -> None:
    """The server still checks documents and answers requests."""
    uri = uri_of(workspace, name)
    diags = (await published(client, uri, after=open_doc(client, uri, TRAIN), version=1)).diagnostics
    assert [d.code for d in diags] == ["QF202", "QF204", "QF105", "QF104"]
    actions = await code_actions(client, uri, diags[0].range, diags[:1])
    assert [a.title for a in actions][:1] == ["qfix QF202: Replace the Lambda with `Rescaling`"]


async def test_odd_notifications_leave_the_server_answering(client: LanguageClient, workspace: Path):
    """Notifications a client should not send (malformed requests on the wire: test_lsp_wire)."""
    client.protocol.notify("qfix/unknownNotification", {})
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"select": 42, "colour": "red"}))
    uri = uri_of(workspace, "never-opened.py")
    change_doc(client, uri, TRAIN, 3)
    client.text_document_did_save(lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
    notes = uri_of(workspace, "notes.md")  # not Python: not checked (no QF915 on prose)
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=notes, language_id="markdown", version=1, text="# Notes\nnot python (\n")))
    await assert_answers(client, workspace, "after-odd.py")
    assert not any(p.uri == uri and p.diagnostics for p in client.published)
    assert not any(p.uri == notes for p in client.published)
    assert client._server.returncode is None


async def test_models_in_the_workspace_get_their_static_findings(client: LanguageClient, workspace: Path):
    model = (workspace / "models" / "two_input.keras").as_uri()
    broken = (workspace / "models" / "broken.keras").as_uri()
    found = (await published(client, model)).diagnostics  # from the scan at start-up
    cli = json.loads(qfix(str(workspace / "models" / "two_input.keras"), "--static", "--format", "json",
                          cwd=workspace).stdout)["findings"]
    assert [d.code for d in found] == [f["code"] for f in cli] and len(found) >= 3
    assert all(d.range == lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)) and d.source == "qfix" for d in found)
    assert all(f["layer"] in d.message for d, f in zip(found, cli))
    (bad,) = (await published(client, broken)).diagnostics
    assert bad.code == "QF901" and bad.severity == lsp.DiagnosticSeverity.Error
    # opened by the editor, a model is checked again (from the file, whatever text is sent)
    before = open_doc(client, model, "")
    assert [d.code for d in (await published(client, model, after=before)).diagnostics] == [d.code for d in found]
    # a model deleted: its diagnostics go
    before = len(client.published)
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(uri=broken, type=lsp.FileChangeType.Deleted)]))
    assert list((await published(client, broken, after=before)).diagnostics) == []


async def test_the_server_never_loads_tensorflow(client: LanguageClient, workspace: Path):
    """After Python documents and models were checked, no TensorFlow library is mapped into the
    server process (importing tensorflow, keras, tf_keras or tfmot loads TensorFlow's shared
    libraries; ai_edge_litert its own)."""
    await assert_answers(client, workspace, "tf-check.py")
    await published(client, (workspace / "models" / "two_input.keras").as_uri())
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/PID/maps")
    maps = Path(f"/proc/{client._server.pid}/maps").read_text()
    assert ".so" in maps  # the server's shared libraries are listed (its own extension modules too)
    for lib in ("tensorflow", "ai_edge_litert", "_pywrap_tf"):
        assert lib not in maps, f"{lib} is mapped into the language server"
