"""Document sync under attack (issue 10, items 7-9): hostile buffers, special files and
differently spelled uris, over a real `zl serve` with the real model and a real store."""

from __future__ import annotations

import contextlib
import os
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from zero_latency.config import Settings
from zero_latency.engine import Engine

from .conftest import RUST_CHAPTERS
from .rpc import RawServer

T = TypeVar("T")

#: The client registers the server's file watchers, so disk edits arrive as events we send.
CAPABILITIES = {"workspace": {"didChangeWatchedFiles": {"dynamicRegistration": True}},
                "window": {"workDoneProgress": True}}


@contextlib.contextmanager
def serving(folders: list[Path], store: Path, **options: Any) -> Iterator[RawServer]:
    server = RawServer()
    try:
        reply = server.request("initialize", {
            "processId": None, "rootUri": folders[0].as_uri(), "capabilities": CAPABILITIES,
            "workspaceFolders": [{"uri": f.as_uri(), "name": f.name} for f in folders],
            "initializationOptions": {"model": "bundled", "storePath": str(store),
                                      "debounceMs": 50, **options}})
        assert "result" in reply, reply
        server.notify("initialized", {})
        yield server
    finally:
        try:
            server.close()
        except queue.Empty:  # rpc.py's wait for the shutdown reply timed out: a stuck server
            server.proc.kill()


def eventually(check: Callable[[], T], timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "the condition never became true"
        time.sleep(0.1)
    return value


def hits(server: RawServer, query: str) -> list[dict[str, Any]]:
    reply = server.request("docs/search", {"query": query, "mode": "keyword"})
    return reply["result"]["hits"]  # type: ignore[no-any-return]


def uris(server: RawServer, query: str) -> list[str]:
    return [hit["uri"] for hit in hits(server, query)]


def only(server: RawServer, query: str, uri: str) -> Callable[[], bool]:
    """A check: `query` finds `uri` and nothing else."""
    return lambda: uris(server, query) == [uri]


def open_doc(server: RawServer, uri: str, text: str, version: int = 1) -> None:
    server.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "markdown", "version": version, "text": text}})


def change_doc(server: RawServer, uri: str, text: str, version: int) -> None:
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                             "contentChanges": [{"text": text}]})


def disk_edit(server: RawServer, path: Path, text: str) -> None:
    path.write_text(text)
    server.notify("workspace/didChangeWatchedFiles",
                  {"changes": [{"uri": path.as_uri(), "type": 2}]})


def chapter(workspace: Path, n: int) -> Path:
    return workspace / "book" / RUST_CHAPTERS[n]


# --- item 7: lone surrogates -------------------------------------------------------------------


def test_a_lone_surrogate_in_a_buffer_costs_no_document_its_update(tmp_path: Path,
                                                                   workspace: Path) -> None:
    bad, good, other = chapter(workspace, 0), chapter(workspace, 2), chapter(workspace, 4)
    with serving([workspace], tmp_path / "store") as server:
        assert server.request("docs/index", {}, timeout=180)["result"]["files"] == 5
        for path in (bad, good):
            open_doc(server, path.as_uri(), path.read_text())
        # JSON allows "\ud800"; json.dumps sends it as that escape.
        change_doc(server, bad.as_uri(), "# Ownership\n\nThe wombat \ud800 burrows deep.\n", 2)
        change_doc(server, good.as_uri(), "# Vectors\n\nThe quokka keeps a ledger.\n", 2)
        assert eventually(lambda: uris(server, "quokka ledger") == [good.as_uri()])
        found = eventually(lambda: hits(server, "wombat burrows"))
        assert found[0]["uri"] == bad.as_uri()
        assert "wombat \ufffd burrows" in found[0]["snippet"]  # the surrogate became U+FFFD
        # A full run prepares the open buffer and a file edited on disk in one batch.
        other.write_text("# Threads\n\nThe capybara spawns a thread.\n")
        reply = server.request("docs/index", {}, timeout=180)
        assert "result" in reply and reply["result"]["errors"] == [], reply
        assert uris(server, "capybara spawns") == [other.as_uri()]


def test_a_batch_the_model_rejects_is_retried_file_by_file(
        tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanitising buffers leaves no text we know of that the tokenizer refuses, so this fault is
    injected: the tokenizer raises its own error for one file's text."""
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        engine.open_workspace(workspace)
        engine.index([workspace])
        embedder = engine.embedder
        assert embedder is not None
        real_encode = embedder._encode  # type: ignore[attr-defined]

        def encode(texts: Any) -> Any:
            if any("poison" in text for text in texts):
                raise TypeError("TextInputSequence must be str")
            return real_encode(texts)

        monkeypatch.setattr(embedder, "_encode", encode)
        bad, good = chapter(workspace, 0), chapter(workspace, 2)
        bad.write_text("# Ownership\n\nThe poison wombat burrows deep.\n")
        good.write_text("# Vectors\n\nThe quokka keeps a ledger.\n")
        report = engine.index([workspace])
        assert [e["uri"] for e in report.errors] == [bad.as_uri()], report.errors
        assert "TextInputSequence" in report.errors[0]["message"]
        assert (report.indexedFiles, report.skippedFiles) == (1, 1)
        top = engine.search("quokka ledger", mode="keyword")["hits"]
        assert [h["uri"] for h in top] == [good.as_uri()]
        # The failed file kept its stored state, which no longer matches it: retried next run.
        monkeypatch.setattr(embedder, "_encode", real_encode)
        assert engine.index([workspace]).indexedFiles == 1
        top = engine.search("poison wombat", mode="keyword")["hits"]
        assert [h["uri"] for h in top] == [bad.as_uri()]
    finally:
        engine.close()


# --- item 8: special files, the event loop, maxFileBytes ----------------------------------------


def _release_fifo(fifo: Path) -> None:
    """Give a reader blocked on the FIFO its end of file (old code blocked there)."""
    with contextlib.suppress(OSError):  # ENXIO: nobody is reading it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_fifo_named_like_a_document_never_blocks_the_server(tmp_path: Path,
                                                             workspace: Path) -> None:
    fifo = workspace / "book" / "x.md"
    os.mkfifo(fifo)
    os.mkfifo(workspace / "book" / ".gitignore")  # read by every walk and every event
    with serving([workspace], tmp_path / "store") as server:
        try:
            assert server.request("docs/index", {}, timeout=180)["result"]["files"] == 5
            open_doc(server, fifo.as_uri(), "# X\n\nThe tapir waits for a writer.\n")
            assert server.request("docs/status", timeout=10)["result"]["files"] == 5
            change_doc(server, fifo.as_uri(), "# X\n\nThe tapir still waits.\n", 2)
            server.notify("workspace/didChangeWatchedFiles",
                          {"changes": [{"uri": fifo.as_uri(), "type": 2}]})
            reply = server.request("docs/index", {"uris": [fifo.as_uri()]}, timeout=30)
            assert reply["error"]["code"] == -32602, reply  # the file rules: never read
            assert "not a regular file" in reply["error"]["message"], reply
            status = server.request("docs/status", timeout=10)["result"]
            assert status["files"] == 5 and status["pendingFiles"] == 0, status
            assert fifo.as_uri() not in uris(server, "tapir waits writer")
        finally:
            _release_fifo(fifo)
            _release_fifo(workspace / "book" / ".gitignore")


def test_opening_a_200_mb_file_does_not_stall_the_server(tmp_path: Path,
                                                        workspace: Path) -> None:
    """didOpen compared the buffer with the file on the event loop: reading and decoding a
    200 MB file held every request for 1.4 s (measured). Now the comparison runs off the loop
    and reads no more than maxFileBytes."""
    big = workspace / "big.md"
    line = "The quarterly ledger line was reconciled by the narwhal.\n"
    with big.open("w") as file:
        file.writelines(line for _ in range(200_000_000 // len(line)))
    with serving([workspace], tmp_path / "store") as server:
        report = server.request("docs/index", {}, timeout=180)["result"]
        assert report["skippedFiles"] == 1, report  # over maxFileBytes: stat, never read
        waits = []
        for version in range(3):  # the best of three: a loaded machine delays any one reply
            open_doc(server, big.as_uri(), "# A small buffer\n", version + 1)
            began = time.monotonic()
            server.request("docs/status")
            waits.append(time.monotonic() - began)
            server.notify("textDocument/didClose", {"textDocument": {"uri": big.as_uri()}})
        assert min(waits) < 0.5, waits


def log_messages(server: RawServer) -> list[str]:
    return [m["params"]["message"] for m in server.notifications
            if m["method"] in ("window/logMessage", "window/showMessage")]


def test_a_buffer_over_max_file_bytes_is_skipped_like_the_file(tmp_path: Path,
                                                               workspace: Path) -> None:
    path = chapter(workspace, 2)
    original = path.read_text()
    assert len(original.encode()) < 100_000
    # 349 KB of distinct paragraphs, as in the report (a 100 KB limit).
    big = original + "\n\nThe narwhal keeps the ledger.\n" + "".join(
        f"\nParagraph {n}: the quarterly ledger line {n} was reconciled.\n" for n in range(6000))
    assert len(big.encode()) > 349_000
    with serving([workspace], tmp_path / "store", maxFileBytes=100_000) as server:
        assert server.request("docs/index", {}, timeout=180)["result"]["files"] == 5
        assert path.as_uri() in uris(server, "Vec::new creating an empty vector")
        open_doc(server, path.as_uri(), big)

        def skipped() -> bool:
            server.request("docs/status")  # collects the notifications sent meanwhile
            return any("maxFileBytes" in m and path.name in m for m in log_messages(server))

        eventually(skipped)
        assert not hits(server, "narwhal ledger")
        # Like a file that grew over the limit: its old text is not served either.
        assert path.as_uri() not in uris(server, "Vec::new creating an empty vector")
        server.notify("textDocument/didClose", {"textDocument": {"uri": path.as_uri()}})
        eventually(lambda: path.as_uri() in uris(server, "Vec::new creating an empty vector"))


# --- item 9: one identity per file --------------------------------------------------------------


def test_one_file_however_its_uri_is_spelled(tmp_path: Path, workspace: Path) -> None:
    ws = workspace.as_posix()
    spelled = {  # file -> a spelling of its uri that the client opens and edits it with
        chapter(workspace, 0): f"file://localhost{ws}/book/{RUST_CHAPTERS[0]}",
        chapter(workspace, 2): f"file://{ws}/%62ook/{RUST_CHAPTERS[2]}".replace(".md", "%2Emd"),
        chapter(workspace, 3): f"file://{ws}/./book/../book/{RUST_CHAPTERS[3]}",
    }
    if Path("/proc/self/root").is_dir():
        spelled[chapter(workspace, 4)] = f"file:///proc/self/root{ws}/book/{RUST_CHAPTERS[4]}"
    debounce_s = 0.3
    with serving([workspace], tmp_path / "store", debounceMs=int(debounce_s * 1000)) as server:
        assert server.request("docs/index", {}, timeout=180)["result"]["files"] == 5
        for n, (path, uri) in enumerate(spelled.items()):
            open_doc(server, uri, path.read_text())
            change_doc(server, uri, f"# Edited\n\nThe zebra{n} buffer marker.\n", 2)
            # Searchable under the file's one canonical uri.
            assert eventually(only(server, f"zebra{n}", path.as_uri()))
            change_doc(server, uri, f"# Edited\n\nThe gazelle{n} buffer marker.\n", 3)
            # Closed under the canonical spelling while that edit still waits to be applied.
            server.notify("textDocument/didClose", {"textDocument": {"uri": path.as_uri()}})
        closed = time.monotonic()
        for n, path in enumerate(spelled):
            disk_edit(server, path, f"# On disk\n\nThe okapi{n} disk marker.\n")
            assert eventually(only(server, f"okapi{n}", path.as_uri()))
        # The edits' debounce timers would have fired by now (old code left one armed, and it
        # put a stale buffer over the file for good); later disk edits must still be seen.
        while time.monotonic() < closed + 10 * debounce_s:
            server.request("docs/status")
        for n, path in enumerate(spelled):
            disk_edit(server, path, f"# On disk\n\nThe ibex{n} disk marker.\n")
        for n, path in enumerate(spelled):
            assert eventually(only(server, f"ibex{n}", path.as_uri()))
            assert not hits(server, f"okapi{n}") and not hits(server, f"gazelle{n}")
        found = [h for n in range(len(spelled)) for h in hits(server, f"ibex{n}")]
        assert all(".." not in h["path"] and "proc" not in h["path"] for h in found), found


def test_nested_workspace_folders_hold_each_file_once(tmp_path: Path, workspace: Path) -> None:
    inner = workspace / "book"
    path = chapter(workspace, 0)
    path.write_text("# Ownership\n\nThe okapi marker.\n")
    with serving([workspace, inner], tmp_path / "store") as server:
        server.request("docs/index", {}, timeout=180)
        assert uris(server, "okapi") == [path.as_uri()]
        assert server.request("docs/status")["result"]["files"] == 5
        disk_edit(server, path, "# Ownership\n\nThe ibex marker.\n")
        assert eventually(lambda: uris(server, "ibex") == [path.as_uri()])
        assert not hits(server, "okapi"), "old text kept under the outer folder"
        # The inner folder closes: the outer one takes its files back, once.
        server.notify("workspace/didChangeWorkspaceFolders", {"event": {
            "added": [], "removed": [{"uri": inner.as_uri(), "name": "book"}]}})
        eventually(lambda: len(server.request("docs/status")["result"]["workspaces"]) == 1)
        assert eventually(lambda: uris(server, "ibex") == [path.as_uri()])
        # ... and opens again: it takes them over, and the outer folder keeps no copy.
        server.notify("workspace/didChangeWorkspaceFolders", {"event": {
            "added": [{"uri": inner.as_uri(), "name": "book"}], "removed": []}})

        def inner_indexed() -> bool:
            workspaces = server.request("docs/status")["result"]["workspaces"]
            return [w["files"] for w in workspaces] == [0, 5]

        eventually(inner_indexed)
        assert uris(server, "ibex") == [path.as_uri()]


def test_index_of_a_symlinked_folder_keeps_the_files_canonical_names(
        tmp_path: Path, workspace: Path) -> None:
    (workspace / "latest").symlink_to("book")  # followSymlinks is false by default
    with serving([workspace], tmp_path / "store") as server:
        assert server.request("docs/index", {}, timeout=180)["result"]["files"] == 5
        for spelling in ((workspace / "latest").as_uri(),
                         f"file:///proc/self/root{workspace.as_posix()}/book"):
            if "/proc/" in spelling and not Path("/proc/self/root").is_dir():
                continue
            report = server.request("docs/index", {"uris": [spelling]}, timeout=180)["result"]
            assert (report["removedFiles"], report["indexedFiles"], report["errors"]) == (
                0, 0, []), (spelling, report)
            assert server.request("docs/status")["result"]["files"] == 5
            found = hits(server, "ownership borrowing vectors threads")
            assert found and all(h["path"].startswith("book/") for h in found), found

