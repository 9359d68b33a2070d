"""The session's lifecycle: `zl/hello`, `initialize` (whose settings, by the trust rule),
`initialized` (the engine, the model and the folders, then the first index run and the
watchers), `shutdown`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from .. import __version__
from ..config import DEFAULT_INCLUDE_EXTENSIONS, Settings
from ..errors import ZeroLatencyError
from ..frontdoor import SetupError, prepare_session
from .docsync import _rescan, _sync_paths
from .plumbing import _show, _show_threadsafe, _supports, _validated
from .session import HELLO, feature
from .status_push import _status_changed

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from ..engine import Engine
    from .session import ZeroLatencyServer

log = logging.getLogger("zero_latency")


WATCH_GLOB = "**/*.{" + ",".join(e.lstrip(".") for e in DEFAULT_INCLUDE_EXTENSIONS) + "}"


@feature(lsp.INITIALIZE)
def initialize(ls: ZeroLatencyServer, params: lsp.InitializeParams) -> None:
    ls.initialize_seen = True
    ls.main_loop = asyncio.get_running_loop()
    # The daemon's front door may have answered this very initialize already (frontdoor.py):
    # its setup is taken as it is, so that the session is the one the client was told of.
    setup, ls.early_setup = ls.early_setup, None
    if setup is None:
        try:
            setup = prepare_session([f.uri for f in params.workspace_folders or []],
                                    params.root_uri, params.initialization_options,
                                    ls.client_home)
        except SetupError as err:
            raise JsonRpcInvalidParams(err.message) from err
    # Shown: an ignored setting (a workspace's storeUrl) must be seen.
    for warning in setup.warnings:
        _show(ls, warning, lsp.MessageType.Warning)
    ls.index_on_start = setup.index_on_start
    ls.find_indexed_root = setup.find_indexed_root
    ls.settings = setup.settings
    ls.folders = setup.folders


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
        # A session that indexes what it opens (an agent) takes a workspace indexed with
        # other settings as its own, and makes its index there; one that does not (`zl
        # search`) would only make an empty store, and is told what to run instead.
        adopt = ls.index_on_start
        try:  # a Qdrant server (storeUrl) is asked: it may be down
            found = await loop.run_in_executor(
                None, lambda: [engine.indexed_root(f, any_settings=adopt) for f in ls.folders])
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
    from ..chunking import language_for
    from ..watcher import DiskWatcher

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
