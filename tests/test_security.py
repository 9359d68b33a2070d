"""Attacks from issue 10 (items 1, 2, 3 and 6), each reproduced on real processes: a cloned
repository's `.zero-latency.toml` pointing the store at another machine, escape sequences in
file names and text printed by `zl search`, `/` or a home folder as a workspace, and odd params
that used to get internal errors (-32603 with a traceback) instead of InvalidParams."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zero_latency.config import (
    CONFIG_FILE_NAME,
    Settings,
    WorkspaceRefusedError,
    check_workspace_folder,
    load_settings,
)

from .rpc import RawServer

ZL = [sys.executable, "-m", "zero_latency"]
PRIVATE = "My bank PIN is 4711, written down so that I do not forget it."
ERROR, WARNING = 1, 2  # window/showMessage types


class Listener:
    """A local TCP port standing in for an attacker's Qdrant server: it records every
    connection made to it (and hangs up)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[Any] = []
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, address = self.sock.accept()
            except OSError:  # closed
                return
            self.connections.append(address)
            self.connected.set()
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    port = Listener()
    yield port
    port.close()


def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: Any) -> Path:
    """The user's own config file ($ZL_CONFIG, which the servers started here inherit), with
    the bundled model and a store in the test's folder."""
    path = tmp_path / "user-config.toml"
    values = {"model": "bundled", "storePath": str(tmp_path / "store"), **values}
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    monkeypatch.setenv("ZL_CONFIG", str(path))
    return path


def folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def start_server(folders: list[Path], **options: Any) -> RawServer:
    server = RawServer()
    reply = server.request("initialize", {
        "processId": None, "capabilities": {},
        "workspaceFolders": [{"uri": f.as_uri(), "name": f.name} for f in folders],
        "initializationOptions": options}, timeout=60)
    assert "result" in reply, reply
    server.notify("initialized", {})
    return server


def shown(server: RawServer, kind: int) -> list[str]:
    return [m["params"]["message"] for m in server.notifications
            if m["method"] == "window/showMessage" and m["params"]["type"] == kind]


def wait_until(server: RawServer, check: Callable[[], bool], seconds: float = 120) -> None:
    """Poll docs/status (which also collects the server's notifications) until `check`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, server.notifications
        server.request("docs/status", timeout=60)
        time.sleep(0.1)


def workspace_uris(server: RawServer) -> list[str]:
    status = server.request("docs/status", timeout=60)["result"]
    return [w["uri"] for w in status["workspaces"]]


# --- 1. a workspace's file cannot choose where data goes or what runs --------------------------


def test_a_cloned_repository_cannot_send_your_text_to_its_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener) -> None:
    user_config(tmp_path, monkeypatch)
    evil_model = tmp_path / "elsewhere" / "model"
    repo = folder(tmp_path / "cloned-repo", {
        "README.md": "# Cloned\n\nA repository someone else wrote.\n",
        CONFIG_FILE_NAME: f'storeUrl = "{listener.url}"\nstoreApiKey = "theirs"\n'
                          f'model = "{evil_model}"\nexclude = ["drafts/**"]\n'})
    notes = folder(tmp_path / "private-notes", {"bank.md": f"# Bank\n\n{PRIVATE}\n"})
    server = start_server([repo, notes])
    try:
        report = server.request("docs/index", {}, timeout=300)["result"]
        assert report["errors"] == [] and report["files"] == 2, report
        status = server.request("docs/status")["result"]
        assert status["store"]["kind"] == "embedded", status
        assert status["model"]["id"] == "sentence-transformers/all-MiniLM-L6-v2@int8"
        hits = server.request("docs/search", {"query": "bank PIN"})["result"]["hits"]
        assert hits and hits[0]["uri"] == (notes / "bank.md").as_uri()  # searchable, locally
        assert listener.connections == []  # nothing went to the repository's server
        warnings = shown(server, WARNING)
        assert any("storeUrl, storeApiKey, model ignored" in w
                   and f'trustedWorkspaces = ["{repo}"]' in w for w in warnings), warnings
    finally:
        assert server.close() == 0


def test_a_trusted_workspace_chooses_its_store_for_itself_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener) -> None:
    repo = folder(tmp_path / "team-repo", {
        "README.md": "# Team\n\nShared docs.\n",
        CONFIG_FILE_NAME: f'storeUrl = "{listener.url}"\n'})
    notes = folder(tmp_path / "private-notes", {"bank.md": f"# Bank\n\n{PRIVATE}\n"})
    user_config(tmp_path, monkeypatch, trustedWorkspaces=[str(repo)])
    server = start_server([repo, notes])
    try:
        assert listener.connected.wait(120), server.notifications  # honoured for the repo
        refused = f"{notes} is not indexed"
        wait_until(server, lambda: any(refused in m for m in shown(server, ERROR)))
        assert notes.as_uri() not in workspace_uris(server)
    finally:
        server.close()


def test_what_a_workspace_file_may_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_config(tmp_path, monkeypatch)
    ws = folder(tmp_path / "ws", {CONFIG_FILE_NAME: "\n".join([
        'storePath = "/tmp/somewhere-shared"', 'device = "cuda"', 'model = "models/mini"',
        f'trustedWorkspaces = ["{tmp_path / "ws"}"]', "allowHomeOrRootFolders = true",
        "chunkTokens = 128", ""])})
    (ws / "models" / "mini").mkdir(parents=True)
    settings, warnings = load_settings(ws)
    # Harmless settings apply; the protected ones do not, nor a grant of trust to itself.
    assert settings.chunkTokens == 128
    assert settings.storePath == str(tmp_path / "store") and settings.device == "cpu"
    assert settings.trustedWorkspaces == () and not settings.allowHomeOrRootFolders
    assert settings.model == str(ws / "models" / "mini")  # inside it: anchored at the folder
    assert settings.boundTo is None
    assert any("storePath, device ignored" in w for w in warnings), warnings
    assert sum("only your own configuration" in w for w in warnings) == 2, warnings

    (ws / CONFIG_FILE_NAME).write_text('model = "../outside"\n')
    settings, warnings = load_settings(ws)
    assert settings.model == "bundled" and "model ignored" in warnings[0]
    (ws / CONFIG_FILE_NAME).write_text('model = "https://example.com/model.onnx"\n')
    assert load_settings(ws)[0].model == "bundled"
    (ws / CONFIG_FILE_NAME).write_text('model = "BAAI/bge-small-en-v1.5"\n')  # a Hub id
    assert load_settings(ws) == (Settings(model="BAAI/bge-small-en-v1.5",
                                          storePath=str(tmp_path / "store")), [])

    # Trusted: honoured, and bound to that folder; the user's own word still wins.
    (ws / CONFIG_FILE_NAME).write_text('storePath = "/tmp/team-store"\n')
    user_config(tmp_path, monkeypatch, trustedWorkspaces=[str(ws)])
    settings, warnings = load_settings(ws)
    assert settings.storePath == "/tmp/team-store" and warnings == []
    assert settings.boundTo == str(ws.resolve())
    check_workspace_folder(ws / "sub", settings)  # inside it: fine
    with pytest.raises(WorkspaceRefusedError, match="another workspace's file"):
        check_workspace_folder(tmp_path / "other", settings)
    settings, _ = load_settings(ws, {"storePath": str(tmp_path / "mine")})
    assert settings.storePath == str(tmp_path / "mine") and settings.boundTo is None


# --- 2. terminal injection -----------------------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J"  # retitle the terminal, clear the screen


def zl(*args: str, env: dict[str, str] | None = None,
       cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZL, *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def test_zl_search_neutralises_escape_sequences(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    user_config(tmp_path, monkeypatch)
    name = f"{ESCAPES}notes\u202e.md"  # and a bidi override that reverses what follows
    ws = folder(tmp_path / "ws", {name: f"# Heading {ESCAPES}here\n\n"
                                        f"The aardvark {ESCAPES} digs at dawn.\n"})
    assert zl("index", str(ws)).returncode == 0
    human = zl("search", "aardvark", "--workspace", str(ws))
    assert human.returncode == 0, human.stderr
    for control in ("\x1b", "\x07", "\u202e"):
        assert control not in human.stdout and control not in human.stderr
    lines = human.stdout.splitlines()
    # " 1  <path relative to here>:line:col  Heading …": the name's controls shown escaped
    assert r"/\x1b]0;pwned\x07\x1b[2Jnotes\u202e.md:3:1  Heading \x1b]0;pwned" in lines[0], lines
    assert r"aardvark \x1b]0;pwned\x07\x1b[2J digs" in lines[1], lines
    exact = json.loads(zl("search", "aardvark", "--workspace", str(ws), "--json").stdout)
    assert exact["hits"][0]["path"] == name  # --json stays exact (JSON escapes it)
    assert ESCAPES in exact["hits"][0]["snippet"]


# --- 3. a filesystem root or a home folder is not a workspace -----------------------------------


def test_zl_index_refuses_root_and_home(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = user_config(tmp_path, monkeypatch)
    home = folder(tmp_path / "home", {"diary.md": f"# Diary\n\n{PRIVATE}\n",
                                      CONFIG_FILE_NAME: "allowHomeOrRootFolders = true\n"})
    monkeypatch.setenv("HOME", str(home))
    root = zl("index", "/")
    assert root.returncode == 2 and root.stdout == "", root.stderr
    assert "/ is a filesystem root: not indexed" in root.stderr
    assert f"allowHomeOrRootFolders = true in {config}" in root.stderr
    if Path("/root").is_dir():  # root's home, whoever runs this
        root_home = zl("index", "/root")
        assert root_home.returncode == 2 and "/root is a home folder" in root_home.stderr
    refused = zl("index", str(home), "--json")
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"{home} is a home folder: not indexed" in refused.stderr
    assert "'allowHomeOrRootFolders' ignored" in refused.stderr  # the folder's own file
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())

    user_config(tmp_path, monkeypatch, allowHomeOrRootFolders=True)  # the user means it
    allowed = zl("index", str(home), "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["indexedFiles"] == 1


def test_the_server_refuses_root_and_home_folders(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    user_config(tmp_path, monkeypatch)
    home = folder(tmp_path / "home", {"diary.md": f"# Diary\n\n{PRIVATE}\n"})
    monkeypatch.setenv("HOME", str(home))
    server = start_server([home])
    try:
        wait_until(server, lambda: any(f"{home} is a home folder" in m
                                       for m in shown(server, ERROR)))
        assert workspace_uris(server) == []
        project = folder(tmp_path / "project", {"a.md": "# A\n\nThe aardvark digs.\n"})
        server.notify("workspace/didChangeWorkspaceFolders", {"event": {"removed": [], "added": [
            {"uri": "file:///", "name": "root"}, {"uri": project.as_uri(), "name": "p"}]}})
        wait_until(server, lambda: any("/ is a filesystem root" in m
                                       for m in shown(server, ERROR)))
        wait_until(server, lambda: workspace_uris(server) == [project.as_uri()])
        # The added folder is indexed in the background: wait for that run, not a guess.
        assert "result" in server.request("docs/index", {"uris": [project.as_uri()]}, timeout=300)
        hits = server.request("docs/search", {"query": "aardvark"}, timeout=120)
        assert [h["uri"] for h in hits["result"]["hits"]] == [(project / "a.md").as_uri()]
    finally:
        assert server.close() == 0


# --- 6. odd input gets InvalidParams, and errors do not echo it -------------------------------


@pytest.fixture(scope="module")
def odd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawServer, Path]]:
    root = tmp_path_factory.mktemp("odd")
    ws = folder(root / "ws", {f"n{i}.md": f"# Note {i}\n\nThe aardvark {i} digs at dawn.\n"
                              for i in range(8)})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZL_CONFIG", str(root / "no-config.toml"))
        server = start_server([ws], model="bundled", storePath=str(root / "store"))
    server.request("docs/index", {}, timeout=300)
    yield server, ws
    server.close()
    shutil.rmtree(root, ignore_errors=True)


def raw_request(server: RawServer, msg_id: int, method: str, params: str) -> dict[str, Any]:
    """A request written by hand (1e2 and 5.0 stay as written; json.dumps would not)."""
    body = f'{{"jsonrpc":"2.0","id":{msg_id},"method":"{method}","params":{params}}}'.encode()
    server.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return server.response(msg_id, timeout=120)


@pytest.mark.parametrize(("limit", "count"), [("5.0", 5), ("1e2", 8), ("2E0", 2)])
def test_integral_float_limits_are_integers(odd_server: tuple[RawServer, Path], limit: str,
                                            count: int) -> None:
    """JSON Schema (protocol/schema.json) counts 5.0 and 1e2 as integers: so does the server."""
    server, _ = odd_server
    reply = raw_request(server, 9000 + count, "docs/search",
                        f'{{"query":"aardvark","mode":"keyword","limit":{limit}}}')
    assert len(reply["result"]["hits"]) == count, reply
    refused = raw_request(server, 9100 + count, "docs/search", '{"query":"a","limit":2.5}')
    assert refused["error"]["code"] == -32602, refused  # not an integer: said so
    assert "limit: 2.5 is not of type 'integer'" in refused["error"]["message"]


@pytest.mark.parametrize(("method", "params", "expected"), [
    ("docs/search", {"query": "aard\ud800vark"}, "query: contains a lone UTF-16 surrogate"),
    ("docs/search", {"query": "a", "include": ["\udfff/**"]}, "include.0: contains a lone"),
    ("workspace/symbol", {"query": "aard\ud800vark"}, "query: contains a lone UTF-16"),
    ("docs/index", {"uris": ["WS/n1%00.md"]}, "uris.0: contains a NUL character"),
    ("docs/index", {"uris": ["WS/" + "x" * 4000 + ".md"]},
     "uris.0: has a file or folder name longer than 255 bytes"),
    ("docs/index", {"uris": ["WS/" + "%C3%A9" * 200 + ".md"]}, "longer than 255 bytes"),
])
def test_odd_params_get_invalid_params(odd_server: tuple[RawServer, Path], method: str,
                                       params: dict[str, Any], expected: str) -> None:
    server, ws = odd_server
    if "uris" in params:
        params = {"uris": [u.replace("WS", ws.as_uri()) for u in params["uris"]]}
    reply = server.request(method, params, timeout=120)
    error = reply.get("error")
    assert error is not None and error["code"] == -32602, reply
    assert expected in error["message"] and "data" not in error, error  # no traceback
    ok = server.request("docs/search", {"query": "aardvark"}, timeout=120)
    assert ok["result"]["hits"]  # and the server serves on


def test_errors_quote_a_huge_query_briefly(odd_server: tuple[RawServer, Path]) -> None:
    server, _ = odd_server
    reply = server.request("docs/search", {"query": "y" * 50_000_000}, timeout=300)
    error = reply["error"]
    assert error["code"] == -32602 and "query" in error["message"], str(error)[:500]
    assert len(error["message"]) < 300 and "50,000,000 characters" in error["message"]
