"""One client's session: the pygls protocol subclass (custom params stay plain dicts, requests
before `initialize` refused), the server object that holds the session's folders, buffers,
progress and watchers, and the registry of handlers that `create_server` applies to each
connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cattrs.errors import ClassValidationError
from cattrs.v import transform_error
from lsprotocol import types as lsp
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage
from pygls.uris import to_fs_path

from .. import __version__
from ..config import Settings
from ..errors import ZeroLatencyError
from ..hub import EngineHub
from ..paths import resolves_inside
from .plumbing import _quote, _supports, _uri_path
from .status_push import _status_changed, _status_changed_threadsafe

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from ..engine import Engine
    from ..frontdoor import SessionSetup
    from ..indexer import WorkspaceIndex
    from ..watcher import DiskWatcher

log = logging.getLogger("zero_latency")


T = TypeVar("T")


F = TypeVar("F", bound=Callable[..., Any])


#: How long indexing waits for the client to create a progress token before it starts anyway.
PROGRESS_CREATE_WAIT_S = 5.0


#: The handshake a client process sends before `initialize` (spec.md, "zl/hello").
HELLO = "zl/hello"


#: Marks a message that structure_message already answered with an error.
_ANSWERED = object()


class ZeroLatencyProtocol(LanguageServerProtocol):
    """pygls's protocol with three changes: custom `docs/*` params stay plain dicts (pygls
    turns unknown params into namedtuples and renames odd keys), requests before `initialize`
    get ServerNotInitialized, and the capabilities announce `experimental.docs`."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        method = data.get("method", "")
        if "jsonrpc" in data and isinstance(method, str) and method.startswith(("docs/", "zl/")):
            if "id" in data:
                return JsonRPCRequestMessage(id=data["id"], method=method,
                                             jsonrpc=data["jsonrpc"], params=data.get("params"))
            return JsonRPCNotification(method=method, jsonrpc=data["jsonrpc"],
                                       params=data.get("params"))
        try:
            return super().structure_message(data)
        except JsonRpcException as err:
            # pygls only logs a request whose params do not fit the LSP type, and the client
            # waits forever: answer it (a notification gets no answer, per JSON-RPC).
            if "id" not in data or "method" not in data:
                raise
            cause = err.__cause__
            detail = "; ".join(transform_error(cause)) if isinstance(
                cause, ClassValidationError) else str(cause or err)
            self._send_response(data["id"], None, JsonRpcInvalidParams(
                f"{method}: invalid params: {detail}").to_response_error())
            return _ANSWERED

    def handle_message(self, message: Any) -> None:
        if message is _ANSWERED:
            return
        server = self._server
        assert isinstance(server, ZeroLatencyServer)
        method = getattr(message, "method", None)
        is_request = method is not None and hasattr(message, "id")
        refusal: JsonRpcException | None = None
        if method is None:  # a response to one of our requests
            pass
        elif self._shutdown and method != lsp.EXIT:
            # LSP: after shutdown, requests are answered InvalidRequest (pygls stays silent).
            refusal = JsonRpcInvalidRequest(f"{method}: the server is shutting down")
        elif method in (lsp.INITIALIZE, HELLO) and server.initialize_seen:
            refusal = JsonRpcInvalidRequest(f"{method}: the server is already initialized")
        elif not server.initialize_seen and method not in (lsp.INITIALIZE, lsp.EXIT, HELLO):
            refusal = JsonRpcServerNotInitialized(
                f"{method}: the server is not initialized yet (send initialize first)")
        if refusal is not None:
            if is_request:
                self._send_response(message.id, None, refusal.to_response_error())
            return
        super().handle_message(message)

    @lsp_method(lsp.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        """End this connection (pygls would end the whole process): 0 after shutdown, else 1."""
        server = self._server
        assert isinstance(server, ZeroLatencyServer)
        server.exit_code = 0 if self._shutdown else 1
        server.closing.set()
        yield from ()

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams) -> Generator[Any, Any, Any]:
        result = yield from super().lsp_initialize(params)
        result.capabilities.experimental = {"docs": {"version": 1}}
        return result


class ZeroLatencyServer(LanguageServer):
    """One client's session: its folders, its unsaved buffers, its progress and watchers."""

    def __init__(self, hub: EngineHub) -> None:
        super().__init__("zero-latency", __version__, protocol_cls=ZeroLatencyProtocol,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.hub = hub
        self.engine: Engine | None = None
        #: Files whose unsaved text this client put in the index: the disk wins when it goes.
        self.buffers: set[tuple[Path, str]] = set()
        #: Folders that could not be opened (refused, store unusable), and why.
        self.folder_errors: dict[Path, ZeroLatencyError] = {}
        self.index_on_start = True  # initializationOptions.indexOnStart
        self.find_indexed_root = False  # initializationOptions.findIndexedRoot
        self.exit_code: int | None = None
        self.closing = asyncio.Event()
        self.released = False
        self.settings: Settings | None = None
        self.engine_created = asyncio.Event()
        self.initialize_seen = False
        self.main_loop: asyncio.AbstractEventLoop | None = None
        self.folders: list[Path] = []
        self.ready = asyncio.Event()
        self.search_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zl-search")
        self.debounce: dict[str, asyncio.TimerHandle] = {}
        self.tokens = itertools.count(1)
        self.background: set[asyncio.Future[Any]] = set()
        self.startup_task: asyncio.Task[None] | None = None
        self.disk_watcher: DiskWatcher | None = None  # when the client reports no file events
        #: The client process's home folder (zl/hello): `~` and the home-folder refusal are
        #: the client's, not this daemon's. None: a client that sent no hello (this process's).
        self.client_home: str | None = None
        #: The session the daemon's front door set up when it answered `initialize` before
        #: this server had loaded (frontdoor.py); the replayed initialize applies it.
        self.early_setup: SessionSetup | None = None

    # --- helpers -----------------------------------------------------------------------------

    def roots(self) -> list[Path]:
        """This client's workspace folders that are open in the engine."""
        engine = self.engine
        if engine is None:
            return []
        return [f.resolve() for f in self.folders if f.resolve() in engine.indexes]

    def release(self) -> None:
        """This client is gone (shutdown, exit, or its connection closed): its debounced edits
        are dropped, its watchers stop and its unsaved buffers give way to the disk again, for
        every other client of the engine. Idempotent."""
        self.released = True
        for handle in self.debounce.values():
            handle.cancel()
        self.debounce.clear()
        _stop_watching(self)
        engine = self.engine
        if engine is not None:
            for root, rel in sorted(self.buffers):
                index = engine.indexes.get(root)
                if index is not None:
                    index.set_overlay(rel, None)
                    engine.schedule_sync(index, rel)
        self.buffers.clear()
        self.hub.release(self)

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise JsonRpcServerNotInitialized("the server is not initialized yet")
        return self.engine

    async def get_engine(self) -> Engine:
        """The engine, once `initialized` has created it (it loads off the loop)."""
        if not self.initialize_seen:
            raise JsonRpcServerNotInitialized("the server is not initialized yet")
        await self.engine_created.wait()
        return self.require_engine()

    async def on_worker(self, fn: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self.require_engine().run(fn))

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            message = err.message if isinstance(err, ZeroLatencyError) else repr(err)
            log.error("background work failed: %s", message)
            if self.engine is not None:
                self.engine.last_error = message
            _status_changed(self)

    def index_for_uri(self, uri: str, admit: bool = False) -> tuple[WorkspaceIndex, str] | None:
        """The index holding the file `uri` names, and its workspace-relative path. `admit`:
        only a file of this session's folders that the file rules admit
        (WorkspaceFilter.refusal; a buffer's own size is the indexer's to judge)."""
        engine = self.engine
        path = _uri_path(uri)
        if engine is None or path is None:
            return None
        index = self.session_index(path) if admit else engine.index_for(path)
        if index is None:
            return None
        rel = index.uri_to_rel(path)
        if not rel:
            return None
        if admit and (reason := index.filter.refusal(path, check_size=False)) is not None:
            log.info("%s is not indexed: %s", path, reason)
            return None
        return index, rel

    def session_index(self, path: Path) -> WorkspaceIndex | None:
        """The index holding `path` when it lies in one of this session's folders (another
        session's workspace is not this client's to read or index)."""
        engine = self.engine
        if engine is None or not any(resolves_inside(path, root) for root in self.roots()):
            return None
        return engine.index_for(path)

    def admitted(self, field: str, uri: str) -> tuple[WorkspaceIndex, Path]:
        """The index and canonical path of a file (or folder) a request names, once the file
        rules admit it (WorkspaceFilter.refusal: the walk's rules, a regular file within
        maxFileBytes, in one of this session's folders); InvalidParams (-32602) naming the
        rule otherwise, before anything is read."""
        path = _uri_path(uri)
        if path is None:
            raise JsonRpcInvalidParams(f"{field}: {_quote(uri)} is not a file uri")
        self.require_engine()
        index = self.session_index(path)
        if index is None:
            spelled = to_fs_path(uri) or uri
            named = spelled if spelled == str(path) else f"{spelled} (which resolves to {path})"
            raise JsonRpcInvalidParams(
                f"{field}: {named} is not inside a workspace folder of this session: never read")
        if (reason := index.filter.refusal(path)) is not None:
            raise JsonRpcInvalidParams(f"{field}: {path}: {reason}")
        return index, path

    async def with_progress(self, title: str, token: lsp.ProgressToken | None,
                            work: Callable[[Callable[[int, int, str], None]], T]) -> T:
        """Run `work(progress)` on the index worker, reporting `$/progress` on `token` (the
        client's) or on a server-created token where the client supports that."""
        loop = asyncio.get_running_loop()
        begun: list[lsp.ProgressToken] = []  # the token, once `begin` went out on it
        finished = [False]

        def begin(on: lsp.ProgressToken) -> None:
            if not finished[0] and not begun:
                begun.append(on)
                self.work_done_progress.begin(on, lsp.WorkDoneProgressBegin(
                    title=title, cancellable=False, percentage=0))

        if token is not None:
            begin(token)
        elif _supports(self, "window.work_done_progress"):
            await self._create_progress(f"zero-latency/{next(self.tokens)}", begin)
        _status_changed(self)
        last = [0.0]

        def progress(done: int, total: int, message: str) -> None:
            _status_changed_threadsafe(loop, self)
            now = time.monotonic()
            if not begun or (now - last[0] < 0.1 and done != total):
                return
            last[0] = now
            pct = int(done * 100 / total) if total else 100
            loop.call_soon_threadsafe(self.work_done_progress.report, begun[0],
                                      lsp.WorkDoneProgressReport(
                                          message=f"{done:,}/{total:,} {message}",
                                          percentage=pct))

        summary = "stopped"
        try:
            result = await self.on_worker(lambda: work(progress))
            summary = _summary(result)
            return result
        finally:
            finished[0] = True
            if begun:
                self.work_done_progress.end(begun[0], lsp.WorkDoneProgressEnd(message=summary))
            _status_changed(self)

    async def _create_progress(self, token: str,
                               begin: Callable[[lsp.ProgressToken], None]) -> None:
        """Ask the client to create `token` and `begin` on it once it has. The answer is
        awaited up to PROGRESS_CREATE_WAIT_S, never cancelled: a client held up by a prompt
        (Neovim's "Press ENTER") answers late, and a cancelled request would turn its answer
        into an internal error. The work goes on meanwhile; progress starts when the answer
        comes, or never when it comes after the work is done (or is an error)."""
        request = self.protocol.send_request(lsp.WINDOW_WORK_DONE_PROGRESS_CREATE,
                                             lsp.WorkDoneProgressCreateParams(token=token))

        answer = asyncio.wrap_future(request)

        def answered(future: asyncio.Future[Any]) -> None:  # retrieves an error answer too
            if not future.cancelled() and future.exception() is None:
                begin(token)

        answer.add_done_callback(answered)
        await asyncio.wait([answer], timeout=PROGRESS_CREATE_WAIT_S)


#: Every handler of a connection, registered on each new server by `create_server`.
_FEATURES: list[tuple[str, Any, Callable[..., Any]]] = []


def feature(method: str, options: Any = None) -> Callable[[F], F]:
    def register(fn: F) -> F:
        _FEATURES.append((method, options, fn))
        return fn
    return register


def create_server(hub: EngineHub) -> ZeroLatencyServer:
    """A server for one client connection; engines (and their stores) come from `hub`, which
    every connection of this process shares."""
    ls = ZeroLatencyServer(hub)
    for method, options, fn in _FEATURES:
        ls.feature(method, options)(fn)
    return ls


def _summary(result: Any) -> str:
    """What a finished run did, for the end of its progress ("112 files, 0 embedded")."""
    files, embedded = getattr(result, "files", None), getattr(result, "embeddedChunks", None)
    if files is None or embedded is None:
        return "done"
    pending = getattr(result, "pendingChunks", 0)
    left = f", {pending:,} still to embed (keyword search covers them)" if pending else ""
    return f"{files:,} files, {embedded:,} chunks embedded{left}"


def _stop_watching(ls: ZeroLatencyServer) -> None:
    watcher, ls.disk_watcher = ls.disk_watcher, None
    if watcher is not None:
        watcher.close()
