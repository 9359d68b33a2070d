"""The language server: one pygls 2.x server per client connection, over the engines of the
process (`hub.EngineHub`).

The same handlers serve a connection on stdio (`zl serve --no-daemon`) and every connection
of the per-user daemon (`daemon.py`). Handlers stay thin: they validate params
(protocol/schema.json), hop to the engine's threads and translate errors to the contract's
JSON-RPC codes. Nothing here blocks the asyncio loop. Messages are framed by `framing.py`, not
by pygls's reader, so that a mis-framed message cannot wedge the connection. On stdio, stdout
carries protocol messages only; logs go to stderr and window/logMessage.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from cattrs.errors import ClassValidationError
from cattrs.v import transform_error
from lsprotocol import types as lsp
from pygls.capabilities import get_capability
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage
from pygls.uris import to_fs_path

from . import __version__
from .config import (
    DEFAULT_INCLUDE_EXTENSIONS,
    DEFAULT_LIMIT,
    DEFAULT_SEARCH_MODE,
    MAX_QUERY_CHARS,
    WORKSPACE_SETTINGS_KEY,
    Settings,
    SettingsError,
    load_settings,
)
from .errors import CancelledError, InvalidParamsError, ZeroLatencyError
from .framing import Frame, FrameParser, FramingError
from .hub import EngineHub
from .paths import resolves_inside

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from .engine import Engine
    from .indexer import IndexReport, WorkspaceIndex
    from .watcher import DiskWatcher

log = logging.getLogger("zero_latency")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: docs/files: files per page unless the client asks (schema: at most 1000).
FILES_PAGE = 100
#: Without file events from the client and without an OS watcher, the server rescans this often.
POLL_INTERVAL_S = 5.0
#: How long indexing waits for the client to create a progress token before it starts anyway.
PROGRESS_CREATE_WAIT_S = 5.0
WATCH_GLOB = "**/*.{" + ",".join(e.lstrip(".") for e in DEFAULT_INCLUDE_EXTENSIONS) + "}"


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
        if admit and not any(resolves_inside(path, root) for root in self.roots()):
            return None
        index = engine.index_for(path)
        if index is None:
            return None
        rel = index.uri_to_rel(path)
        if not rel:
            return None
        if admit and (reason := index.filter.refusal(path, check_size=False)) is not None:
            log.info("%s is not indexed: %s", path, reason)
            return None
        return index, rel

    def admitted(self, field: str, uri: str) -> tuple[WorkspaceIndex, Path]:
        """The index and canonical path of a file (or folder) a request names, once the file
        rules admit it (WorkspaceFilter.refusal: the walk's rules, a regular file within
        maxFileBytes, in one of this session's folders); InvalidParams (-32602) naming the
        rule otherwise, before anything is read."""
        path = _uri_path(uri)
        if path is None:
            raise JsonRpcInvalidParams(f"{field}: {_quote(uri)} is not a file uri")
        engine = self.require_engine()
        index = engine.index_for(path) if any(
            resolves_inside(path, root) for root in self.roots()) else None
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


# --- lifecycle -----------------------------------------------------------------------------


@feature(lsp.INITIALIZE)
def initialize(ls: ZeroLatencyServer, params: lsp.InitializeParams) -> None:
    ls.initialize_seen = True
    ls.main_loop = asyncio.get_running_loop()
    folders = [p for f in (params.workspace_folders or []) if (p := _uri_path(f.uri))]
    if not folders and params.root_uri and (root := _uri_path(params.root_uri)):
        folders = [root]
    options = params.initialization_options or {}
    if not isinstance(options, dict):
        raise JsonRpcInvalidParams("initializationOptions: must be an object")
    options = dict(options)
    for key in ("indexOnStart", "findIndexedRoot"):  # the connection's, not settings
        if not isinstance(options.get(key, False), bool):
            raise JsonRpcInvalidParams(f"initializationOptions.{key}: must be a boolean")
    ls.index_on_start = options.pop("indexOnStart", True)
    ls.find_indexed_root = options.pop("findIndexedRoot", False)
    workspace_settings = options.pop(WORKSPACE_SETTINGS_KEY, None)
    if not isinstance(workspace_settings, dict | None):
        raise JsonRpcInvalidParams(
            f"initializationOptions.{WORKSPACE_SETTINGS_KEY}: must be an object")
    try:
        settings, warnings = load_settings(folders[0] if folders else None, options,
                                           workspace_settings, home=ls.client_home)
    except SettingsError as err:
        raise JsonRpcInvalidParams(
            str(err) if err.source else f"initializationOptions.{err}") from err
    for warning in warnings:  # shown: an ignored setting (a workspace's storeUrl) must be seen
        _show(ls, warning, lsp.MessageType.Warning)
    ls.settings = settings
    ls.folders = folders


@feature(HELLO)
def hello(ls: ZeroLatencyServer, params: Any) -> dict[str, Any]:
    """Who the client process is, before `initialize`: its version and its home folder."""
    args = _validated(HELLO, params)
    ls.client_home = args.get("home")
    return {"version": __version__, "pid": os.getpid()}


@feature(lsp.INITIALIZED)
def initialized(ls: ZeroLatencyServer, params: lsp.InitializedParams) -> None:
    ls.startup_task = asyncio.ensure_future(_startup(ls))
    ls.startup_task.add_done_callback(ls._background_done)  # a failure is logged and shown


def _make_engine(ls: ZeroLatencyServer, settings: Settings) -> Engine:
    return ls.hub.acquire(settings, ls, lambda m: _show_threadsafe(ls, m, lsp.MessageType.Warning))


async def _startup(ls: ZeroLatencyServer) -> None:
    assert ls.settings is not None
    loop = asyncio.get_running_loop()
    ls.engine = await loop.run_in_executor(None, _make_engine, ls, ls.settings)
    ls.engine_created.set()
    _status_changed(ls)
    engine = ls.engine
    watching = ls.index_on_start and await _register_watchers(ls)
    # Off the index worker: another session's index run may hold it for minutes, and this
    # session's searches wait for `ready` (load_model has a lock of its own).
    await loop.run_in_executor(None, engine.load_model)
    _status_changed(ls)
    if ls.find_indexed_root:
        try:  # a Qdrant server (storeUrl) is asked: it may be down
            found = await loop.run_in_executor(
                None, lambda: [engine.indexed_root(f) for f in ls.folders])
        except ZeroLatencyError as err:
            found = []
            _show(ls, err.message, lsp.MessageType.Error)
        ls.folders = [f for f in found if f is not None]
    for folder in ls.folders:
        if folder.resolve() in engine.indexes:
            continue  # open for another session: ready now, even while its index run goes on
        try:
            await ls.on_worker(lambda f=folder: engine.open_workspace(f))  # type: ignore[misc]
        except ZeroLatencyError as err:
            ls.folder_errors[folder.resolve()] = err
            _show(ls, err.message, lsp.MessageType.Error)
    ls.ready.set()
    if not ls.index_on_start:
        return
    if not watching:  # before the first index run, so that no change made during it is lost
        _watch_disk(ls)
    roots = ls.roots()
    if roots:
        await ls.with_progress("Zero-Latency: indexing", None,
                               lambda progress: engine.index(roots, progress=progress))


def _summary(result: Any) -> str:
    """What a finished run did, for the end of its progress ("112 files, 0 embedded")."""
    files, embedded = getattr(result, "files", None), getattr(result, "embeddedChunks", None)
    if files is None or embedded is None:
        return "done"
    pending = getattr(result, "pendingChunks", 0)
    left = f", {pending:,} still to embed (keyword search covers them)" if pending else ""
    return f"{files:,} files, {embedded:,} chunks embedded{left}"


async def _register_watchers(ls: ZeroLatencyServer) -> bool:
    if not _supports(ls, "workspace.did_change_watched_files.dynamic_registration"):
        return False
    watchers = [lsp.FileSystemWatcher(glob_pattern=WATCH_GLOB), lsp.FileSystemWatcher(
        glob_pattern="**/.gitignore")]
    registration = lsp.Registration(
        id="zero-latency-watch", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=lsp.DidChangeWatchedFilesRegistrationOptions(watchers=watchers))
    try:
        await asyncio.wait_for(ls.client_register_capability_async(
            lsp.RegistrationParams(registrations=[registration])), 5)
    except (TimeoutError, JsonRpcException) as err:
        log.warning("client did not accept file watchers (%s): polling the disk instead", err)
        return False
    return True


def _watch_disk(ls: ZeroLatencyServer) -> None:
    """The client reports no file events: watch the workspace folders ourselves (native OS
    notifications through watchdog, or its polling observer where those cannot start)."""
    from .chunking import language_for
    from .watcher import DiskWatcher

    loop = asyncio.get_running_loop()

    def changed(_root: Path, paths: list[Path]) -> None:
        # On the observer thread: drop what can never be indexed (store writes, .git, build
        # output) before it costs the event loop anything.
        wanted = [p for p in paths if p.name == ".gitignore" or language_for(p.name)]
        if wanted:
            loop.call_soon_threadsafe(_sync_paths, ls, wanted, True)

    def rescan(root: Path) -> None:
        loop.call_soon_threadsafe(_rescan, ls, root)

    watcher = DiskWatcher(changed, rescan)
    for root in ls.roots():
        try:
            watcher.watch(root)
        except OSError as err:  # gone since it was opened: nothing there to watch
            log.warning("cannot watch %s for changes: %s", root, err)
    ls.disk_watcher = watcher


@feature(lsp.SHUTDOWN)
async def shutdown(ls: ZeroLatencyServer, params: None) -> None:
    # Answered at once, even mid-index: the engine belongs to the process, not to this
    # client; an index run goes on for the others (or stops when the process ends).
    ls.release()


# --- custom requests -------------------------------------------------------------------------


@feature("docs/index")
async def docs_index(ls: ZeroLatencyServer, params: Any) -> dict[str, Any]:
    args = _validated("docs/index", params)
    engine = await ls.get_engine()
    await ls.ready.wait()
    folders = [f.resolve() for f in ls.folders]
    explicit: list[Path] = []
    for uri in args.get("uris") or []:
        path = _uri_path(uri)
        if path is None or not any(resolves_inside(path, f) for f in folders):
            raise JsonRpcInvalidParams(f"uris: {_quote(uri)} is not inside a workspace folder")
        if any(resolves_inside(path, root) for root in ls.roots()):  # else: its folder's error
            ls.admitted("docs/index: uris", uri)
        explicit.append(path)
    scope = explicit or folders
    # `rebuild` starts the stores over; `force` rebuilds one that failed to open (damaged,
    # built for another model); a store another process holds is never deleted.
    doomed = folders if args.get("rebuild") else [
        root for root, failure in engine.store_errors.items()
        if args.get("force") and failure.kind != "storeLocked"]
    for root in doomed:
        if any(resolves_inside(t, root) or resolves_inside(root, t) for t in scope):
            try:
                await ls.on_worker(lambda r=root: engine.rebuild_workspace(r))  # type: ignore[misc]
            except ZeroLatencyError as err:
                raise _rpc_error(err) from err
    for target in scope:  # say why (data.kind) rather than index nothing
        # The innermost folder owns a path: a refused "/" must not block a project inside it.
        owners = [f for f in folders if resolves_inside(target, f)]
        root = max(owners, key=lambda f: len(f.parts)) if owners else target
        failure = engine.store_errors.get(root) or (
            None if root in engine.indexes else ls.folder_errors.get(root))
        if failure is not None:
            raise _rpc_error(failure)
    targets = explicit or ls.roots()
    from .indexer import CancelToken

    asked = time.monotonic()
    cancel = CancelToken()

    def run(progress: Callable[[int, int, str], None]) -> IndexReport:
        # A run going or queued when this request came (the first one, started by
        # `initialized`) finished before this one starts (one index worker): report it too.
        earlier = engine.last_run
        report = engine.index(targets, bool(args.get("force")), progress, cancel)
        return report.after(earlier[1]) if earlier and earlier[0] >= asked else report

    try:
        report: IndexReport = await ls.with_progress(
            "Zero-Latency: indexing", args.get("workDoneToken"), run)
    except asyncio.CancelledError:
        cancel.cancel()
        raise
    except CancelledError:
        raise asyncio.CancelledError() from None
    except ZeroLatencyError as err:
        raise _rpc_error(err) from err
    return report.to_wire()


@feature("docs/search")
async def docs_search(ls: ZeroLatencyServer, params: Any) -> dict[str, Any]:
    args = _validated("docs/search", params)
    engine = await ls.get_engine()
    if not ls.ready.is_set():  # the model is still loading: wait for it, briefly
        try:
            await asyncio.wait_for(ls.ready.wait(), 30)
        except TimeoutError:
            return {"hits": [], "elapsedMs": 0.0, "indexState": "indexing"}
    roots = ls.roots()
    if not roots:  # a store that cannot be opened (a full disk): say so, not "no good match"
        for folder in ls.folders:
            if (failure := engine.store_errors.get(folder.resolve())) is not None:
                raise _rpc_error(failure)
    loop = asyncio.get_running_loop()
    try:
        result: dict[str, Any] = await loop.run_in_executor(
            ls.search_executor, lambda: engine.search(
                args["query"], args.get("limit", DEFAULT_LIMIT),
                args.get("mode", DEFAULT_SEARCH_MODE), args.get("include", []),
                args.get("exclude", []), languages=args.get("languages"), roots=roots))
    except ZeroLatencyError as err:
        raise _rpc_error(err) from err
    if refused := _refused_folders(ls):  # say why a folder gave nothing, where it is read
        why = "; ".join(f"{r['path']}: {r['reason']}" for r in refused)
        result["notice"] = " ".join(filter(None, [f"Not searched: {why}", result.get("notice")]))
    return result


def _refused_folders(ls: ZeroLatencyServer) -> list[dict[str, str]]:
    """This session's folders that could not be opened (refused, store unusable), and why."""
    engine = ls.engine
    return [{"uri": root.as_uri(), "path": str(root), "reason": err.message}
            for root, err in ls.folder_errors.items()
            if engine is None or root not in engine.indexes]


@feature("docs/related")
async def docs_related(ls: ZeroLatencyServer, params: Any) -> dict[str, Any]:
    """Passages from other files like the paragraph or section at the cursor; an open
    document's text is this client's buffer (saved or not)."""
    args = _validated("docs/related", params)
    if _uri_path(args["uri"]) is None:
        raise JsonRpcInvalidParams(f"docs/related: uri: {_quote(args['uri'])} is not a file uri")
    engine = await ls.get_engine()
    with contextlib.suppress(TimeoutError):  # the model and folders load at startup
        await asyncio.wait_for(ls.ready.wait(), 30)
    _index, path = ls.admitted("docs/related: uri", args["uri"])
    document = ls.workspace.text_documents.get(args["uri"])
    text = document.source if document is not None else None
    line = args["position"]["line"]
    try:
        return await asyncio.get_running_loop().run_in_executor(
            ls.search_executor, lambda: engine.related(
                path, line, args.get("limit", 10), text, roots=ls.roots()))
    except ZeroLatencyError as err:
        raise _rpc_error(err) from err


@feature("zl/daemon")
async def daemon_info(ls: ZeroLatencyServer, params: Any) -> dict[str, Any]:
    """The process serving this connection: pid, clients, open workspaces."""
    return ls.hub.info()


@feature("docs/status")
async def docs_status(ls: ZeroLatencyServer, params: Any) -> dict[str, Any]:
    _validated("docs/status", params)
    engine = await ls.get_engine()
    if ls.find_indexed_root:  # which folders are the session's is known once they open
        await ls.ready.wait()
    roots = [f.resolve() for f in ls.folders]
    # Reading a manifest the first time takes a while on a big store: off the loop.
    status = await asyncio.get_running_loop().run_in_executor(
        ls.search_executor, lambda: engine.status(read_manifests=True, roots=roots))
    if not ls.ready.is_set() and status["state"] != "error":
        status["state"] = "loading"  # folders not opened yet: "0 files" would be untrue
    if refused := _refused_folders(ls):
        status["refusedFolders"] = [{"uri": r["uri"], "reason": r["reason"]} for r in refused]
    return status


@feature("docs/files")
async def docs_files(ls: ZeroLatencyServer, params: Any) -> dict[str, Any]:
    """Every file of a folder and its index state, paged (extension: spec.md)."""
    args = _validated("docs/files", params)
    engine = await ls.get_engine()
    await ls.ready.wait()
    if "uri" in args:
        if _uri_path(args["uri"]) is None:
            raise JsonRpcInvalidParams(f"docs/files: uri: cannot resolve {_quote(args['uri'])}")
        _index, folder = ls.admitted("docs/files: uri", args["uri"])
        if not folder.is_dir():
            raise JsonRpcInvalidParams(f"docs/files: uri: {folder} is not a folder")
        folders = [folder]
    else:
        folders = [f.resolve() for f in ls.folders if f.resolve() in engine.indexes]
    states, offset = args.get("states") or (), args.get("offset", 0)
    limit = args.get("limit", FILES_PAGE)
    try:
        result: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
            ls.search_executor, lambda: engine.files_page(folders, states, offset, limit))
    except InvalidParamsError as err:
        raise JsonRpcInvalidParams(f"docs/files: {err.message}") from err
    except ZeroLatencyError as err:
        raise _rpc_error(err) from err
    return result


# --- zl/status: the server pushes docs/status when it changes ------------------------------

#: At most one zl/status every this many seconds (the contract's "~2/s").
STATUS_PUSH_INTERVAL_S = 0.5
#: docs/status states in which the status will change again without a hook announcing it.
_BUSY_STATES = frozenset({"loading", "loadingModel", "indexing"})


class _StatusPush:
    """One connection's zl/status pushes: throttled, coalesced and sent only when the object
    differs from the last one sent. While the status says work is under way (not idle, or
    files pending) it looks again after the interval, so the end of work nobody announces (an
    edit's re-index, another client's run) is pushed too; once idle it waits for a hook."""

    def __init__(self, ls: ZeroLatencyServer) -> None:
        self.ls = ls
        self.last_sent: dict[str, Any] | None = None
        self.last_push_at = -STATUS_PUSH_INTERVAL_S
        self.timer: asyncio.TimerHandle | None = None
        self.sending = False
        self.again = False  # a change arrived while a status was being read

    def changed(self) -> None:
        if self.ls.released or self.ls.engine is None:
            return
        if self.sending:
            self.again = True
        elif self.timer is None:
            delay = max(0.0, self.last_push_at + STATUS_PUSH_INTERVAL_S - time.monotonic())
            self.timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.sending = True
        self.ls.spawn(self._send())

    async def _send(self) -> None:
        busy = False
        try:
            # The very object docs/status answers (the handler is a plain coroutine).
            status = await docs_status(self.ls, None)
            state = status.get("state")
            engine = self.ls.engine
            busy = (state in _BUSY_STATES or bool(status.get("pendingFiles")) or (
                state == "embedding" and engine is not None and engine.busy()))
            if status != self.last_sent and not self.ls.released:
                self.ls.protocol.notify("zl/status", status)
                self.last_sent = status
        except Exception as err:  # a push is best effort: never a failure loop
            log.debug("zl/status not sent: %r", err)
        finally:
            self.last_push_at = time.monotonic()
            self.sending = False
            if self.again or busy:
                self.again = False
                self.changed()


_STATUS_PUSHES: weakref.WeakKeyDictionary[ZeroLatencyServer, _StatusPush] = (
    weakref.WeakKeyDictionary())


def _status_changed(ls: ZeroLatencyServer) -> None:
    """Hook: something docs/status reports may have changed (an index run began, progressed or
    ended, the model loaded, background work failed). Event loop thread only: workers hop
    here with `loop.call_soon_threadsafe`."""
    push = _STATUS_PUSHES.get(ls)
    if push is None:
        push = _STATUS_PUSHES[ls] = _StatusPush(ls)
    push.changed()


def _status_changed_threadsafe(loop: asyncio.AbstractEventLoop, ls: ZeroLatencyServer) -> None:
    """`_status_changed` from a worker thread; a closed loop (the client left) is ignored."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_status_changed, ls)


@feature(lsp.WORKSPACE_SYMBOL)
async def workspace_symbol(ls: ZeroLatencyServer,
                           params: lsp.WorkspaceSymbolParams) -> list[lsp.SymbolInformation]:
    query = _checked_text("workspace/symbol", "query", params.query).strip()
    engine = await ls.get_engine()
    if not query or not ls.ready.is_set():
        return []
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(
            ls.search_executor,
            lambda: engine.search(query[:MAX_QUERY_CHARS], 50, roots=ls.roots()))
    except ZeroLatencyError as err:
        raise _rpc_error(err) from err
    symbols = []
    for hit in result["hits"]:
        heading = hit["headingPath"]
        name = heading[-1] if heading else " ".join(hit["snippet"].split()[:8])
        symbols.append(lsp.SymbolInformation(
            name=name, kind=lsp.SymbolKind.String,
            location=lsp.Location(uri=hit["uri"], range=lsp.Range(
                start=lsp.Position(hit["range"]["start"]["line"], 0),
                end=lsp.Position(hit["range"]["end"]["line"], 0))),
            container_name=" > ".join(heading[:-1]) or hit["path"]))
    return symbols


# --- document sync ---------------------------------------------------------------------------


@feature(lsp.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: ZeroLatencyServer, params: lsp.DidOpenTextDocumentParams) -> None:
    await ls.ready.wait()
    found = ls.index_for_uri(params.text_document.uri, admit=True)
    if found is None:
        return
    index, rel = found
    ls.require_engine().prioritize(index, rel)  # the backfill embeds what is open first
    uri, text = params.text_document.uri, params.text_document.text
    if len(text) <= index.settings.maxFileBytes:  # over it, the indexer skips it with a message
        # Off the loop: the file may be large, slow, or not a file at all (a FIFO never
        # answers a read).
        disk = await asyncio.get_running_loop().run_in_executor(
            None, _disk_state, index.root / rel, text, index.settings.maxFileBytes)
        if disk == "special":
            log.info("%s is not a regular file: not indexed", uri)
            return
        if disk == "same":
            return
        if ls.workspace.get_text_document(uri).version != params.text_document.version:
            return  # closed, or changed meanwhile (its didChange applies the newer text)
    _apply_buffer(ls, index, rel, text)


@feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: ZeroLatencyServer, params: lsp.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    await ls.ready.wait()  # pygls keeps the text meanwhile; the debounce reads it later
    engine = ls.require_engine()
    key = _document_key(uri)
    if (handle := ls.debounce.pop(key, None)) is not None:
        handle.cancel()
    found = ls.index_for_uri(uri, admit=True)
    if found is None:
        return
    found[0].touch(found[1])  # a version prepared before this edit must not be written
    delay = engine.settings.debounceMs / 1000

    def fire() -> None:
        ls.debounce.pop(key, None)
        document = ls.workspace.get_text_document(uri)
        if document.version is None:  # not open (pygls would read it from disk, on the loop)
            return
        _apply_buffer(ls, found[0], found[1], document.source)

    ls.debounce[key] = asyncio.get_running_loop().call_later(delay, fire)


@feature(lsp.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: ZeroLatencyServer, params: lsp.DidSaveTextDocumentParams) -> None:
    await ls.ready.wait()
    _back_to_disk(ls, params.text_document.uri)


@feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
async def did_close(ls: ZeroLatencyServer, params: lsp.DidCloseTextDocumentParams) -> None:
    await ls.ready.wait()
    _back_to_disk(ls, params.text_document.uri)


def _apply_buffer(ls: ZeroLatencyServer, index: WorkspaceIndex, rel: str, text: str) -> None:
    engine = ls.require_engine()
    index.set_overlay(rel, text)
    ls.buffers.add((index.root, rel))
    ls.spawn(asyncio.wrap_future(engine.schedule_sync(index, rel)))


def _back_to_disk(ls: ZeroLatencyServer, uri: str) -> None:
    """Saved or closed: the file on disk is the truth again (pending debounce dropped, under
    whatever spelling of the uri the edit came with)."""
    if (handle := ls.debounce.pop(_document_key(uri), None)) is not None:
        handle.cancel()
    found = ls.index_for_uri(uri)
    if found is None or ls.engine is None:
        return
    index, rel = found
    index.set_overlay(rel, None)
    ls.buffers.discard((index.root, rel))
    ls.spawn(asyncio.wrap_future(ls.engine.schedule_sync(index, rel)))


# --- workspace events ------------------------------------------------------------------------


def _sync_uris(ls: ZeroLatencyServer, uris: list[str]) -> None:
    _sync_paths(ls, [p for uri in uris if (p := _uri_path(uri)) is not None])


def _sync_paths(ls: ZeroLatencyServer, paths: list[Path], from_disk_watcher: bool = False) -> None:
    """Bring these changed files into the index; a changed .gitignore rescans its workspace
    (what is indexed changed; unchanged files cost a stat)."""
    engine = ls.engine
    if engine is None:
        return
    for path in paths:
        index = engine.index_for(path)
        rel = index.uri_to_rel(path) if index is not None else None
        if index is None or not rel:
            continue
        if path.name == ".gitignore":
            _rescan(ls, index.root)
            continue
        # The OS reports every file (.git, build output, editor swap files), where a client
        # reports only the globs it registered: only files that are or were indexed matter.
        if from_disk_watcher and index.filter.is_ignored(rel) and not (
                index.manifest_loaded and rel in index.files):
            continue
        ls.spawn(asyncio.wrap_future(engine.schedule_sync(index, rel)))


def _rescan(ls: ZeroLatencyServer, root: Path) -> None:
    """Sync a whole workspace in the background (unchanged files cost one stat each)."""
    engine = ls.engine
    if engine is not None:
        ls.spawn(ls.on_worker(lambda: engine.index([root])))


def _stop_watching(ls: ZeroLatencyServer) -> None:
    watcher, ls.disk_watcher = ls.disk_watcher, None
    if watcher is not None:
        watcher.close()


@feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
async def did_change_watched_files(ls: ZeroLatencyServer,
                                   params: lsp.DidChangeWatchedFilesParams) -> None:
    await ls.ready.wait()
    _sync_uris(ls, [c.uri for c in params.changes])


_FILE_OPS = lsp.FileOperationRegistrationOptions(
    filters=[lsp.FileOperationFilter(pattern=lsp.FileOperationPattern(glob="**/*"))])


@feature(lsp.WORKSPACE_DID_CREATE_FILES, _FILE_OPS)
async def did_create_files(ls: ZeroLatencyServer, params: lsp.CreateFilesParams) -> None:
    await ls.ready.wait()
    _sync_uris(ls, [f.uri for f in params.files])


@feature(lsp.WORKSPACE_DID_DELETE_FILES, _FILE_OPS)
async def did_delete_files(ls: ZeroLatencyServer, params: lsp.DeleteFilesParams) -> None:
    await ls.ready.wait()
    _sync_uris(ls, [f.uri for f in params.files])


@feature(lsp.WORKSPACE_DID_RENAME_FILES, _FILE_OPS)
async def did_rename_files(ls: ZeroLatencyServer, params: lsp.RenameFilesParams) -> None:
    await ls.ready.wait()
    _sync_uris(ls, [u for f in params.files for u in (f.old_uri, f.new_uri)])


@feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
async def did_change_workspace_folders(
        ls: ZeroLatencyServer, params: lsp.DidChangeWorkspaceFoldersParams) -> None:
    await ls.ready.wait()
    engine = ls.require_engine()
    for folder in params.event.removed:
        if (path := _uri_path(folder.uri)) is not None:
            ls.folders = [f for f in ls.folders if f != path]
            if ls.disk_watcher is not None:
                ls.disk_watcher.unwatch(path.resolve())
            if any(resolves_inside(path, f) for f in ls.folders):
                # Nested in a folder still open: its files are the outer folder's again.
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda p=path: engine.close_workspace(p))  # type: ignore[misc]
                if engine.index_for(path) is not None:
                    ls.spawn(ls.on_worker(lambda p=path: engine.index([p])))  # type: ignore[misc]
            # Otherwise its index stays open in the engine (another client may use it); this
            # client's searches and status no longer include it.
    added = [p for f in params.event.added if (p := _uri_path(f.uri)) is not None]
    for path in added:
        ls.folders.append(path)
        try:
            await ls.on_worker(lambda p=path: engine.open_workspace(p))  # type: ignore[misc]
        except ZeroLatencyError as err:
            ls.folder_errors[path.resolve()] = err
            _show(ls, err.message, lsp.MessageType.Error)
    opened = [p for p in added if p.resolve() in engine.indexes]
    if ls.disk_watcher is not None:
        for path in opened:
            try:
                ls.disk_watcher.watch(path.resolve())
            except OSError as err:
                log.warning("cannot watch %s for changes (%s): reindex it by hand", path, err)
    if opened:
        ls.spawn(ls.with_progress("Zero-Latency: indexing", None,
                                  lambda progress: engine.index(opened, progress=progress)))


# --- plumbing --------------------------------------------------------------------------------


def _validated(method: str, params: Any) -> dict[str, Any]:
    from .protocol import validate_params

    try:
        return validate_params(method, params)
    except ZeroLatencyError as err:
        raise JsonRpcInvalidParams(err.message) from err


def _checked_text(method: str, field: str, value: str) -> str:
    """`value` if it is valid text (JSON allows a lone surrogate; nothing after this does)."""
    from .protocol import check_text

    try:
        return check_text(method, field, value)
    except ZeroLatencyError as err:
        raise JsonRpcInvalidParams(err.message) from err


def _quote(value: str) -> str:
    from .protocol import quote

    return quote(value)


def _rpc_error(err: ZeroLatencyError) -> JsonRpcException:
    """The contract's error object: application failures are RequestFailed with `data.kind`."""
    return JsonRpcException(err.message, code=err.code, data=err.wire_data())


def _uri_path(uri: str) -> Path | None:
    """The canonical path of a file uri: one identity per file however the client spells it
    (percent escapes in either case, `file://localhost/`, `/./`, `..`, symlinks,
    /proc/self/root/…). None for other schemes and for paths that cannot be resolved."""
    from .files import canonical_path

    if not uri.startswith("file:"):
        return None
    if uri[5:].lower().startswith("//localhost/"):  # RFC 8089: the local host, spelled out
        uri = "file://" + uri[len("file://localhost"):]
    path = to_fs_path(uri)
    return canonical_path(Path(path)) if path else None


def _document_key(uri: str) -> str:
    """What pending edits are keyed by: the file, not the spelling of its uri."""
    path = _uri_path(uri)
    return str(path) if path is not None else uri


def _disk_state(path: Path, text: str, max_bytes: int) -> str:
    """Blocking (call off the loop): "same" when the file on disk holds `text`, "special"
    when the path is no regular file (never read: a FIFO would block), else "differs"."""
    from .chunking import normalise_newlines
    from .files import SkipFile, open_regular

    try:
        with open_regular(path) as file:
            data = file.read(max_bytes + 1)
    except SkipFile:
        return "special"
    except OSError:
        return "differs"
    try:
        disk = data.decode("utf-8")
    except UnicodeDecodeError:
        return "differs"
    return "same" if normalise_newlines(disk) == normalise_newlines(text) else "differs"


def _supports(ls: ZeroLatencyServer, dotted: str) -> bool:
    """A client capability, by its dotted snake_case path (False where any part is unset)."""
    return bool(get_capability(ls.client_capabilities, dotted, False))


def _show_threadsafe(ls: ZeroLatencyServer, message: str, kind: lsp.MessageType) -> None:
    """window/showMessage from a worker thread (the engine warns from its threads)."""
    log.warning("%s", message)
    loop = ls.main_loop
    if loop is None:
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(lambda: ls.window_show_message(
            lsp.ShowMessageParams(type=kind, message=message)))


def _show(ls: ZeroLatencyServer, message: str, kind: lsp.MessageType) -> None:
    log.warning("%s", message)
    # Not connected (shutdown): the log line above is enough.
    with contextlib.suppress(Exception):
        ls.window_show_message(lsp.ShowMessageParams(type=kind, message=message))


class _ClientLogHandler(logging.Handler):
    """Mirrors log records to every connected client as window/logMessage, from any thread."""

    LEVELS: ClassVar[dict[int, lsp.MessageType]] = {
        logging.ERROR: lsp.MessageType.Error, logging.WARNING: lsp.MessageType.Warning,
        logging.INFO: lsp.MessageType.Info}

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.clients: set[ZeroLatencyServer] = set()

    def emit(self, record: logging.LogRecord) -> None:
        for ls in list(self.clients):
            loop = ls.main_loop  # known once initialize arrives
            if loop is None or loop.is_closed() or ls.released:
                continue
            params = lsp.LogMessageParams(
                type=self.LEVELS.get(record.levelno, lsp.MessageType.Log),
                message=self.format(record))
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(ls.window_log_message, params)


CLIENT_LOG = _ClientLogHandler()
CLIENT_LOG.setFormatter(logging.Formatter("%(message)s"))


class _AnsweredErrorsInOneLine(logging.Filter):
    """pygls logs every error answer with its traceback; an answer the contract expects (a
    refused folder, bad params: anything but an internal error) is the user's mistake, not
    ours, and gets one line in the daemon's log instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, JsonRpcException) and error.code != JsonRpcInternalError.CODE:
            record.msg, record.args = f"{record.getMessage()}: {error}", ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("pygls.protocol.json_rpc").addFilter(_AnsweredErrorsInOneLine())


class _StreamWriter:
    """pygls's writer interface over an asyncio transport (a socket) or a binary file. Once
    the session has ended (`closed`), writes are dropped: work the client started (an index
    run's progress, status pushes) may still report, but never to a dead connection."""

    def __init__(self, write: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self._write = write
        self._close = close
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self._write(data)

    def close(self) -> None:
        self.closed = True
        self._close()


#: Asks a daemon of another version to step aside (spec.md, "zl/retire"): answered by the
#: connection's plumbing, before and regardless of any session.
RETIRE = "zl/retire"


def dispatch(ls: ZeroLatencyServer, item: Frame | FramingError) -> None:
    """Hand one framed message to the server, answering what JSON-RPC says to answer for
    what cannot be handled: invalid JSON (-32700), batches, non-objects and ids that are
    neither numbers nor strings (-32600). Only the top-level object is a message."""
    protocol = ls.protocol
    if isinstance(item, FramingError):
        log.warning("framing error: %s", item.message)
        protocol._send_response(item.message_id, None,  # type: ignore[arg-type]
                                JsonRpcException(item.message, code=item.code)
                                .to_response_error())
        return
    try:
        data = json.loads(item.body)
    except (ValueError, UnicodeDecodeError) as err:
        protocol._send_response(None, None,  # type: ignore[arg-type]
                                JsonRpcParseError(f"invalid JSON: {err}"[:200])
                                .to_response_error())
        return
    refusal = _invalid_request(data)
    if refusal is not None:
        message_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(message_id, int | str) or isinstance(message_id, bool):
            message_id = None
        protocol._send_response(message_id, None,  # type: ignore[arg-type]
                                JsonRpcInvalidRequest(refusal).to_response_error())
        return
    if data.get("method") == RETIRE and "id" in data:
        params = data.get("params")
        version = params.get("version") if isinstance(params, dict) else None
        if ls.hub.retire is None:
            error = JsonRpcException(f"{RETIRE}: not a daemon", code=-32601)
        elif not isinstance(version, str):
            error = JsonRpcInvalidParams(f"{RETIRE}: params.version must be a string")
        else:
            protocol._send_response(data["id"], ls.hub.retire(version))
            return
        protocol._send_response(data["id"], None, error.to_response_error())
        return
    try:
        message = protocol.structure_message(data)
    except JsonRpcException as err:
        log.warning("cannot read a message: %s", err.message)
        if "id" in data and "method" in data:
            protocol._send_response(data["id"], None, err.to_response_error())
        return
    try:
        protocol.handle_message(message)
    except Exception as err:  # one message never ends the connection
        # e.g. a late answer to a request of ours we stopped waiting for (a client held up
        # by a prompt answers window/workDoneProgress/create after our timeout): pygls sets
        # the result on a cancelled future.
        log.warning("could not handle a message (%s): %r", getattr(message, "method", None)
                    or f"response to {getattr(message, 'id', '?')}", err)


def _invalid_request(data: Any) -> str | None:
    if isinstance(data, list):
        return "batch requests are not supported: send one message per frame"
    if not isinstance(data, dict):
        return "a message must be a JSON object"
    if data.get("jsonrpc") != "2.0":
        return 'a message must have "jsonrpc": "2.0"'
    message_id = data.get("id")
    if "id" in data and message_id is not None and (
            not isinstance(message_id, int | str) or isinstance(message_id, bool)):
        return "id must be a number or a string"
    if "method" in data and not isinstance(data["method"], str):
        return "method must be a string"
    if "method" not in data and "id" not in data:
        return "a message needs a method or an id"
    return None


async def serve_connection(ls: ZeroLatencyServer, read: Callable[[], Any],
                           writer: _StreamWriter) -> int:
    """Serve one client until `exit`, or until its stream ends; then release what it held.
    `read` returns the next bytes (b"" at the end). Returns the LSP exit code."""
    ls.protocol.set_writer(writer)
    CLIENT_LOG.clients.add(ls)
    parser = FrameParser()
    reading: asyncio.Future[Any] | None = None
    closing = asyncio.ensure_future(ls.closing.wait())
    try:
        while not ls.closing.is_set():
            reading = asyncio.ensure_future(read())
            await asyncio.wait([reading, closing], return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                break
            data = reading.result()
            reading = None
            if not data:
                break
            for item in parser.feed(data):
                dispatch(ls, item)
                if ls.closing.is_set():
                    break
    finally:
        closing.cancel()
        if reading is not None:
            reading.cancel()
        CLIENT_LOG.clients.discard(ls)
        writer.closed = True  # nothing more goes to this client, whatever still reports
        ls.release()
        for task in list(ls.background):
            task.cancel()
        if ls.startup_task is not None:
            ls.startup_task.cancel()
    # The stream ended without `exit`: the client went away (0, as an editor that closed).
    return ls.exit_code if ls.exit_code is not None else 0


def serve() -> int:
    """`zl serve --no-daemon`: one client on stdio, with engines of its own."""
    logging.getLogger("zero_latency").addHandler(CLIENT_LOG)
    hub = EngineHub()
    ls = create_server(hub)
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    stdout = sys.stdout.buffer

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        # A thread reads stdin (a pipe, a file or a terminal alike); the loop never blocks.
        chunks: asyncio.Queue[bytes] = asyncio.Queue()

        def pump() -> None:
            while True:
                try:
                    data = stdin.read(65536) or b""
                except (OSError, ValueError):
                    data = b""
                loop.call_soon_threadsafe(chunks.put_nowait, data)
                if not data:
                    return

        threading.Thread(target=pump, name="zl-stdin", daemon=True).start()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(signal.SIGTERM, ls.closing.set)  # end as on `exit`
        return await serve_connection(ls, chunks.get, _StreamWriter(write, lambda: None))

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        log.error("the client closed its end of stdout")
        code = 1
    finally:
        hub.close()
        logging.getLogger("zero_latency").removeHandler(CLIENT_LOG)
    return code
