"""`qfix lsp` end to end with other settings and clients: initializationOptions over
[tool.qfix], Neovim 0.11's capabilities (it offers UTF-8 positions first, so the server counts
UTF-8 code units), settings changed while running, a workspace without pyproject.toml and an
unsaved document, and a model check that runs out of time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient, client_capabilities

from lsp_client import (FIXTURES, PYPROJECT, TRAIN, apply_edits, change_doc, edits_of, open_doc, position,
                        published, resolved, server_config, written)

pytestmark = pytest.mark.asyncio


@pytest_lsp.fixture(config=server_config())
async def neovim(lsp_client: LanguageClient, tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT + 'ignore = ["QF105"]\n')
    result = await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("neovim@v0.11"), root_uri=tmp_path.as_uri(),
        initialization_options={"qfix": {"target": "int8", "ignore": ["QF204"], "unsafeFixes": True}}))
    assert result.capabilities.position_encoding == lsp.PositionEncodingKind.Utf8
    yield
    await lsp_client.shutdown_session()


async def test_initialization_options_over_pyproject_with_utf8_positions(neovim: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "opts.py").as_uri()
    diags = (await published(neovim, uri, after=open_doc(neovim, uri, TRAIN), version=1)).diagnostics
    assert [d.code for d in diags] == ["QF202", "QF104"]  # QF105 ignored by pyproject, QF204 by the editor
    lam = diags[0]
    assert lam.range.start == position(TRAIN, TRAIN.index("keras.layers.Lambda"), "utf-8")
    assert lam.range.start.character == TRAIN.splitlines()[5].index("keras.layers.Lambda") + 1 + 3  # é 2, 😀 4 bytes
    actions = await neovim.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri), range=lam.range,
        context=lsp.CodeActionContext(diagnostics=[lam], only=["source.fixAll"])))
    (fix_all,) = actions
    assert fix_all.title == "qfix: apply all fixes (unsafe ones included)"
    fixed = apply_edits(TRAIN, edits_of((await resolved(neovim, fix_all)).edit, uri), "utf-8")
    # unsafe-fixes from the editor, ignore from both, as the command line combines them
    assert fixed == written(TRAIN, tmp_path, "--unsafe-fixes", "--target", "int8", "--ignore", "QF204")

    # settings changed while running: the open documents are checked again
    before = len(neovim.published)
    neovim.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"qfix": {"select": ["QF104"]}}))
    assert [d.code for d in (await published(neovim, uri, after=before)).diagnostics] == ["QF104"]
    before = len(neovim.published)
    neovim.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"qfix": {"target": "nosuch"}}))
    (bad,) = (await published(neovim, uri, after=before)).diagnostics
    assert bad.code == "QF910" and bad.range == lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    # a broken pyproject.toml: one diagnostic
    before = len(neovim.published)
    neovim.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"qfix": {}}))
    assert [d.code for d in (await published(neovim, uri, after=before)).diagnostics] == ["QF202", "QF204", "QF104"]
    (tmp_path / "pyproject.toml").write_text("[tool.qfix\n")
    before = len(neovim.published)
    neovim.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(uri=(tmp_path / "pyproject.toml").as_uri(), type=lsp.FileChangeType.Changed)]))
    (bad,) = (await published(neovim, uri, after=before)).diagnostics
    assert bad.code == "QF914" and "pyproject.toml" in bad.message


@pytest_lsp.fixture(config=server_config())
async def bare(lsp_client: LanguageClient, tmp_path: Path):
    """Emacs 29's eglot: UTF-32 positions offered first, no codeAction/resolve."""
    result = await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("emacs@v29.1"), root_uri=tmp_path.as_uri()))
    assert result.capabilities.position_encoding == lsp.PositionEncodingKind.Utf32
    yield
    await lsp_client.shutdown_session()


async def test_no_pyproject_and_an_unsaved_document(bare: LanguageClient, tmp_path: Path):
    assert not any((p / "pyproject.toml").exists() for p in [tmp_path, *tmp_path.parents])
    for uri in ((tmp_path / "plain.py").as_uri(), "untitled:Untitled-1"):
        diags = (await published(bare, uri, after=open_doc(bare, uri, TRAIN), version=1)).diagnostics
        assert [d.code for d in diags] == ["QF202", "QF204", "QF105", "QF104"], uri
        actions = await bare.text_document_code_action_async(lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri), range=diags[1].range,
            context=lsp.CodeActionContext(diagnostics=[diags[1]])))
        fix = next(a for a in actions if a.title.startswith("qfix QF204"))
        assert fix.edit is not None  # listed with its edit: this client cannot resolve one later
        text = apply_edits(TRAIN, edits_of(fix.edit, uri, version=1), "utf-32")
        assert text == written(TRAIN, tmp_path, "--select", "QF204")
        after = (await published(bare, uri, after=change_doc(bare, uri, text, 2), version=2)).diagnostics
        assert [d.code for d in after] == ["QF202", "QF105", "QF104"]


@pytest_lsp.fixture(config=server_config(QFIX_LSP_MODEL_TIMEOUT="1e-9"))
async def impatient(lsp_client: LanguageClient, tmp_path: Path):
    shutil.copy(FIXTURES / "two_input_k3.keras", tmp_path / "model.keras")
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=tmp_path.as_uri()))
    yield
    await lsp_client.shutdown_session()


async def test_a_model_check_past_its_time_is_reported_and_holds_nothing_up(impatient: LanguageClient, tmp_path: Path):
    (late,) = (await published(impatient, (tmp_path / "model.keras").as_uri())).diagnostics
    assert late.severity == lsp.DiagnosticSeverity.Warning and "did not finish within 1e-09 s" in late.message
    uri = (tmp_path / "after.py").as_uri()
    diags = (await published(impatient, uri, after=open_doc(impatient, uri, TRAIN), version=1)).diagnostics
    assert [d.code for d in diags] == ["QF202", "QF204", "QF105", "QF104"]
