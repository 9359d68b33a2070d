"""Document sync (didOpen/didChange/didSave/didClose: unsaved buffers in the index, debounced) and
workspace events (watched files, file operations, folders added and removed).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types as lsp

from ..errors import ZeroLatencyError
from ..paths import resolves_inside
from .plumbing import _disk_state, _document_key, _show, _uri_path
from .session import feature

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from ..indexer import WorkspaceIndex
    from .session import ZeroLatencyServer

log = logging.getLogger("zero_latency")


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
