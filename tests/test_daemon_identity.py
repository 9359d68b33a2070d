"""Whom a daemon serves, and what happens at its edges (issue 20): one daemon per install and
environment, a version handshake, a socket that heals, a session that ends with its
connection, framing that resynchronises. Real processes and sockets; each test has its own
runtime folder (conftest's `daemon_dir`), and every wait is on a condition."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from zero_latency import __version__, daemon

from .rpc import started
from .test_daemon import GOOD, ZL, corpus_workspace, status_of, wait_for, zl

# --- one daemon per install and environment ---------------------------------------------------


def _env(tmp_path: Path, name: str, config: str, **extra: str) -> dict[str, str]:
    (tmp_path / f"{name}.toml").write_text(config)
    return {**os.environ, "ZL_CONFIG": str(tmp_path / f"{name}.toml"),
            "XDG_DATA_HOME": str(tmp_path / f"{name}-data"),
            "XDG_CACHE_HOME": str(tmp_path / f"{name}-cache"), **extra}


def _hits(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return sorted(Path(hit["uri"]).name for hit in json.loads(done.stdout)["hits"])


def test_a_client_of_another_environment_gets_a_daemon_of_its_own(tmp_path: Path,
                                                                  daemon_dir: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "keep.md").write_text("# Keep\n\nThe aardvark digs its burrow at dawn.\n")
    (ws / "skip-me.md").write_text("# Skip\n\nThe aardvark sleeps in its burrow all day.\n")
    env_a = _env(tmp_path, "a", 'model = "bundled"\n')
    env_b = _env(tmp_path, "b", 'model = "bundled"\nexclude = ["skip*"]\n', HF_HUB_OFFLINE="1")
    assert zl("index", str(ws), env=env_a).returncode == 0  # A's daemon, A's store
    assert zl("index", str(ws), env=env_b).returncode == 0  # B: its own
    query = ("search", "aardvark burrow", "--json", "--workspace", str(ws))
    b_hits = _hits(zl(*query, env=env_b))
    assert b_hits == ["keep.md"]  # B's exclude holds: A's daemon would give both files
    assert _hits(zl(*query, env=env_a)) == ["keep.md", "skip-me.md"]
    assert list((tmp_path / "b-data").rglob("*")), "B's store is under B's data dir"
    assert len(daemon.running(daemon_dir)) == 2
    listing = zl("daemon", "status", env=env_b)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count("daemon:") == 2 and "(this environment's)" in listing.stdout
    assert f"XDG_DATA_HOME={tmp_path / 'b-data'}" in listing.stdout
    assert "HF_HUB_OFFLINE=1" in listing.stdout and str(ws) in listing.stdout
    assert zl("daemon", "stop", env=env_a).stdout.startswith("stopped 2 daemons")
    assert daemon.running(daemon_dir) == []
    # What --no-daemon gives B, its daemon gave it.
    assert _hits(zl(*query, "--no-daemon", env=env_b)) == b_hits


def test_fingerprint_follows_the_variables_the_engine_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = daemon.fingerprint()
    for name in ("XDG_DATA_HOME", "ZL_CONFIG", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HOME"):
        monkeypatch.setenv(name, "/elsewhere")
        assert daemon.fingerprint() != base, name
        monkeypatch.undo()
        assert daemon.fingerprint() == base
    monkeypatch.setenv("TERM", "dumb")  # the client's own business
    monkeypatch.setenv(daemon.RUNTIME_DIR_ENV, "/tmp/other")
    assert daemon.fingerprint() == base
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert "hf_secret" not in json.dumps(daemon.shown(daemon.identity()))


# --- the version handshake --------------------------------------------------------------------

#: A daemon of another version: speaks the framing, answers zl/hello with version 0.0.1-old,
#: answers zl/retire (and records every method it was sent), holds no lock.
FAKE_DAEMON = r"""
import json, os, socket, sys, threading
path, record = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen()
def serve(conn):
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
        while b"\r\n\r\n" in data:
            header, rest = data.split(b"\r\n\r\n", 1)
            length = int(header.split(b":")[1])
            if len(rest) < length:
                break
            message, data = json.loads(rest[:length]), rest[length:]
            with open(record, "a") as out:
                out.write(message["method"] + "\n")
            result = {"version": "0.0.1-old", "pid": os.getpid()} \
                if message["method"] == "zl/hello" else {"retiring": True}
            body = json.dumps({"jsonrpc": "2.0", "id": message["id"],
                               "result": result}).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@pytest.mark.parametrize("client", ["cli", "editor"])
def test_a_daemon_of_another_version_is_never_used(tmp_path: Path, daemon_dir: Path,
                                                   client: str) -> None:
    folder = daemon.private_dir(daemon.private_dir(daemon_dir) / daemon.fingerprint())
    record = tmp_path / "fake-methods"
    fake = subprocess.Popen([sys.executable, "-c", FAKE_DAEMON, str(folder / "sock"),
                             str(record)])
    try:
        wait_for(lambda: (folder / "sock").exists(), timeout=60, what="the fake daemon")
        ws = tmp_path / "ws"
        ws.mkdir()
        (ws / "a.md").write_text("# Alpha\n\nThe aardvark digs at dawn.\n")
        store = tmp_path / "store"
        if client == "cli":
            done = zl("index", str(ws), "--json", "--model", "bundled", "--store-path",
                      str(store))
            assert done.returncode == 0, done.stderr
            said = done.stderr
        else:
            editor = started(ws, store)
            try:
                assert "result" in editor.request("docs/search", {"query": "aardvark"},
                                                  timeout=120)
            finally:
                editor.close()
            said = b"".join(editor.stderr).decode()
        assert said.count("is version 0.0.1-old, not " + __version__) == 1, said
        assert record.read_text().split() == ["zl/hello", "zl/retire"]
        pid = daemon.running_pid(daemon_dir)
        assert pid is not None and pid != fake.pid
        # The next client goes to the daemon of its version at once, silently.
        again = zl("status", "--json", "--workspace", str(ws), "--model", "bundled",
                   "--store-path", str(store))
        assert again.returncode == 0 and "version" not in again.stderr, again.stderr
        assert record.read_text().split() == ["zl/hello", "zl/retire"]
        assert daemon.running_pid(daemon_dir) == pid
    finally:
        fake.kill()
        fake.wait(timeout=30)


def test_a_retired_daemon_steps_aside_and_exits_with_its_last_client(
        tmp_path: Path, daemon_dir: Path) -> None:
    """Our own daemon asked by a client of another version: it gives its socket and lock up
    at once, serves its connected client on, and exits when that one leaves."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.md").write_text("# Alpha\n\nThe aardvark digs at dawn.\n")
    editor = started(root, tmp_path / "store")
    try:
        old = daemon.running_pid(daemon_dir)
        assert old is not None
        sock = daemon.connect(autostart=False)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "zl/retire",
                           "params": {"version": "9.9.9"}}).encode()
        sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        answer = b""
        while b'"retiring"' not in answer:
            answer += sock.recv(65536)
        sock.close()
        assert b'"retiring": true' in answer
        assert not daemon.socket_path(daemon_dir).exists()
        assert daemon.running_pid(daemon_dir) is None  # the lock is free for a successor
        assert "result" in editor.request("docs/status", timeout=120)  # still served
    finally:
        editor.close()
    wait_for(lambda: not daemon._alive(old), timeout=60, what="the retired daemon to exit")


# --- the socket heals -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_removed_or_replaced_socket_is_bound_again(tmp_path: Path, daemon_dir: Path,
                                                     how: str) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.md").write_text("# Alpha\n\nThe aardvark digs at dawn.\n")
    store = tmp_path / "store"
    editor = started(root, store)  # an editor attached, as in the field
    try:
        wait_for(lambda: status_of(editor)["files"] == 1, what="the workspace indexed")
        pid = daemon.running_pid(daemon_dir)
        path = daemon.socket_path(daemon_dir)
        path.unlink()
        if how == "replaced":  # a dead socket of ours in its place
            dead = socket.socket(socket.AF_UNIX)
            dead.bind(str(path))
            dead.close()
        began = time.monotonic()
        done = zl("search", "aardvark", "--json", "--workspace", str(root), "--model",
                  "bundled", "--store-path", str(store), timeout=120)
        took = time.monotonic() - began
        assert done.returncode == 0, done.stderr
        assert _hits(done) == ["a.md"]
        assert took < 5, took
        assert daemon.running_pid(daemon_dir) == pid  # healed, not replaced
        assert "result" in editor.request("docs/status", timeout=60)
    finally:
        editor.close()


# --- a session ends with its connection --------------------------------------------------------


def _daemon_clients() -> int:
    done = zl("daemon", "status", timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("clients:"))
    return int(line.split()[1])


def test_a_client_killed_mid_index_costs_nothing(tmp_path: Path, daemon_dir: Path) -> None:
    ws = corpus_workspace(tmp_path, 200)
    store = tmp_path / "store"
    observer = started(ws, store, indexOnStart=False)  # the same engine, to watch it
    victim = started(ws, store)  # indexes on start, with progress
    try:
        wait_for(lambda: status_of(observer)["state"] == "indexing"
                 and status_of(observer)["embeddedChunks"] > 0,
                 timeout=600, what="the index run to be embedding")
        assert _daemon_clients() == 3  # observer, victim, and `zl daemon status` itself
        log_file = daemon.daemon_folder(daemon_dir) / "daemon.log"
        log_before = log_file.stat().st_size
        os.kill(victim.proc.pid, signal.SIGKILL)  # the bridge: its socket to the daemon dies
        victim.proc.wait(timeout=30)
        began = time.monotonic()
        wait_for(lambda: _daemon_clients() == 2, timeout=60, what="the session to end")
        print(f"session gone from zl daemon status after {time.monotonic() - began:.2f} s")
        # The run goes on (its progress would go to the dead connection): let it make some.
        embedded = status_of(observer)["embeddedChunks"]
        wait_for(lambda: status_of(observer)["embeddedChunks"] >= embedded + 64
                 or status_of(observer)["state"] == "idle",
                 timeout=600, what="the run to go on")
        with open(log_file, "rb") as log:
            log.seek(log_before)
            added = log.read().decode("utf-8", "replace")
        for sign in ("socket.send() raised exception", "Broken pipe", "BrokenPipeError",
                     "ConnectionResetError"):
            assert sign not in added, added[-2000:]
    finally:
        observer.close()
        if victim.proc.poll() is None:
            victim.proc.kill()


# --- framing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("server_kind", ["daemon", "in-process"])
def test_a_request_after_a_short_content_length_is_answered(tmp_path: Path,
                                                            server_kind: str) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.md").write_text("# Alpha\n\nThe aardvark digs at dawn.\n")
    command = None if server_kind == "daemon" else [*ZL, "serve", "--no-daemon"]
    server = started(root, tmp_path / "store", command=command)
    try:
        for number, short in enumerate((2, 5, 13, 30, len(GOOD) - 1)):
            request: dict[str, Any] = {"jsonrpc": "2.0", "id": 100 + number,
                                       "method": "docs/status"}
            body = json.dumps(request).encode()
            # The leftover of the short frame and the next header arrive together.
            server.send_bytes(b"Content-Length: %d\r\n\r\n" % short + GOOD
                              + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            assert "result" in server.response(100 + number, timeout=120), short
        assert server.stdout_garbage == []
    finally:
        server.close()
