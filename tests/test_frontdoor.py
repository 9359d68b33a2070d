"""The daemon's front door (frontdoor.py): a connection's `zl/hello` and `initialize` answered
before the language server has loaded, exactly as the server answers them.

In process: the front door's bytes equal what the real pygls server writes for the same
messages, over many client capabilities and settings, and the server's replay of what the
front door answered (muted) sets the session up alike. Through a real daemon: `initialize` is
answered while the daemon cannot import lsprotocol yet (held by an import hook in its own
`sitecustomize`), and what came after it is served once the import goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zero_latency.framing import FrameParser
from zero_latency.frontdoor import FrontDoor, prepare_session
from zero_latency.hub import EngineHub
from zero_latency.lsp import create_server
from zero_latency.lsp.serve import _replay, _StreamWriter, dispatch

from .conftest import SERVER_COMMAND
from .rpc import RawServer, init_params


def framed(*messages: dict[str, Any]) -> bytes:
    out = b""
    for message in messages:
        body = json.dumps(message).encode()
        out += b"Content-Length: %d\r\n\r\n" % len(body) + body
    return out


def hello_and_initialize(params: Any) -> bytes:
    return framed({"jsonrpc": "2.0", "id": "zl-hello", "method": "zl/hello",
                   "params": {"version": "0.1.0", "home": "/home/someone"}},
                  {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace whose own settings ask for what it may not choose (a warning), and a
    user configuration of this test's own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ZL_CONFIG", raising=False)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".zero-latency.toml").write_text('storeUrl = "http://elsewhere:6333"\n'
                                                  "debounceMs = 250\n")
    return workspace


def client_capabilities() -> list[dict[str, Any]]:
    vscode_like = {
        "workspace": {"applyEdit": True, "workspaceFolders": True, "configuration": True,
                      "didChangeWatchedFiles": {"dynamicRegistration": True,
                                                "relativePatternSupport": True},
                      "fileOperations": {"dynamicRegistration": True, "didCreate": True,
                                         "didRename": True, "didDelete": True,
                                         "willCreate": True, "willRename": True,
                                         "willDelete": True},
                      "symbol": {"dynamicRegistration": True}},
        "textDocument": {"synchronization": {"dynamicRegistration": True, "willSave": True,
                                             "willSaveWaitUntil": True, "didSave": True},
                         "hover": {"contentFormat": ["markdown", "plaintext"]}},
        "window": {"workDoneProgress": True, "showMessage": {}},
        "general": {"positionEncodings": ["utf-16"], "markdown": {"parser": "marked"}},
        "notebookDocument": {"synchronization": {"dynamicRegistration": True}},
        "experimental": {"anything": [1, 2]}}
    return [
        {}, {"window": {"workDoneProgress": True}}, vscode_like,
        {"general": {"positionEncodings": ["utf-8"]}},
        {"general": {"positionEncodings": ["utf-7", "utf-32", "utf-8"]}},
        {"general": {"positionEncodings": ["utf-7"]}}, {"general": {"positionEncodings": []}},
        {"general": None, "textDocument": None, "workspace": None},
        {"textDocument": {"synchronization": {"willSave": False}}},
        {"workspace": {"fileOperations": {"didCreate": False, "didDelete": True}}},
        {"workspace": {"fileOperations": {"willRename": True}}},
    ]


def initialize_params(folder: Path) -> list[dict[str, Any]]:
    uri = folder.as_uri()
    plain: list[dict[str, Any]] = [
        {"processId": 4242, "rootUri": uri, "capabilities": caps,
         "workspaceFolders": [{"uri": uri, "name": "ws"}],
         "initializationOptions": {"model": "bundled"}} for caps in client_capabilities()]
    return [*plain,
            {"processId": None, "rootUri": None, "capabilities": {}},
            {"processId": None, "rootPath": str(folder), "rootUri": uri, "capabilities": {},
             "clientInfo": {"name": "Neovim", "version": "0.11"}, "locale": "de",
             "trace": "off", "initializationOptions": {
                 "indexOnStart": False, "findIndexedRoot": True,
                 "workspaceSettings": {"storePath": "/tmp/elsewhere", "limit": 7}}},
            {"processId": 1, "rootUri": "file://localhost" + str(folder) + "/./",
             "capabilities": {}, "workDoneToken": "t",
             "workspaceFolders": [{"uri": uri, "name": "a"}, {"uri": "untitled:x", "name": "b"}]}]


async def pygls_writes(data: bytes) -> tuple[list[bytes], Any]:
    """What the real server writes for `data`, and its session."""
    out: list[bytes] = []
    ls = create_server(EngineHub())
    ls.protocol.set_writer(_StreamWriter(out.append, lambda: None))
    for item in FrameParser().feed(data):
        dispatch(ls, item)
    return out, ls


async def replayed(door: FrontDoor) -> tuple[list[bytes], Any]:
    """What the server would have written in the front door's place (muted), and its session."""
    out: list[bytes] = []
    ls = create_server(EngineHub())
    writer = _StreamWriter(out.append, lambda: None)
    ls.protocol.set_writer(writer)
    assert _replay(ls, door, writer)
    return writer.held, ls


def session_state(ls: Any) -> tuple[Any, ...]:
    return (ls.initialize_seen, ls.settings, ls.folders, ls.index_on_start,
            ls.find_indexed_root, ls.client_home, ls.client_capabilities)


def test_the_front_door_answers_as_the_server_does(folder: Path) -> None:
    cases = initialize_params(folder)
    for params in cases:
        data = hello_and_initialize(params)
        door_out: list[bytes] = []
        door = FrontDoor(door_out.append)
        door.feed(data)
        assert door.answered == {0, 1}, params
        server_out, direct = asyncio.run(pygls_writes(data))
        # Byte for byte: hello's answer, the settings warnings, initialize's answer.
        assert door_out == server_out, params
        muted, replay = asyncio.run(replayed(door))
        assert muted == server_out, params  # the replay said what the front door had said
        assert session_state(replay) == session_state(direct), params
    warned = [cases[0]]
    assert any(b"window/showMessage" in chunk and b"storeUrl" in chunk
               for params in warned for chunk in asyncio.run(
                   pygls_writes(hello_and_initialize(params)))[0])


@pytest.mark.parametrize("params", [
    None, {"processId": None}, {"processId": "12", "capabilities": {}},
    {"processId": None, "capabilities": {"general": {"positionEncodings": "utf-8"}}},
    {"processId": None, "capabilities": {"textDocument": {"synchronization": 5}}},
    {"processId": None, "capabilities": {}, "initializationOptions": {"maxFileBytes": "big"}},
    {"processId": None, "capabilities": {}, "initializationOptions": {"indexOnStart": 1}},
    {"processId": None, "capabilities": {}, "initializationOptions": "none"},
    {"processId": None, "capabilities": {}, "rootUri": 5},
    {"processId": None, "capabilities": {}, "trace": "loud"},
    {"processId": None, "capabilities": {}, "somethingNew": True},
    {"processId": None, "capabilities": {}, "workspaceFolders": [{"uri": "file:///x"}]},
])
def test_what_the_front_door_cannot_foresee_is_left_to_the_server(
        folder: Path, params: Any) -> None:
    data = hello_and_initialize(params)
    door_out: list[bytes] = []
    door = FrontDoor(door_out.append)
    door.feed(data)
    assert door.answered == {0} and len(door_out) == 1 and door.setup is None
    # ...which answers it (an error, or a result) when it replays it, nothing muted.
    out: list[bytes] = []

    async def replay() -> None:
        ls = create_server(EngineHub())
        writer = _StreamWriter(out.append, lambda: None)
        ls.protocol.set_writer(writer)
        assert _replay(ls, door, writer)

    asyncio.run(replay())
    assert len(out) >= 1 and b'"id": 1' in out[-1]


def test_empty_initialization_options_are_no_options(folder: Path) -> None:
    """Neovim sends a Lua empty table as `[]`: no options, as before the front door (the
    plugin's end-to-end test could not start its server)."""
    empty = prepare_session([folder.as_uri()], None, [], None)
    assert empty == prepare_session([folder.as_uri()], None, {}, None)
    assert empty == prepare_session([folder.as_uri()], None, None, None)


@pytest.mark.parametrize(("params", "early"), [
    ({"version": "0.1.0"}, True), ({"version": "9.9", "home": "/home/x"}, True),
    ({"version": "x" * 64, "home": "/"}, True),
    (None, False), ([], False), ({}, False), ({"version": ""}, False),
    ({"version": "x" * 65}, False), ({"version": "1", "home": "relative"}, False),
    ({"version": "1", "home": ""}, False), ({"version": "1", "extra": True}, False),
    ({"version": "\ud800"}, False), ({"version": 1}, False),
])
def test_hello_is_answered_as_the_server_does(params: Any, early: bool) -> None:
    data = framed({"jsonrpc": "2.0", "id": "zl-hello", "method": "zl/hello", "params": params})
    door_out: list[bytes] = []
    door = FrontDoor(door_out.append)
    door.feed(data)
    server_out, direct = asyncio.run(pygls_writes(data))
    if early:
        assert door.answered == {0} and door_out == server_out
    else:  # left to the server: its answer (mostly an error) comes with the replay
        assert door.answered == set() and door_out == []
    out: list[bytes] = []

    async def replay() -> Any:
        ls = create_server(EngineHub())
        writer = _StreamWriter(out.append, lambda: None)
        ls.protocol.set_writer(writer)
        assert _replay(ls, door, writer)
        return ls

    replayed_ls = asyncio.run(replay())
    assert out == ([] if early else server_out)  # the front door's answer muted, or the server's
    assert replayed_ls.client_home == direct.client_home


def test_only_hello_then_initialize_are_answered_early(folder: Path) -> None:
    """A request before initialize waits for the server (which refuses it), and so does
    everything after it, initialize included: the order of answers stays the server's."""
    uri = folder.as_uri()
    data = framed({"jsonrpc": "2.0", "id": 7, "method": "docs/search", "params": {"query": "x"}},
                  {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                      "processId": None, "rootUri": uri, "capabilities": {}}})
    door_out: list[bytes] = []
    door = FrontDoor(door_out.append)
    door.feed(data[:30])  # a frame split across reads
    door.feed(data[30:])
    assert door.answered == set() and door_out == [] and len(door.items) == 2


# --- through a real daemon -------------------------------------------------------------------

HOLD = '''
import importlib.machinery, os, sys, time

class _Held:
    """lsprotocol's loader, which waits for {release} before running the module."""

    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module):
        deadline = time.monotonic() + 300
        while not os.path.exists({release!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.real.exec_module(module)

class _Hold:
    """Holds every import of lsprotocol until {release} exists. It waits while the module
    runs (under lsprotocol's own import lock, as a slow real import does), not in find_spec:
    CPython calls finders under its global import lock, so waiting there stalled every other
    thread's first import of anything, the front door's included, and initialize went
    unanswered whenever the daemon's preload reached lsprotocol first."""

    def find_spec(self, name, path=None, target=None):
        if name != "lsprotocol":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Held(spec.loader)
        return spec

sys.meta_path.insert(0, _Hold())
'''


def test_initialize_is_answered_while_the_server_is_still_loading(
        tmp_path: Path, workspace: Path) -> None:
    """No daemon runs; `zl serve` starts one, whose import of lsprotocol (pygls's types) is
    held. The editor still gets its initialize answer, with the workspace settings' warning
    before it; what it sends next is answered once the import goes on."""
    hook = tmp_path / "hook"
    hook.mkdir()
    release = tmp_path / "release"
    (hook / "sitecustomize.py").write_text(HOLD.replace("{release!r}", repr(str(release))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])}
    server = RawServer(SERVER_COMMAND, env=env)
    try:
        params = init_params(workspace, tmp_path / "store")
        params["initializationOptions"]["workspaceSettings"] = {"storeUrl": "http://x:6333"}
        reply = server.request("initialize", params, timeout=120)
        assert not release.exists()
        assert reply["result"]["serverInfo"]["name"] == "zero-latency"
        assert reply["result"]["capabilities"]["experimental"] == {"docs": {"version": 1}}
        shown = [n for n in server.notifications if n["method"] == "window/showMessage"]
        assert len(shown) == 1 and "storeUrl" in shown[0]["params"]["message"], shown
        server.notify("initialized", {})
        server.send({"jsonrpc": "2.0", "id": "search", "method": "docs/search",
                     "params": {"query": "ownership and borrowing", "limit": 3}})
        release.write_text("go")
        assert "hits" in server.response("search", timeout=300)["result"]
        assert server.request("docs/index", {}, timeout=300)["result"]["files"] == 5
        found = server.request("docs/search", {"query": "ownership and borrowing"}, timeout=60)
        assert found["result"]["hits"], found
        # The server replayed the front door's messages without answering them again.
        assert not [n for n in server.notifications if n["method"] == "window/showMessage"
                    and n not in shown], server.notifications
        assert server.errors() == [] and server.stdout_garbage == []
        assert server.answered.count(reply["id"]) == 1
    finally:
        release.write_text("go")
        code = server.close()
    assert code == 0


def test_the_bridge_imports_neither_pygls_nor_the_engine() -> None:
    """`zl serve`'s own process stays small: what it imports to reach the daemon."""
    probe = ("import json, sys, zero_latency.cli, zero_latency.bridge; "
             "print(json.dumps([m for m in ('lsprotocol', 'pygls.protocol', 'numpy', "
             "'zero_latency.engine', 'asyncio') if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout) == []


def test_an_engine_warmed_ahead_tells_its_first_session_what_it_said(tmp_path: Path) -> None:
    """The daemon loads a session's model while its server loads (hub.warm): a warning the
    model gave meanwhile reaches that session when it acquires the engine, once."""
    from zero_latency.config import Settings

    hub = EngineHub()
    try:
        settings = Settings(model=str(tmp_path / "no-such-model"),
                            storePath=str(tmp_path / "store"))
        hub.warm(settings)
        first: list[str] = []
        second: list[str] = []
        engine = hub.acquire(settings, "first", first.append)
        assert engine.load_model() is None and engine.model_error is not None
        assert len(first) == 1 and "semantic search is off" in first[0], first
        assert hub.acquire(settings, "second", second.append) is engine and second == []
    finally:
        hub.close()
