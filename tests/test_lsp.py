"""End to end over stdio: a real pytest-lsp client (with the recorded capabilities of VS Code,
Neovim and Emacs) drives `zl serve` with the real model and a real Qdrant Edge store."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from zero_latency.protocol import result_errors

from .conftest import RUST_CHAPTERS, SERVER_COMMAND, need_corpus, plain
from .rpc import RawServer

CLIENTS = ["visual-studio-code", "neovim", "emacs"]


async def docs(client: LanguageClient, method: str, params: Any = None) -> dict[str, Any]:
    result = plain(await client.protocol.send_request_async(method, params))
    assert result_errors(method, result) == [], result  # every result honours the schema
    return result  # type: ignore[no-any-return]


async def start(client: LanguageClient, spec: str, folders: list[Path], store: Path,
                **options: Any) -> lsp.InitializeResult:
    registrations: list[lsp.RegistrationParams] = []

    @client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:  # pytest-lsp does not answer it
        registrations.append(params)

    client.registrations = registrations  # type: ignore[attr-defined]
    return await client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities(spec),
        workspace_folders=[lsp.WorkspaceFolder(uri=f.as_uri(), name=f.name) for f in folders],
        initialization_options={"model": "bundled", "storePath": str(store), "debounceMs": 50,
                                **options},
    ))


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND), params=CLIENTS)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest,
                 workspace: Path, tmp_path: Path) -> Any:
    lsp_client.init_result = await start(  # type: ignore[attr-defined]
        lsp_client, request.param, [workspace], tmp_path / "store")
    lsp_client.spec = request.param  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND))
async def vscode(lsp_client: LanguageClient, workspace: Path, tmp_path: Path) -> Any:
    await start(lsp_client, "visual-studio-code", [workspace], tmp_path / "store")
    yield
    await lsp_client.shutdown_session()


async def search(client: LanguageClient, query: str, **extra: Any) -> list[dict[str, Any]]:
    result = await docs(client, "docs/search", {"query": query, **extra})
    return result["hits"]  # type: ignore[no-any-return]


async def eventually(check: Any, timeout: float = 20.0) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_index_then_search_as_each_client(client: LanguageClient, workspace: Path) -> None:
    caps = client.init_result.capabilities  # type: ignore[attr-defined]
    assert caps.experimental == {"docs": {"version": 1}}
    assert caps.workspace_symbol_provider
    assert caps.workspace.workspace_folders.change_notifications
    report = await docs(client, "docs/index", {})  # waits for the startup index
    status = await docs(client, "docs/status")
    assert status["state"] == "idle" and status["files"] == len(RUST_CHAPTERS)
    assert status["model"]["dimension"] == 384
    assert report["errors"] == []

    hits = await search(client, "what happens to a value when its owner goes out of scope")
    assert hits, "no hits"
    top = hits[0]
    path = workspace / "book" / "ch04-01-what-is-ownership.md"
    assert top["uri"] == path.as_uri()
    lines = path.read_text().split("\n")
    start, end = top["range"]["start"]["line"], top["range"]["end"]["line"]
    assert 0 <= start < end <= len(lines) + 1
    assert top["headingPath"][0] == "What Is Ownership?"
    # the snippet's words are in the range it claims
    chunk = " ".join(" ".join(lines[start:end]).split())
    assert top["snippet"].strip("…").split()[1] in chunk

    symbols = await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="threads"))
    assert symbols and any("ch16-01-threads.md" in s.location.uri for s in symbols)
    if client.spec == "visual-studio-code":  # type: ignore[attr-defined]
        # VS Code supports dynamic watcher registration: the server registers its globs.
        methods = [r.method for p in client.registrations  # type: ignore[attr-defined]
                   for r in p.registrations]
        assert lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES in methods


async def test_unsaved_edit_is_searchable_and_close_reverts(vscode: LanguageClient,
                                                            workspace: Path) -> None:
    client = vscode
    await docs(client, "docs/index", {})
    path = workspace / "book" / "ch08-01-vectors.md"
    uri = path.as_uri()
    text = path.read_text()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=uri, language_id="markdown", version=1, text=text)))
    lines = text.split("\n")
    new_line = "Zebra quokka marmalade: the platypus protocol rotates signing keys hourly."
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[lsp.TextDocumentContentChangePartial(
            range=lsp.Range(lsp.Position(0, 0), lsp.Position(len(lines), 0)),
            text=f"# Vectors\n\n{new_line}\n")]))

    async def found() -> list[dict[str, Any]]:
        hits = await search(client, "platypus protocol zebra quokka", mode="keyword")
        return [h for h in hits if h["uri"] == uri]

    hits = await eventually(found)
    assert hits and hits[0]["range"]["start"]["line"] <= 2 < hits[0]["range"]["end"]["line"]
    old = await search(client, "Vec::new function creating an empty vector", mode="keyword")
    assert all(h["uri"] != uri for h in old), "old text still indexed for the edited buffer"

    client.text_document_did_close(lsp.DidCloseTextDocumentParams(
        lsp.TextDocumentIdentifier(uri=uri)))

    async def reverted() -> bool:
        return not await found()

    assert await eventually(reverted)
    back = await search(client, "Vec::new function creating an empty vector", mode="keyword")
    assert any(h["uri"] == uri for h in back)


async def test_watched_files_and_file_operations(vscode: LanguageClient,
                                                 workspace: Path) -> None:
    client = vscode
    await docs(client, "docs/index", {})
    new = workspace / "notes.md"
    new.write_text("# Notes\n\nThe ocelot migration runbook lives here.\n")
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(uri=new.as_uri(), type=lsp.FileChangeType.Created)]))

    async def hits_for(query: str, uri: str) -> list[dict[str, Any]]:
        return [h for h in await search(client, query, mode="keyword") if h["uri"] == uri]

    assert await eventually(lambda: hits_for("ocelot migration runbook", new.as_uri()))

    new.write_text("# Notes\n\nThe capybara rollback checklist replaced it.\n")
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(uri=new.as_uri(), type=lsp.FileChangeType.Changed)]))
    assert await eventually(lambda: hits_for("capybara rollback checklist", new.as_uri()))
    assert not await hits_for("ocelot migration runbook", new.as_uri())

    renamed = workspace / "renamed.md"
    new.rename(renamed)
    client.workspace_did_rename_files(lsp.RenameFilesParams(
        [lsp.FileRename(old_uri=new.as_uri(), new_uri=renamed.as_uri())]))
    assert await eventually(lambda: hits_for("capybara rollback checklist", renamed.as_uri()))

    async def old_gone() -> bool:
        return not await hits_for("capybara rollback checklist", new.as_uri())

    assert await eventually(old_gone)

    renamed.unlink()
    client.workspace_did_delete_files(lsp.DeleteFilesParams(
        [lsp.FileDelete(uri=renamed.as_uri())]))

    async def deleted() -> bool:
        return not await hits_for("capybara rollback checklist", renamed.as_uri())

    assert await eventually(deleted)

    chapter = workspace / "book" / RUST_CHAPTERS[-1]
    chapter.unlink()
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(uri=chapter.as_uri(), type=lsp.FileChangeType.Deleted)]))

    async def chapter_gone() -> bool:
        hits = await search(client, "spawn threads join handle", mode="keyword")
        return all(h["uri"] != chapter.as_uri() for h in hits)

    assert await eventually(chapter_gone)


async def test_workspace_folders_added_and_removed(vscode: LanguageClient,
                                                   tmp_path: Path) -> None:
    client = vscode
    await docs(client, "docs/index", {})
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "guide.md").write_text("# Guide\n\nHow to feed the axolotl on Tuesdays.\n")
    client.workspace_did_change_workspace_folders(lsp.DidChangeWorkspaceFoldersParams(
        lsp.WorkspaceFoldersChangeEvent(
            added=[lsp.WorkspaceFolder(uri=extra.as_uri(), name="extra")], removed=[])))

    async def axolotl() -> list[dict[str, Any]]:
        return await search(client, "feed the axolotl", mode="keyword")

    hits = await eventually(axolotl)
    assert hits and hits[0]["uri"] == (extra / "guide.md").as_uri()
    client.workspace_did_change_workspace_folders(lsp.DidChangeWorkspaceFoldersParams(
        lsp.WorkspaceFoldersChangeEvent(
            added=[], removed=[lsp.WorkspaceFolder(uri=extra.as_uri(), name="extra")])))

    async def dropped() -> bool:
        return not await axolotl()

    assert await eventually(dropped)


async def test_cancel_long_index_and_search_while_indexing(
        vscode: LanguageClient, workspace: Path) -> None:
    client = vscode
    await docs(client, "docs/index", {})
    # Enough real text that re-embedding takes many seconds.
    for name in sorted(p.name for p in need_corpus("rust-book").iterdir())[:30]:
        shutil.copy(need_corpus("rust-book") / name, workspace / "book" / name)
    task = asyncio.ensure_future(client.protocol.send_request_async(
        "docs/index", {"force": True}, msg_id="long-index"))

    async def indexing() -> bool:
        return (await docs(client, "docs/status"))["state"] == "indexing"

    assert await eventually(indexing, timeout=120), "the forced index never showed as running"
    during = await docs(client, "docs/search", {"query": "ownership rules"})
    assert during["indexState"] == "indexing"
    assert during["hits"], "search during indexing returns what is indexed already"
    started = asyncio.get_running_loop().time()
    client.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id="long-index"))
    with pytest.raises(JsonRpcException) as info:
        await task
    assert info.value.code == -32800
    # The server stops promptly: no run soon ("embedding" when the cancelled run left chunks
    # without their dense vectors, "idle" when it left none).

    async def idle() -> bool:
        return (await docs(client, "docs/status"))["state"] in ("idle", "embedding")

    assert await eventually(idle, timeout=10)
    assert asyncio.get_running_loop().time() - started < 10


async def test_errors_carry_contract_codes(vscode: LanguageClient) -> None:
    client = vscode
    for params, field in (({}, "query"), ({"query": ""}, "query"),
                          ({"query": "x", "limit": 1000}, "limit"),
                          ({"query": "x", "mode": "fuzzy"}, "mode"),
                          ({"query": 42}, "query"),
                          ({"query": "x", "languages": ["cobol"]}, "languages")):
        with pytest.raises(JsonRpcException) as info:
            await client.protocol.send_request_async("docs/search", params)
        assert info.value.code == -32602 and field in info.value.message, info.value.message
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async("docs/index", {"uris": ["file:///etc"]})
    assert info.value.code == -32602 and "uris" in info.value.message
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async("docs/nonsense", {})
    assert info.value.code == -32601
    # the server is still fine
    assert (await docs(client, "docs/status"))["model"]["id"]


def test_request_before_initialize_and_bad_options(tmp_path: Path) -> None:
    server = RawServer()
    try:
        reply = server.request("docs/search", {"query": "x"})
        assert reply["error"]["code"] == -32002 and "initialize" in reply["error"]["message"]
        reply = server.request("initialize", {
            "processId": None, "rootUri": None, "capabilities": {},
            "initializationOptions": {"maxFileBytes": "big", "storePath": str(tmp_path)}})
        assert reply["error"]["code"] == -32602 and "maxFileBytes" in reply["error"]["message"]
        assert server.stdout_garbage == []
    finally:
        server.close()


def test_plain_client_without_file_events_still_sees_disk_changes(tmp_path: Path,
                                                                  workspace: Path) -> None:
    """A plain LSP editor sends no file events: the server's own watcher keeps up."""
    import time

    server = RawServer()
    try:
        init = server.request("initialize", {
            "processId": None, "rootUri": workspace.as_uri(), "capabilities": {},
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": "ws"}],
            "initializationOptions": {"model": "bundled", "storePath": str(tmp_path / "s")}})
        assert "result" in init
        server.notify("initialized", {})
        assert server.request("docs/index", {}, timeout=120)["result"]["files"] == 5

        def found(word: str) -> list[str]:
            hits = server.request("docs/search", {"query": word, "mode": "keyword"})
            return [h["uri"] for h in hits["result"]["hits"]]

        def eventually(check: Any, timeout: float = 3.0) -> float:
            began = time.monotonic()
            while not check():
                assert time.monotonic() - began < timeout, "the change was not noticed"
                time.sleep(0.02)
            return time.monotonic() - began

        note = workspace / "book" / "axolotl.md"
        note.write_text("# Field notes\n\nThe axolotl regrows its gills overnight.\n")
        assert eventually(lambda: found("axolotl regrows") == [note.as_uri()]) < 3
        # Saved by renaming a temp file over it, as many editors do.
        tmp = workspace / "book" / ".axolotl.md.swp"
        tmp.write_text("# Field notes\n\nThe capybara naps by the river.\n")
        tmp.replace(note)
        eventually(lambda: found("capybara naps") == [note.as_uri()] and
                   not found("axolotl regrows"))
        # A folder moved out of the workspace takes its files with it.
        shutil.move(str(workspace / "book"), str(tmp_path / "elsewhere"))
        eventually(lambda: not found("capybara naps"))
        status = server.request("docs/status")["result"]
        assert status["files"] == 0, status
    finally:
        assert server.close() == 0
