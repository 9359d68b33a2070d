"""The custom requests (`docs/index`, `docs/search`, `docs/related`, `docs/status`,
`docs/files`, `zl/daemon`) and `workspace/symbol`: validate, hop to the engine's threads,
answer in the contract's shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams

from ..config import DEFAULT_LIMIT, DEFAULT_SEARCH_MODE, MAX_QUERY_CHARS
from ..errors import CancelledError, InvalidParamsError, ZeroLatencyError
from ..paths import resolves_inside
from .plumbing import _checked_text, _quote, _rpc_error, _uri_path, _validated
from .session import feature

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from ..indexer import IndexReport
    from .session import ZeroLatencyServer

log = logging.getLogger("zero_latency")


#: docs/files: files per page unless the client asks (schema: at most 1000).
FILES_PAGE = 100


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
    from ..indexer import CancelToken

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
        # Opened since `roots()` was read (on a worker: the store reopened once there was
        # room)? The engine forgets a failure only after the folder's index is in place, so
        # reading again now finds it; without this the search ran on no folder at all and
        # answered "no hits" (seen under load in tests/test_store_faults.py).
        roots = ls.roots()
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
