"""`qfix lsp`: the language server (pygls 2, JSON-RPC over stdio; LSP 3.17).

* Python documents: diagnostics on `didOpen` and `didSave` at once, on `didChange` 150 ms after
  the last change of that document (`DEBOUNCE`); cleared on `didClose`. The editor's text is
  checked, never the file on disk; a diagnostic from an older text is never published.
* Code actions (`qfix.lsp.actions`): a quick fix per fixable finding, a suppression comment,
  `source.fixAll.qfix`; their edits are computed when picked (`codeAction/resolve`) for a client
  that supports it, else with the list.
* `.keras` models: their static findings on `didOpen`/`didSave` of a `.keras` URI, for the
  workspace's models at start-up (at most `qfix.lsp.models.MAX_MODELS`), and again when the
  client reports a model file changed (`workspace/didChangeWatchedFiles`, registered when the
  client allows). Each check runs in a thread with a time limit.
* Settings (`qfix.lsp.settings`): `[tool.qfix]` of the nearest pyproject.toml, overridden by
  `initializationOptions` and `workspace/didChangeConfiguration`.

Text sync is Full: the client sends the whole text on each change (pygls's incremental edits
split lines with `str.splitlines`, which breaks at `\\f` and U+2028 where LSP does not, and would
corrupt such a document). The work (libcst, rules, models) runs in threads, so the server keeps
answering; it is imported only after `initialize` has been answered (start-up time), and never
imports TensorFlow. Malformed messages are answered with JSON-RPC errors and logged
(`window/logMessage`); nothing a client sends stops the server. Python's cyclic garbage
collection is off from start-up and runs when the server is idle (`collect_garbage`): a full
collection in the middle of a check delayed its diagnostics by 30-60 ms.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcParseError
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path

from qfix import __version__
from qfix.lsp.settings import Overrides

DEBOUNCE = 0.15  # seconds after a document's last change before it is checked
IDLE = 2.0  # seconds after the first diagnostics before loading what fixes with imports need
PREPARE_IDLE = 0.3  # seconds after a document's diagnostics before `Parsed.prepare` (next edit's)
COLLECT_IDLE = 0.5  # seconds after a document's diagnostics before collecting garbage cycles
FIX_ALL = "source.fixAll.qfix"  # qfix.lsp.actions.FIX_ALL (that module loads libcst)
WATCHED = ("**/*.keras", "**/pyproject.toml")

log = logging.getLogger("qfix.lsp")


class _Ignored:
    """A message already answered with an error (it could not be read)."""

    jsonrpc = None


IGNORED = _Ignored()


class Protocol(LanguageServerProtocol):
    """pygls's protocol, answering a request it cannot read with a JSON-RPC error instead of
    leaving the client waiting for ever (pygls drops such a request after logging it)."""

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            msg_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool) and "method" in data:
                error = JsonRpcInvalidParams(f"invalid params for {data.get('method')!r}")
                self._send_response(msg_id, None, error.to_response_error())
            self._server.log(f"ignored a message that does not match its method's types: {exc}", lsp.MessageType.Warning)
            return IGNORED

    def handle_message(self, message):
        if message is IGNORED:
            return
        if self._shutdown and isinstance(getattr(message, "id", None), (int, str)) and getattr(message, "method", None):
            # LSP: after `shutdown`, a request gets InvalidRequest (pygls drops it unanswered)
            if message.method != lsp.EXIT:
                error = JsonRpcInvalidRequest(f"{message.method!r} after shutdown")
                self._send_response(message.id, None, error.to_response_error())
                return
        super().handle_message(message)

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: lsp.DidChangeTextDocumentParams):
        """A change to a document that is not open is logged and dropped (pygls raises). The
        server asks for Full sync; a client that sends ranged changes anyway gets them applied
        here, by LSP's own line breaks and position encoding, and handed on as the whole text
        (pygls applied such a fragment as the whole document)."""
        docs = self.workspace.text_documents
        key = unquote(params.text_document.uri)
        if key not in docs:
            self._server.log(f"ignored a change to {params.text_document.uri}: the document is not open",
                             lsp.MessageType.Warning)
            return
        if any(isinstance(c, lsp.TextDocumentContentChangePartial) for c in params.content_changes):
            from qfix.lsp.positions import LineIndex

            text, encoding = docs[key].source, self._server.encoding
            for change in params.content_changes:
                if isinstance(change, lsp.TextDocumentContentChangePartial):
                    index = LineIndex(text)
                    start, end = (index.offset(p, encoding) for p in (change.range.start, change.range.end))
                    text = text[:start] + change.text + text[max(start, end):]
                else:
                    text = change.text
            params.content_changes = [lsp.TextDocumentContentChangeWholeDocument(text=text)]
        yield from super().lsp_text_document__did_change(params)


class QfixServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("qfix", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Full,
                         protocol_cls=Protocol)
        self.overrides = Overrides()
        self.problems: list[str] = []  # settings ignored, logged once the client listens
        self.checked: dict[str, Any] = {}  # uri -> qfix.lsp.documents.Checked of its current text
        self.pending: dict[str, asyncio.Task] = {}  # uri -> its scheduled check
        self.opened: set[str] = set()  # Python documents open, as the client spells their uris
        self.models: set[str] = set()  # .keras uris with published diagnostics
        self.work = ThreadPoolExecutor(1, thread_name_prefix="qfix-lint")  # one document at a time
        self.model_slot: asyncio.Semaphore | None = None
        self.fixes_warm = False  # warm_fixes scheduled
        self.collect_due = False  # collect_garbage scheduled

    # -- helpers -----------------------------------------------------------------------------
    def log(self, message: str, kind: lsp.MessageType = lsp.MessageType.Log) -> None:
        try:
            self.window_log_message(lsp.LogMessageParams(type=kind, message=message))
        except Exception:  # noqa: BLE001 - no client to tell (not started, or gone)
            log.warning("%s", message)

    def report_server_error(self, error: Exception, source) -> None:
        """Log what went wrong (pygls shows a message box for it by default); a body that is not
        JSON is answered with JSON-RPC's parse error, as JSON-RPC 2.0 asks."""
        if isinstance(error, json.JSONDecodeError):
            try:
                self.protocol._send_response(None, None, JsonRpcParseError().to_response_error())  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001
                pass
        kind = lsp.MessageType.Warning if isinstance(error, JsonRpcException) else lsp.MessageType.Error
        self.log(f"qfix: {type(error).__name__}: {error}", kind)

    def document(self, uri: str):
        """The open document at `uri`, None when it is not open (pygls would read the file)."""
        try:
            return self.workspace.text_documents.get(unquote(uri))
        except RuntimeError:  # before initialize
            return None

    @property
    def encoding(self) -> str:
        from qfix.lsp.positions import encoding_name

        return encoding_name(self.workspace.position_encoding)

    @property
    def root(self) -> Path | None:
        path = self.workspace.root_path
        return Path(path) if path else None

    def roots(self) -> list[Path]:
        paths = [to_fs_path(f.uri) for f in self.workspace.folders.values()] or [self.workspace.root_path]
        return [Path(p) for p in dict.fromkeys(paths) if p]

    def wrap(self, uri: str, version: int | None) -> Callable[[list[lsp.TextEdit]], lsp.WorkspaceEdit]:
        from qfix.lsp.edits import workspace_edit

        caps = self.client_capabilities.workspace
        changes = bool(caps and caps.workspace_edit and caps.workspace_edit.document_changes)
        return lambda edits: workspace_edit(uri, version, edits, changes)

    @property
    def resolves_edits(self) -> bool:
        """The client can ask for a code action's edit when it is picked (codeAction/resolve)."""
        caps = self.client_capabilities.text_document
        support = caps and caps.code_action and caps.code_action.resolve_support
        return bool(support and "edit" in support.properties)

    async def run(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self.work, fn, *args)

    def publish(self, uri: str, diagnostics: list[lsp.Diagnostic], version: int | None = None) -> None:
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version))

    # -- Python documents ----------------------------------------------------------------------
    def schedule(self, uri: str, delay: float) -> None:
        """Check the document `delay` seconds from now, replacing a check not yet started."""
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        self.pending[uri] = asyncio.get_running_loop().create_task(self._check_later(uri, delay))

    async def _check_later(self, uri: str, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            doc = self.document(uri)
            if doc is None:
                return
            text, version = doc.source, doc.version
            try:
                checked = await self.run(check_text, uri, text, self.overrides, self.root, self.encoding,
                                         self.parsed(uri))
            except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback in the log
                from qfix.lsp.diagnostics import error_diagnostic

                self.log(traceback.format_exc(), lsp.MessageType.Error)
                self.publish(uri, [error_diagnostic("QF999", f"internal error: {type(exc).__name__}: {exc} (a bug in qfix)")], version)
                return
            doc = self.document(uri)
            if doc is None or doc.version != version or doc.source != text:
                return  # closed or changed meanwhile: that change scheduled its own check
            self.checked[uri] = checked
            self.publish(uri, checked.diagnostics, version)
            if checked.parsed is not None and checked.parsed.lengths is None:
                self.when_idle(PREPARE_IDLE, checked.parsed.prepare)  # for the next edit's re-parse
            self.collect_later()
            if not self.fixes_warm:
                self.fixes_warm = True
                self.when_idle(IDLE, warm_fixes)
        finally:
            if self.pending.get(uri) is asyncio.current_task():
                del self.pending[uri]

    async def current(self, uri: str):
        """The check of the document's current text (made now if the last one is older)."""
        doc = self.document(uri)
        if doc is None:
            return None, None
        checked = self.checked.get(uri)
        if checked is None or checked.text != doc.source:
            text = doc.source
            checked = await self.run(check_text, uri, text, self.overrides, self.root, self.encoding,
                                     self.parsed(uri))
            doc = self.document(uri)
            if doc is None or doc.source != text:
                return None, None
            self.checked[uri] = checked
        return checked, doc

    def collect_later(self) -> None:
        if not self.collect_due:
            self.collect_due = True
            self.when_idle(COLLECT_IDLE, self.collect_garbage)

    def collect_garbage(self) -> None:
        """Python's cyclic garbage collection, run here when idle instead of automatically
        (`serve` turns that off): a full collection walks every object the process holds (the
        open documents' trees, the rules' tables), 30-60 ms that fell in the middle of a
        check of a 1,000-line file and delayed its diagnostics by as much. libcst's trees
        hold no cycles: what a check drops is freed at once by reference counting."""
        self.collect_due = False
        gc.collect()

    def parsed(self, uri: str):
        """The parse of the document's last checked text (what an edit is re-parsed from)."""
        checked = self.checked.get(uri)
        return checked.parsed if checked is not None else None

    def when_idle(self, delay: float, fn: Callable[[], Any]) -> None:
        """Run `fn` in the worker `delay` seconds from now if no check is waiting then, else
        later: work for later requests must not delay the diagnostics of a document opened or
        changed meanwhile (a check that needs it does it itself)."""
        def later() -> None:
            if self.pending:
                asyncio.get_running_loop().call_later(delay, later)
            else:
                self.work.submit(fn)
        asyncio.get_running_loop().call_later(delay, later)

    def close(self, uri: str) -> None:
        self.opened.discard(uri)
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        self.checked.pop(uri, None)
        if not is_model_uri(uri):
            self.publish(uri, [])

    def recheck_all(self) -> None:
        for uri in list(self.opened):
            self.schedule(uri, 0)
        for uri in list(self.models):
            self.check_model(uri)

    # -- .keras models -------------------------------------------------------------------------
    def check_model(self, uri: str) -> None:
        path = to_fs_path(uri)
        if path is None:
            return
        asyncio.get_running_loop().create_task(self._check_model(uri, Path(path)))

    async def _check_model(self, uri: str, path: Path) -> None:
        from qfix.lsp.models import check_model, timed_out, timeout

        if self.model_slot is None:
            self.model_slot = asyncio.Semaphore(1)
        async with self.model_slot:  # one model at a time; a check past its time frees the slot
            loop = asyncio.get_running_loop()
            done: asyncio.Future = loop.create_future()

            def work() -> None:
                try:
                    result: Any = check_model(path, self.overrides, self.root)
                except BaseException as exc:  # noqa: BLE001 - handed to the loop
                    result = exc
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(result))

            # a thread of its own (not a pool): one that overruns its time cannot delay the next
            threading.Thread(target=work, name="qfix-model", daemon=True).start()
            limit = timeout()
            try:
                result = await asyncio.wait_for(asyncio.shield(done), limit)
            except asyncio.TimeoutError:
                result = [timed_out(limit)]
        if isinstance(result, BaseException):
            from qfix.lsp.diagnostics import error_diagnostic

            self.log("".join(traceback.format_exception(result)), lsp.MessageType.Error)
            result = [error_diagnostic("QF999", f"internal error: {type(result).__name__}: {result} (a bug in qfix)")]
        self.models.add(uri)
        self.publish(uri, result)
        self.collect_later()

    async def scan_models(self) -> None:
        from qfix.lsp.models import find_models

        for path in await self.run(find_models, self.roots()):
            self.check_model(path.as_uri())


def is_model_uri(uri: str) -> bool:
    return unquote(uri).lower().endswith(".keras")


def is_python(doc: lsp.TextDocumentItem) -> bool:
    """A document to check as Python: the client says it is, or its name ends in .py/.pyi (a
    client configured for other languages too must not get QF915 on its Markdown)."""
    return doc.language_id == "python" or unquote(doc.uri).lower().endswith((".py", ".pyi"))


def check_text(uri: str, text: str, overrides: Overrides, root: Path | None, encoding: str, previous=None):
    """Runs in the worker thread: the settings of the document, then its check (`previous`:
    the parse of the text it replaces, `qfix.source.incremental.Parsed`)."""
    from qfix.lsp.documents import check_python
    from qfix.lsp.settings import resolve

    path = to_fs_path(uri)
    path = Path(path) if path else None
    return check_python(text, path, resolve(path, overrides, root), encoding, previous)


def warm_up() -> None:
    """Load libcst, the rules and a profile before the first document arrives; keep the
    per-statement results of a check for the next one (`qfix.source.memo`)."""
    from qfix.lsp.documents import check_python
    from qfix.lsp.settings import resolve
    from qfix.source import memo

    memo.enable()

    check_python("import tensorflow as tf\nx = tf.lite.constants.INT8\n", None, resolve(None, Overrides()))
    gc.freeze()  # the modules and classes loaded so far live as long as the server: never scan them again


def warm_fixes() -> None:
    """Load what a fix that adds or removes an import needs (libcst.codemod: 0.3-0.6 s), when
    the server is idle after its first diagnostics: not in their time, nor in the time of the
    first such quick fix (a fix without imports never needs it)."""
    if "libcst.codemod.visitors" not in sys.modules:
        import libcst.codemod.visitors  # noqa: F401


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------
def build() -> QfixServer:
    """A server with every handler registered (not started)."""
    server = QfixServer()

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: QfixServer, params: lsp.InitializeParams) -> None:
        ls.overrides, ls.problems = Overrides.parse(params.initialization_options)

    @server.feature(lsp.INITIALIZED)
    def initialized(ls: QfixServer, params: lsp.InitializedParams) -> None:
        for problem in ls.problems:
            ls.log(problem, lsp.MessageType.Warning)
        ls.work.submit(warm_up)
        caps = ls.client_capabilities.workspace
        if caps and caps.did_change_watched_files and caps.did_change_watched_files.dynamic_registration:
            watch = lsp.DidChangeWatchedFilesRegistrationOptions(
                watchers=[lsp.FileSystemWatcher(glob_pattern=g) for g in WATCHED])
            ls.client_register_capability(lsp.RegistrationParams(registrations=[lsp.Registration(
                id="qfix-watch", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=watch)]))
        asyncio.get_running_loop().create_task(ls.scan_models())

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: QfixServer, params: lsp.DidOpenTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_model_uri(uri):
            ls.check_model(uri)
        elif is_python(params.text_document):
            ls.opened.add(uri)
            ls.schedule(uri, 0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: QfixServer, params: lsp.DidChangeTextDocumentParams) -> None:
        if params.text_document.uri in ls.opened:
            ls.schedule(params.text_document.uri, DEBOUNCE)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: QfixServer, params: lsp.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_model_uri(uri):
            ls.check_model(uri)
        elif uri in ls.opened and ls.document(uri) is not None:
            ls.schedule(uri, 0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: QfixServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.close(params.text_document.uri)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: QfixServer, params: lsp.DidChangeConfigurationParams) -> None:
        if not params.settings:
            return  # a client that only signals a change (pull model): keep the settings
        ls.overrides, problems = Overrides.parse(params.settings)
        for problem in problems:
            ls.log(problem, lsp.MessageType.Warning)
        ls.recheck_all()

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: QfixServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        settings_changed = False
        for change in params.changes:
            if is_model_uri(change.uri):
                if change.type == lsp.FileChangeType.Deleted:
                    ls.models.discard(change.uri)
                    ls.publish(change.uri, [])
                else:
                    ls.check_model(change.uri)
            elif unquote(change.uri).endswith("/pyproject.toml"):
                settings_changed = True
        if settings_changed:
            ls.recheck_all()

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=True))
    async def code_action(ls: QfixServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
        from qfix.lsp.actions import code_actions
        from qfix.lsp.diagnostics import SOURCE

        uri = params.text_document.uri
        if uri not in ls.opened:
            return None  # not a Python document the editor has open
        checked, doc = await ls.current(uri)
        if checked is None:
            return None  # not open (or closed meanwhile): nothing to act on
        sent = params.context.diagnostics
        if sent:
            findings = [f for d in sent if d.source == SOURCE and (f := checked.at(d)) is not None]
        else:
            findings = checked.overlapping(params.range)
        findings = list({id(f): f for f in findings}.values())
        lazy = ls.resolves_edits
        actions = await ls.run(code_actions, checked, findings, params.context.only, ls.wrap(uri, doc.version), lazy)
        for action in actions:
            if isinstance(action.data, dict):
                action.data.update(uri=uri, version=doc.version)
        return actions

    @server.feature(lsp.CODE_ACTION_RESOLVE)
    async def code_action_resolve(ls: QfixServer, action: lsp.CodeAction) -> lsp.CodeAction:
        from qfix.lsp.actions import resolve

        data = action.data if isinstance(action.data, dict) else {}
        uri = data.get("uri")
        if not isinstance(uri, str) or uri not in ls.opened:
            return action
        checked, doc = await ls.current(uri)
        if checked is None or doc.version != data.get("version"):
            return action  # closed or changed since: no edit (the client asks again)
        return await ls.run(resolve, checked, action, ls.wrap(uri, doc.version))

    @server.feature(lsp.SHUTDOWN)
    def shutdown(ls: QfixServer, params: None) -> None:
        for task in ls.pending.values():
            task.cancel()
        ls.pending.clear()
        ls.work.shutdown(wait=False, cancel_futures=True)

    return server


def serve() -> int:
    """Serve one client over stdin/stdout until it sends `exit` or closes the stream. Returns
    0 after `shutdown` then `exit`, else 1 (LSP's exit codes)."""
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the protocol stream
    gc.disable()  # collected when idle (`QfixServer.collect_garbage`); `qfix lsp` turns it off before the imports
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="qfix lsp: %(levelname)s %(message)s")
    server = build()
    server.start_io(sys.stdin.buffer, stdout)
    return 0 if server.protocol._shutdown else 1
