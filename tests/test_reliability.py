"""Faults, hostile input and security: real processes, real stores, real files."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from zero_latency import files, indexer, models
from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.errors import ModelUnavailableError, StoreCorruptError, StoreError
from zero_latency.files import SkipFile, read_document

from .conftest import need_corpus
from .rpc import RawServer, started


def wait_for_state(server: RawServer, state: str, seconds: float = 120) -> dict[str, Any]:
    """docs/status once its state is `state` (or the last one seen, after `seconds`)."""
    deadline = time.monotonic() + seconds
    status: dict[str, Any] = server.request("docs/status")["result"]
    while status["state"] != state and time.monotonic() < deadline:
        time.sleep(0.1)
        status = server.request("docs/status")["result"]
    return status


def index_until_files_done(command: list[str], files: int,
                           timeout: float = 600) -> subprocess.Popen[bytes]:
    """Starts `zl index` on a pseudo-terminal (so it draws its progress bar) and returns once
    the bar shows at least `files` files done. The indexer reports each file after the groups
    before it were written (indexer.sync), so that many files' chunks are in the store."""
    controller, terminal = pty.openpty()
    termios.tcsetwinsize(terminal, (24, 120))  # a 0-column terminal gets an empty bar
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=terminal)
    os.close(terminal)
    shown = ""
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                # EIO: the indexer closed the terminal (it exited; see below)
                with contextlib.suppress(OSError):
                    shown += os.read(controller, 65536).decode(errors="replace")
            counts = re.findall(r"(\d+)/(\d+) \[", shown)  # tqdm: " 20/60 [00:07<..."
            if counts and int(counts[-1][0]) >= files:
                return proc
            if proc.poll() is not None:
                return proc  # the caller's check reports it
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"no progress to {files} files in {timeout:.0f} s: "
                                     f"{shown[-500:]!r}")
    finally:
        os.close(controller)


def test_kill_9_during_indexing_then_the_next_run_completes(tmp_path: Path) -> None:
    src = need_corpus("rust-book")
    ws = tmp_path / "ws"
    ws.mkdir()
    for path in sorted(src.glob("ch*.md"))[:60]:  # ~1,000 chunks: about 20 s of embedding
        shutil.copy(path, ws / path.name)
    store = tmp_path / "store"
    # Killed once its progress shows 20 of the 60 files done, however long that takes on this
    # machine: every group of those files (32+ chunks each, ~300 chunks) has been written.
    proc = index_until_files_done([sys.executable, "-m", "zero_latency", "index", str(ws),
                                   "--model", "bundled", "--store-path", str(store),
                                    "--no-daemon"], 20)
    assert proc.poll() is None, "indexing finished before the kill: make the corpus bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        index = engine.open_workspace(ws)
        partial = index.chunk_count()
        assert partial > 0, "some work was durable before the kill (WAL)"
        report = engine.index([ws])
        assert report.errors == []
        assert report.unchangedFiles > 0, "files completed before the kill are not redone"
        # no duplicates, no orphans: every point belongs to a file's current chunk set
        assert index.store.count() == index.chunk_count()
        assert all(state.consistent for state in index.files.values())
        assert engine.index([ws]).embeddedChunks == 0
    finally:
        engine.close()


def test_two_servers_on_one_workspace(tmp_path: Path, workspace: Path) -> None:
    """Two editor windows share the daemon's store; a `--no-daemon` server cannot open the
    store the daemon writes (Qdrant Edge allows one writer) and says so, clearly."""
    store = tmp_path / "store"
    first = started(workspace, store)
    second = started(workspace, store)
    loner = None
    try:
        for server in (first, second):
            assert server.request("docs/index", {}, timeout=600)["result"]["files"] == 5
            hits = server.request("docs/search", {"query": "ownership"})["result"]["hits"]
            assert hits
        loner = started(workspace, store, command=[sys.executable, "-m", "zero_latency",
                                                   "serve", "--no-daemon"])
        reply = loner.request("docs/index", {}, timeout=120)
        assert "locked by another Zero-Latency process" in reply["error"]["message"], reply
    finally:
        assert first.close() == 0
        assert second.close() == 0
        if loner is not None:
            assert loner.close() == 0


def test_corrupt_store_is_reported_and_rebuilt_on_request(tmp_path: Path,
                                                          workspace: Path) -> None:
    store = tmp_path / "store"
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    engine.open_workspace(workspace)
    engine.index([workspace])
    meta = engine.store_path(workspace) / "zl-store.json"
    engine.close()
    meta.write_text("{ not json")
    with pytest.raises(StoreCorruptError, match="corrupt"):
        Engine(Settings(model="bundled", storePath=str(store))).open_workspace(workspace)

    server = started(workspace, store)
    try:
        status = wait_for_state(server, "error")
        assert status["state"] == "error" and "corrupt" in status["lastError"]
        report = server.request("docs/index", {"force": True}, timeout=120)["result"]
        assert report["indexedFiles"] == 5
        hits = server.request("docs/search", {"query": "threads"})["result"]["hits"]
        assert hits
    finally:
        server.close()


def test_bundled_model_failing_its_checksum_is_refused(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = tmp_path / "tokenizer.json"
    data = bytearray(models.BUNDLED_TOKENIZER.read_bytes())
    data[100] ^= 0x20  # one flipped bit
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(models, "BUNDLED_TOKENIZER", damaged)
    with pytest.raises(ModelUnavailableError, match="failed its checksum"):
        models.resolve_bundled()


def test_vanished_file_and_stdin_close(tmp_path: Path, workspace: Path) -> None:
    with pytest.raises(SkipFile, match="vanished"):
        read_document(tmp_path / "gone.md", 1000)
    server = started(workspace, tmp_path / "store")
    server.request("docs/index", {}, timeout=120)
    assert server.proc.stdin is not None
    began = time.monotonic()
    server.proc.stdin.close()  # the editor died
    assert server.proc.wait(timeout=10) == 0
    assert time.monotonic() - began < 2.0
    assert server.stdout_garbage == []


# --- hostile files ---------------------------------------------------------------------------


def test_hostile_files(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "crlf.md").write_bytes(
        b"# Title\r\n\r\nfirst\r\n\r\n## Second\r\n\r\nthe wombat line\r\n")
    (ws / "nested.md").write_text("".join(f"{'>' * 50} level {i}\n" for i in range(200)) +
                                  "\n" + "- " * 500 + "deep list\n")
    (ws / "odd name ü 🚀 [x].md").write_text("# Odd\n\nThe quokka of odd names.\n")
    (ws / "one-line.txt").write_bytes(b"x" * (3 * 1024 * 1024))  # over maxFileBytes
    (ws / "loop").symlink_to(ws)  # a symlink loop
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Outside\n\nThe pangolin must not be indexed.\n")
    (ws / "escape").symlink_to(outside)
    (ws / ".env").write_text("API_KEY=hunter2 pangolin\n")
    (ws / "server.pem").write_text("-----BEGIN PRIVATE KEY----- pangolin\n")
    (ws / "id_rsa").write_text("pangolin\n")
    (ws / ".gitignore").write_text("ignored/\n")
    (ws / "ignored").mkdir()
    (ws / "ignored" / "note.md").write_text("# Ignored\n\nThe pangolin hides here.\n")
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store"),
                             maxFileBytes=2_000_000))
    try:
        engine.open_workspace(ws)
        report = engine.index([ws])
        assert {e["uri"].rsplit("/", 1)[-1] for e in report.errors} == {"one-line.txt"}
        assert "pangolin" not in json.dumps(engine.search("pangolin", mode="keyword"))
        crlf = engine.search("wombat line", mode="keyword")["hits"][0]
        assert crlf["range"]["start"]["line"] <= 6 < crlf["range"]["end"]["line"]
        odd = engine.search("quokka odd names", mode="keyword")["hits"][0]
        assert odd["uri"].endswith("odd%20name%20%C3%BC%20%F0%9F%9A%80%20%5Bx%5D.md")
        assert engine.search("deep list", mode="keyword")["hits"]
        store = Path(engine.indexes[ws.resolve()].store.location)
        assert stat.S_IMODE(store.stat().st_mode) == 0o700
        assert stat.S_IMODE(store.parent.parent.stat().st_mode) == 0o700
    finally:
        engine.close()


def test_unreadable_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    locked = ws / "locked.md"
    locked.write_text("# Locked\n")
    (ws / "open.md").write_text("# Open\n\nThe numbat is readable.\n")
    locked.chmod(0)
    if os.geteuid() == 0:
        # Root reads files whatever their mode (CI runs as root), so the fault the OS would
        # raise for anyone else is simulated, for that one file only.
        real_open_regular = files.open_regular

        def open_regular(path: Path) -> BinaryIO:
            if path.name == "locked.md":
                raise PermissionError(13, "Permission denied", str(path))
            return real_open_regular(path)

        monkeypatch.setattr(files, "open_regular", open_regular)
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        engine.open_workspace(ws)
        report = engine.index([ws])
        assert [e["message"] for e in report.errors] == ["permission denied: not indexed"]
        assert report.indexedFiles == 1
        assert engine.search("numbat", mode="keyword")["hits"]
    finally:
        engine.close()


class _FullDisk:
    """Stands in front of a real shard and fails its writes as a full disk does: filling this
    machine's disk is no way to test, so this one fault is simulated."""

    def __init__(self, shard: Any, writes_allowed: int) -> None:
        self.shard = shard
        self.writes_allowed = writes_allowed

    def update(self, operation: Any) -> None:
        if self.writes_allowed <= 0:
            raise Exception("Service internal error: No space left on device (os error 28)")
        self.writes_allowed -= 1
        self.shard.update(operation)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shard, name)


def test_disk_full_mid_index_is_a_store_error_and_nothing_is_lost(
        tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A keyword-pass group (the most a failed write loses) is one file here: its five files
    # take five writes, and the disk fills after four.
    monkeypatch.setattr(indexer, "KEYWORD_GROUP", 8)
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        index = engine.open_workspace(workspace)
        store: Any = index.store
        real_shard = store._shard
        store._shard = _FullDisk(real_shard, writes_allowed=4)
        with pytest.raises(StoreError, match=r"No space left on device.*Free disk space"):
            engine.index([workspace])
        written = set(index.files)
        assert 0 < len(written) < 5, "some files were written before the disk filled"
        store._shard = real_shard  # space freed
        report = engine.index([workspace])
        assert report.errors == [] and report.unchangedFiles == len(written)
        assert index.store.count() == index.chunk_count()
        assert all(state.consistent for state in index.files.values())
        assert engine.search("threads", mode="hybrid")["hits"]
    finally:
        engine.close()


def test_a_store_folder_that_cannot_be_made_is_reported_and_the_server_serves(
        tmp_path: Path, workspace: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    server = started(workspace, blocker / "store")
    try:
        status = wait_for_state(server, "error")
        assert status["state"] == "error", status
        assert "cannot create the store folder" in status["lastError"], status
        assert "storePath" in status["lastError"]
        # The search says why nothing can be searched (issue 20), not "no good match".
        reply = server.request("docs/search", {"query": "ownership"})
        assert reply["error"]["code"] == -32803, reply
        assert reply["error"]["data"]["kind"] == "storeUnavailable", reply
        assert "cannot create the store folder" in reply["error"]["message"], reply
    finally:
        assert server.close() == 0


def test_indexing_and_searching_open_no_network_connection(
        tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network use refused by this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        engine.open_workspace(workspace)
        assert engine.index([workspace]).indexedFiles == 5
        for mode in ("hybrid", "semantic", "keyword"):
            assert engine.search("borrowing rules", mode=mode)["hits"]  # type: ignore[arg-type]
    finally:
        engine.close()
    assert attempts == []


# --- protocol fuzzing ------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=5),
    max_leaves=20,
)
METHODS = st.sampled_from(["docs/search", "docs/index", "docs/status", "docs/files",
                           "workspace/symbol",
                           "docs/bogus", "initialize", "textDocument/didChange", "$/bogus",
                           "shutdownish"])


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "a.md").write_text("# Alpha\n\nThe aardvark digs at dawn.\n")
    server = started(root, root.parent / "fuzz-store")
    server.request("docs/index", {}, timeout=120)
    yield server
    server.close()


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=METHODS, params=JSON, notify=st.booleans())
def test_fuzzed_requests_get_errors_and_the_server_lives(fuzz_server: RawServer, method: str,
                                                         params: Any, notify: bool) -> None:
    if notify:
        fuzz_server.send({"jsonrpc": "2.0", "method": method, "params": params})
    else:
        reply = fuzz_server.request(method, params, timeout=30)
        # -32002 is ServerNotInitialized only (this server is initialized); application
        # failures are RequestFailed with data.kind (protocol/spec.md, revision 1.1).
        assert "result" in reply or reply["error"]["code"] in {
            -32600, -32601, -32602, -32603, -32803}, reply
        if reply.get("error", {}).get("code") == -32803:
            assert reply["error"]["data"]["kind"], reply
    ok = fuzz_server.request("docs/search", {"query": "aardvark"}, timeout=30)
    assert ok["result"]["hits"], ok
    assert fuzz_server.stdout_garbage == []


@pytest.mark.parametrize("frame", [
    b"Content-Length: 5\r\n\r\n{bad}",
    b"Content-Length: 2\r\n\r\n[]",
    b"Content-Length: 30\r\n\r\n" + json.dumps({"jsonrpc": "2.0", "id": 9}).encode().ljust(30),
    b"Content-Length: 44\r\n\r\n" + json.dumps(
        {"jsonrpc": "2.0", "id": 7, "method": 5}).encode().ljust(44),
])
def test_malformed_frames(fuzz_server: RawServer, frame: bytes) -> None:
    fuzz_server.send_bytes(frame)
    ok = fuzz_server.request("docs/search", {"query": "aardvark"}, timeout=30)
    assert ok["result"]["hits"]


def test_oversized_and_outside_params_are_rejected(fuzz_server: RawServer) -> None:
    for params, field in (({"query": "x" * 5000}, "query"), ({"query": "   "}, "query"),
                          ({"query": "a", "include": ["../**"]}, "include"),
                          ({"query": "a", "exclude": ["/etc/**"]}, "exclude"),
                          ({"query": "a", "include": ["*"] * 500}, "include")):
        reply = fuzz_server.request("docs/search", params)
        assert reply["error"]["code"] == -32602 and field in reply["error"]["message"], reply
    reply = fuzz_server.request("docs/index", {"uris": ["file:///etc/passwd"]})
    assert reply["error"]["code"] == -32602


TELEMETRY_PROBE = """
import dataclasses, sys
from pathlib import Path
from zero_latency.embedder import OnnxEmbedder
from zero_latency.errors import ModelUnavailableError
from zero_latency.models import resolve_bundled
OnnxEmbedder(resolve_bundled()).embed(["a private sentence"])
bad = Path(sys.argv[1]) / "bad.onnx"
bad.write_bytes(b"not a model")
try:
    OnnxEmbedder(dataclasses.replace(resolve_bundled(), onnx_path=bad))
except ModelUnavailableError:
    pass
"""


def test_onnx_runtime_telemetry_is_off(tmp_path: Path) -> None:
    """ONNX Runtime 1.32 on Linux records telemetry events (device id, Python path, error
    messages) under ~/.cache/Microsoft to upload them; the embedder switches that off."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORT_", "XDG_"))}
    subprocess.run([sys.executable, "-c", TELEMETRY_PROBE, str(tmp_path)], check=True,
                   env={**env, "HOME": str(home)}, timeout=120)
    assert not (home / ".cache" / "Microsoft").exists(), sorted(home.rglob("*"))
