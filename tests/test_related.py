"""docs/related over a real `zl serve` (through the daemon): passages from other files like the
paragraph at the cursor, from the stored vector or embedded on the fly for an unsaved buffer;
and indexing progress that survives a client slow to answer window/workDoneProgress/create."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

from zero_latency.protocol import result_errors

from .rpc import RawServer, started

BORROWING_DRAFT = """# Draft: notes on borrowing

A reference lets a function use a value without taking ownership of it. You can have either one
mutable reference or any number of immutable references to a value at a time, and references
must always be valid: the borrow checker rejects a reference that outlives its data.
"""


def related(server: RawServer, uri: str, line: int, **extra: Any) -> dict[str, Any]:
    reply = server.request("docs/related", {"uri": uri, "position": {"line": line,
                                                                     "character": 0}, **extra},
                           timeout=120)
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    assert result_errors("docs/related", result) == [], result
    return result


def test_related_passages_come_from_other_files(workspace: Path, tmp_path: Path) -> None:
    server = started(workspace, tmp_path / "store")
    try:
        assert "result" in server.request("docs/index", {}, timeout=300)
        threads = workspace / "book" / "ch16-01-threads.md"
        lines = threads.read_text().split("\n")
        line = next(i for i, text in enumerate(lines) if "thread::spawn" in text
                    and not text.startswith(("```", "    ")))
        result = related(server, threads.as_uri(), line, limit=5)
        anchor = result["anchor"]
        assert anchor["start"]["line"] <= line < anchor["end"]["line"], (line, anchor)
        assert result["hits"], result
        assert len(result["hits"]) <= 5
        assert all(hit["uri"] != threads.as_uri() for hit in result["hits"]), result
        for hit in result["hits"]:
            assert 0 <= hit["score"] <= 1
            match = hit["matchRange"]["start"]["line"]
            assert hit["range"]["start"]["line"] <= match < hit["range"]["end"]["line"]

        # An unsaved buffer, on no disk: its paragraph is embedded on the fly.
        draft = workspace / "draft.md"
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": draft.as_uri(), "languageId": "markdown", "version": 1,
            "text": BORROWING_DRAFT}})
        found = related(server, draft.as_uri(), 3)
        assert found["anchor"]["start"]["line"] <= 3 < found["anchor"]["end"]["line"]
        paths = [hit["path"] for hit in found["hits"]]
        assert paths and paths[0] == "book/ch04-02-references-and-borrowing.md", paths
        assert "draft.md" not in paths

        missing = server.request("docs/related", {"uri": (workspace / "nope.md").as_uri(),
                                                  "position": {"line": 0, "character": 0}})
        assert missing["error"]["code"] == -32602, missing
        bad = server.request("docs/related", {"uri": threads.as_uri(), "position": {"line": -1}})
        assert bad["error"]["code"] == -32602, bad
    finally:
        server.close()


def test_progress_survives_a_client_that_answers_create_late(workspace: Path,
                                                             tmp_path: Path) -> None:
    """Neovim holding a "Press ENTER" prompt answers window/workDoneProgress/create after the
    server stopped waiting: indexing goes on, and the late answer is no error anywhere."""
    server = RawServer()
    try:
        server.send({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "processId": None, "rootUri": workspace.as_uri(),
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": "ws"}],
            "capabilities": {"window": {"workDoneProgress": True}},
            "initializationOptions": {"model": "bundled", "storePath": str(tmp_path / "store")}}})
        seen: list[dict[str, Any]] = []

        def until(condition: Any, timeout: float = 300) -> dict[str, Any]:
            """Read messages (answering nothing) until one meets `condition`."""
            deadline = time.monotonic() + timeout
            while True:
                try:
                    message = server.messages.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty as err:
                    raise TimeoutError(f"waited for a message; saw {seen[-5:]}") from err
                seen.append(message)
                if condition(message):
                    return message

        until(lambda m: m.get("id") == "init")
        server.notify("initialized", {})
        create = until(lambda m: m.get("method") == "window/workDoneProgress/create")
        # Unanswered: the first index run goes on and finishes (docs/status counts the files).
        deadline = time.monotonic() + 300
        while True:
            server.send({"jsonrpc": "2.0", "id": "status", "method": "docs/status"})
            status = until(lambda m: m.get("id") == "status")["result"]
            if status["files"] == 5 and status["state"] not in ("indexing", "loadingModel",
                                                                "loading"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        server.send({"jsonrpc": "2.0", "id": create["id"], "result": None})  # late
        # The connection still works, and the late answer made no error: search answers.
        server.send({"jsonrpc": "2.0", "id": "search", "method": "docs/search",
                     "params": {"query": "threads"}})
        assert until(lambda m: m.get("id") == "search")["result"]["hits"]
        complaints = [m for m in seen if m.get("method") in ("window/showMessage",
                                                             "window/logMessage")
                      and m["params"]["type"] <= 2]  # errors and warnings
        stderr = b"".join(server.stderr).decode(errors="replace")
        assert complaints == [], complaints
        assert "CANCELLED" not in stderr and "Error in server" not in stderr, stderr[-2000:]
        assert "could not handle a message" not in stderr, stderr[-2000:]
    finally:
        server.close()
