"""Issue 19, on real processes: a cloned repository decides nothing about what runs or where
text goes through any client (an editor's workspace settings obey the rule a
`.zero-latency.toml` obeys), every request that names a file obeys the walk's file rules
before anything is read, and the client's home folder — not the daemon's — is the one that
is refused and that `~` means."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from watchdog.events import FileOpenedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

from .rpc import RawServer, wait_for
from .test_security import (
    PRIVATE,
    WARNING,
    Listener,
    folder,
    shown,
    start_server,
    user_config,
    wait_until,
)

ZL = [sys.executable, "-m", "zero_latency"]
INVALID_PARAMS = -32602


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A loopback port standing in for the repository's Qdrant server."""
    port = Listener()
    yield port
    port.close()


# --- 1. an editor's workspace settings cannot choose where text goes ----------------------------


def test_workspace_settings_from_an_editor_cannot_send_text_to_a_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener) -> None:
    """What VS Code read from a repository's `.vscode/settings.json` arrives as
    `initializationOptions.workspaceSettings`: its storeUrl is not applied, the user is told
    which settings were ignored and how to allow them, and nothing reaches the listener."""
    user_config(tmp_path, monkeypatch)
    repo = folder(tmp_path / "cloned-repo", {"README.md": "# Cloned\n\nSomeone else's.\n"})
    notes = folder(tmp_path / "private-notes", {"bank.md": f"# Bank\n\n{PRIVATE}\n"})
    server = start_server([repo, notes], workspaceSettings={
        "storeUrl": listener.url, "storeApiKey": "theirs", "device": "cuda",
        "model": "https://example.com/model.onnx", "trustedWorkspaces": [str(repo)],
        "exclude": ["drafts/**"]})
    try:
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": (notes / "draft.md").as_uri(), "languageId": "markdown", "version": 1,
            "text": "# Draft\n\nAn unsaved buffer about the aardvark.\n"}})
        report = server.request("docs/index", {}, timeout=300)["result"]
        assert report["errors"] == [] and report["files"] == 3, report  # and the buffer
        status = server.request("docs/status")["result"]
        assert status["store"]["kind"] == "embedded", status
        assert status["model"]["device"] == "cpu"
        assert status["model"]["id"] == "sentence-transformers/all-MiniLM-L6-v2@int8"
        hits = server.request("docs/search", {"query": "bank PIN"})["result"]["hits"]
        assert hits and hits[0]["uri"] == (notes / "bank.md").as_uri()  # searchable, locally
        assert listener.connections == []
        warnings = shown(server, WARNING)
        ignored = [w for w in warnings if "storeUrl, storeApiKey, device, model ignored" in w]
        assert len(ignored) == 1, warnings
        assert "the editor's workspace settings" in ignored[0]
        assert f'trustedWorkspaces = ["{repo}"]' in ignored[0]  # how to allow it
        assert any("'trustedWorkspaces' ignored" in w for w in warnings), warnings
    finally:
        assert server.close() == 0
    assert listener.connections == []


def test_workspace_settings_apply_where_the_user_trusts_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener) -> None:
    """The same values, for a folder the user's own config trusts, are honoured (the rule
    refuses the repository's word, not the setting)."""
    repo = folder(tmp_path / "team-repo", {"README.md": "# Team\n\nShared docs.\n"})
    user_config(tmp_path, monkeypatch, trustedWorkspaces=[str(repo)])
    server = start_server([repo], workspaceSettings={"storeUrl": listener.url})
    try:
        assert listener.connected.wait(120), server.notifications
    finally:
        server.close()


def test_a_bad_value_in_the_user_config_file_names_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = user_config(tmp_path, monkeypatch, debounceMs="soon")
    server = RawServer()
    try:
        ws = folder(tmp_path / "ws", {"a.md": "# A\n"})
        reply = server.request("initialize", {
            "processId": None, "capabilities": {},
            "workspaceFolders": [{"uri": ws.as_uri(), "name": "ws"}]}, timeout=60)
        message = reply["error"]["message"]
        assert message.startswith(f"{config}: setting 'debounceMs'"), message
        assert "initializationOptions" not in message
    finally:
        server.proc.kill()
        server.proc.wait(timeout=30)


# --- 2. every request that names a file obeys the file rules; nothing refused is read ------------


class OpenedFiles(FileSystemEventHandler):
    """Every file opened under a folder, by any process, as inotify reports it (IN_OPEN): a
    read the server makes shows here without tracing it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def on_opened(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileOpenedEvent):
            with self.lock:
                self.paths.append(os.fsdecode(event.src_path))

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.paths)


@pytest.fixture
def guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A workspace holding files the walk never reads (secrets, an ignored folder, a FIFO,
    a symlink out, a file over maxFileBytes) and one it reads, a file outside it, and a server
    that has indexed it."""
    user_config(tmp_path, monkeypatch)
    outside = folder(tmp_path / "outside", {"secret.md": f"# Outside\n\n{PRIVATE}\n"})
    ws = folder(tmp_path / "ws", {
        "notes.md": "# Notes\n\nThe aardvark digs at dawn.\n",
        ".env": f"PIN={PRIVATE}\n", "id_rsa": "-----BEGIN KEY-----\n",
        "big.md": "# Big\n\n" + "The aardvark again. " * 200,
        ".gitignore": "drafts/\n"})
    folder(ws / "node_modules" / "pkg", {"README.md": "# Package\n\nThe aardvark package.\n"})
    folder(ws / "drafts", {"plan.md": "# Plan\n\nThe aardvark plan.\n"})
    folder(ws / ".ssh", {"notes.md": f"# Keys\n\n{PRIVATE}\n"})
    os.mkfifo(ws / "pipe.md")
    (ws / "link.md").symlink_to(outside / "secret.md")
    server = start_server([ws], maxFileBytes=2000)
    server.request("docs/index", {}, timeout=300)
    handler = OpenedFiles()
    observer = InotifyObserver()
    observer.schedule(handler, str(tmp_path), recursive=True)
    observer.start()
    try:
        yield {"server": server, "ws": ws, "outside": outside, "opened": handler}
    finally:
        observer.stop()
        observer.join(timeout=30)
        server.close()


REFUSED = {  # file (relative to the test's folder) -> the rule the refusal names
    "ws/.env": "may hold secrets: never read",
    "ws/id_rsa": "may hold secrets: never read",
    "ws/.ssh/notes.md": "may hold secrets: never read (default rule: .ssh/)",
    "ws/node_modules/pkg/README.md": "default ignore: node_modules",
    "ws/drafts/plan.md": "ignored by .gitignore:1: drafts/",
    "ws/pipe.md": "not a regular file",
    "ws/big.md": "over the maxFileBytes limit of 2,000",
    "ws/link.md": "which resolves to",  # a symlink out: its target is outside
    "outside/secret.md": "not inside a workspace folder of this session",
}


def test_no_request_reads_a_file_the_walk_would_not(guarded: dict[str, Any]) -> None:
    server: RawServer = guarded["server"]
    ws: Path = guarded["ws"]
    root = ws.parent
    opened: OpenedFiles = guarded["opened"]
    for rel, rule in REFUSED.items():
        uri = (root / rel).as_uri()
        related = server.request("docs/related", {
            "uri": uri, "position": {"line": 0, "character": 0}}, timeout=60)
        assert related.get("error", {}).get("code") == INVALID_PARAMS, (rel, related)
        assert rule in related["error"]["message"], (rel, related)
        indexed = server.request("docs/index", {"uris": [uri]}, timeout=60)
        assert indexed.get("error", {}).get("code") == INVALID_PARAMS, (rel, indexed)
    for rel in ("node_modules", "drafts"):
        files = server.request("docs/files", {"uri": (ws / rel).as_uri()}, timeout=60)
        assert files.get("error", {}).get("code") == INVALID_PARAMS, (rel, files)
    shadow = server.request("docs/related", {
        "uri": "file:///etc/shadow", "position": {"line": 0, "character": 0}}, timeout=60)
    assert shadow["error"]["code"] == INVALID_PARAMS, shadow
    # The control: a file the rules admit is read, and the detector sees it.
    control = server.request("docs/related", {
        "uri": (ws / "notes.md").as_uri(), "position": {"line": 2, "character": 0}}, timeout=120)
    assert "result" in control, control
    wait_for(lambda: str(ws / "notes.md") in opened.seen(), 30, "the control read")
    refused_paths = {str(root / rel) for rel in REFUSED} | {
        str((root / rel).resolve()) for rel in REFUSED}
    assert refused_paths.isdisjoint(opened.seen()), opened.seen()


def test_a_refused_buffer_is_simply_not_indexed(guarded: dict[str, Any]) -> None:
    """An editor that opens `.env` or an ignored file: no error, not indexed, not searchable
    (a file the rules admit, opened the same way, is)."""
    server: RawServer = guarded["server"]
    ws: Path = guarded["ws"]
    for rel, word in ((".env", "zebrafinch"), ("drafts/plan.md", "okapi"),
                      ("node_modules/pkg/README.md", "quokka"), ("fresh.md", "wombat")):
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": (ws / rel).as_uri(), "languageId": "markdown", "version": 1,
            "text": f"# Buffer\n\nThe {word} lives here.\n"}})
    wait_for(lambda: server.request("docs/search", {"query": "wombat", "mode": "keyword"})[
        "result"]["hits"], 120, "the admitted buffer to be searchable")
    for word in ("zebrafinch", "okapi", "quokka"):
        hits = server.request("docs/search", {"query": word, "mode": "keyword"})["result"]
        assert hits["hits"] == [], (word, hits)
    assert server.errors() == []


# --- 4. the client's home folder, not the daemon's ---------------------------------------------


def home_with_secrets(tmp_path: Path) -> Path:
    home = folder(tmp_path / "agent-home", {"todo.md": "# Todo\n\nFeed the aardvark.\n"})
    folder(home / ".ssh", {"notes.txt": f"{PRIVATE} The aardvark key.\n"})
    return home


def env_with(**values: str) -> dict[str, str]:
    return {**os.environ, **values}


def test_the_server_refuses_the_client_s_home_not_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server process whose $HOME is elsewhere (as a daemon another client started) is told
    the client's home by zl/hello: that folder is refused, and `~` in the client's settings
    means it."""
    user_config(tmp_path, monkeypatch)
    home = home_with_secrets(tmp_path)
    elsewhere = folder(tmp_path / "daemon-home", {})
    server = RawServer([*ZL, "serve", "--no-daemon"], env=env_with(HOME=str(elsewhere)))
    try:
        hello = server.request("zl/hello", {"version": "0", "home": str(home)}, timeout=60)
        assert hello["result"]["pid"] == server.proc.pid, hello
        reply = server.request("initialize", {
            "processId": None, "capabilities": {},
            "workspaceFolders": [{"uri": home.as_uri(), "name": "home"}],
            "initializationOptions": {"storePath": "~/zl-store"}}, timeout=60)
        assert "result" in reply, reply
        server.notify("initialized", {})
        wait_until(server, lambda: any(f"{home} is a home folder" in m for m in shown(server, 1)))
        status = server.request("docs/status")["result"]
        assert status["store"]["location"] == str(home / "zl-store"), status
        assert status["refusedFolders"][0]["uri"] == home.as_uri(), status
        search = server.request("docs/search", {"query": "aardvark key"})["result"]
        assert search["hits"] == [] and "home folder" in search["notice"], search
        late = server.request("zl/hello", {"version": "0", "home": str(elsewhere)})
        assert late["error"]["code"] == -32600, late  # only before initialize
    finally:
        server.close()


def test_cli_and_agent_in_their_home_are_refused_whatever_the_daemon_s_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_config(tmp_path, monkeypatch)
    home = home_with_secrets(tmp_path)
    elsewhere = folder(tmp_path / "daemon-home", {})
    # An editor with another $HOME has started the daemon and is attached to it.
    editor = RawServer(env=env_with(HOME=str(elsewhere)))
    try:
        project = folder(tmp_path / "project", {"a.md": "# A\n\nThe aardvark digs.\n"})
        assert "result" in editor.request("initialize", {
            "processId": None, "capabilities": {},
            "workspaceFolders": [{"uri": project.as_uri(), "name": "p"}]}, timeout=120)
        editor.notify("initialized", {})

        cli = subprocess.run([*ZL, "index", "."], capture_output=True,
                             text=True, timeout=300, cwd=home, env=env_with(HOME=str(home)))
        assert cli.returncode == 2, (cli.stdout, cli.stderr)
        assert f"{home} is a home folder" in cli.stderr, cli.stderr

        result = mcp_search(home, "aardvark key")
        assert result["hits"] == [], result
        assert "home folder" in result.get("notice", ""), result
    finally:
        editor.close()
    assert not any(p.name == "notes.txt" for p in (tmp_path / "store").rglob("*"))


def mcp_search(cwd: Path, query: str) -> dict[str, Any]:
    """`zl mcp` started in `cwd` with $HOME = `cwd`, driven by the MCP SDK's own client."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    env = {k: v for k, v in os.environ.items() if k.startswith(("ZL_", "PATH"))}
    params = StdioServerParameters(command=sys.executable, env={**env, "HOME": str(cwd)},
                                   cwd=str(cwd), args=["-m", "zero_latency", "mcp"])

    async def run() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("search", {"query": query, "limit": 5})
            assert not result.is_error, result.content
            assert result.structured_content is not None
            return json.loads(json.dumps(result.structured_content))

    return anyio.run(run)


def test_an_agent_is_told_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              listener: Listener) -> None:
    """`zl mcp` (issue 20): the ignored where-text-goes setting of the workspace's own file is
    in the status tool's `messages`; a path holding NUL gets an error that says so."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from zero_latency.config import CONFIG_FILE_NAME

    user_config(tmp_path, monkeypatch)
    repo = folder(tmp_path / "cloned", {"README.md": "# Cloned\n\nThe aardvark digs.\n",
                                        CONFIG_FILE_NAME: f'storeUrl = "{listener.url}"\n'})
    env = {k: v for k, v in os.environ.items() if k.startswith(("ZL_", "PATH", "HOME"))}
    params = StdioServerParameters(command=sys.executable, env=env, cwd=str(repo),
                                   args=["-m", "zero_latency", "mcp"])

    async def run() -> tuple[dict[str, Any], str]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            found = await session.call_tool("search", {"query": "aardvark"})
            assert not found.is_error, found.content
            status = await session.call_tool("status", {})
            assert status.structured_content is not None
            bad = await session.call_tool("index", {"paths": ["notes\x00.md"]})
            assert bad.is_error
            return status.structured_content, bad.content[0].text  # type: ignore[union-attr]

    status, error = anyio.run(run)
    assert any("storeUrl ignored" in m for m in status.get("messages", [])), status
    assert "not a usable path" in error and "null" in error, error
    assert listener.connections == []
