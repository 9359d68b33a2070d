"""The per-user daemon: one engine process that every client attaches to.

The model is gopls's `-remote=auto`: the first client (`zl serve` started by an editor, a `zl`
command, `zl mcp`) starts the daemon in the background; every client then talks to it over a
Unix domain socket in a user-only directory, with the same JSON-RPC contract as stdio. The
daemon owns every store it opens (Qdrant Edge allows one writer), keeps the model warm, and
exits after `idle` seconds with no client and no work.

Exactly one daemon runs per runtime directory: a daemon takes an exclusive `flock` on
`daemon.lock` before it touches the socket, so when five clients start five daemons at once,
one wins and the others exit; a socket left by a killed daemon is stale by definition once
the lock is ours, and is replaced.

This module is imported by `zl serve`'s bridge, which must stay small: nothing here imports
the engine or pygls at module level.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("zero_latency.daemon")

RUNTIME_DIR_ENV = "ZL_RUNTIME_DIR"
IDLE_ENV = "ZL_DAEMON_IDLE_SECONDS"
#: A few minutes: a second window or a `zl` command soon after finds the model warm.
DEFAULT_IDLE_SECONDS = 300.0
SOCKET_NAME = "sock"  # short: a Unix socket path is limited to ~107 bytes


class DaemonError(Exception):
    """The daemon cannot be reached or started; the message says why and what to do."""


# --- where ---------------------------------------------------------------------------------


def runtime_dir() -> Path:
    """`$ZL_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/zero-latency`, else a per-user folder in the
    temp dir (macOS and Linux without a session runtime dir)."""
    if os.environ.get(RUNTIME_DIR_ENV):
        return Path(os.environ[RUNTIME_DIR_ENV])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "zero-latency"
    return Path(tempfile.gettempdir()) / f"zero-latency-{os.getuid()}"


def private_dir(path: Path | None = None) -> Path:
    """The runtime folder, made user-only (0700) and checked: a folder another user owns, or
    that others can write to, is refused (it could hold a socket that is not ours)."""
    path = path or runtime_dir()
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise DaemonError(f"{path} is not a folder (it should be the daemon's runtime folder)")
    if info.st_uid != os.getuid():
        raise DaemonError(f"{path} belongs to another user: refusing to use it. Set "
                          f"{RUNTIME_DIR_ENV} to a folder of your own.")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def socket_path(folder: Path | None = None) -> Path:
    return (folder or runtime_dir()) / SOCKET_NAME


# --- the client side ---------------------------------------------------------------------------


def connect(autostart: bool = True, timeout: float = 60.0) -> socket.socket:
    """A connection to the daemon, starting one when none runs (and `autostart`)."""
    folder = private_dir()
    path = socket_path(folder)
    if len(os.fsencode(path)) > 100:
        raise DaemonError(f"the socket path {path} is too long for a Unix socket: set "
                          f"{RUNTIME_DIR_ENV} to a shorter folder")
    try:
        return _connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as err:
        if not autostart:
            raise DaemonError(f"no Zero-Latency daemon is running ({path}: "
                              f"{err.strerror})") from err
    proc = spawn(folder)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        code = proc.poll()
        if code not in (None, 0):  # 0: another client's daemon won the race; wait for it
            raise DaemonError(f"the Zero-Latency daemon failed to start (exit {code}): "
                              f"{_log_tail(folder)}")
        if time.monotonic() > deadline:
            raise DaemonError(f"the Zero-Latency daemon did not start within {timeout:.0f} s; "
                              f"its log: {folder / 'daemon.log'}")
        time.sleep(0.02)


def _connect(path: Path) -> socket.socket:
    info = os.lstat(path)  # FileNotFoundError: none yet
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
        raise DaemonError(f"{path} is not a socket of yours: refusing to connect")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def spawn(folder: Path) -> subprocess.Popen[bytes]:
    """Start a daemon in the background, detached from this process and its terminal."""
    log_file = open(folder / "daemon.log", "ab")  # noqa: SIM115 (the child keeps it)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "zero_latency", "daemon", "run"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
            start_new_session=True, close_fds=True, cwd="/")
    finally:
        log_file.close()


def _log_tail(folder: Path, lines: int = 5) -> str:
    try:
        text = (folder / "daemon.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:])


def running_pid(folder: Path | None = None) -> int | None:
    """The pid of the daemon holding the lock, or None."""
    folder = folder or runtime_dir()
    try:
        with open(folder / "daemon.lock", "rb") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = (folder / "daemon.pid").read_text().strip()
                return int(pid) if pid.isdigit() else None
            fcntl.flock(lock, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


def stop(folder: Path | None = None, timeout: float = 60.0) -> int | None:
    """Ask the daemon to end (SIGTERM: it flushes and closes its stores); wait for it."""
    pid = running_pid(folder)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_pid(folder) == pid or _alive(pid):
        if time.monotonic() > deadline:
            raise DaemonError(f"the daemon (pid {pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.05)
    return pid


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its reaper does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all there is
    return "\nState:\tZ" not in status


# --- the daemon --------------------------------------------------------------------------------


def run(idle: float | None = None) -> int:
    """Serve until idle (no client and no work for `idle` seconds) or SIGTERM/SIGINT."""
    if idle is None:
        idle = float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_SECONDS)
    folder = private_dir()
    lock = open(folder / "daemon.lock", "a+b")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another daemon already serves %s", folder)
        return 0
    (folder / "daemon.pid").write_text(str(os.getpid()))
    path = socket_path(folder)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # the lock is ours: whatever socket is there is stale
    try:
        return asyncio.run(_serve(path, idle))
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (folder / "daemon.pid").unlink()
        lock.close()


async def _serve(path: Path, idle: float) -> int:
    from .hub import EngineHub
    from .lsp import CLIENT_LOG, _StreamWriter, create_server, serve_connection

    logging.getLogger("zero_latency").addHandler(CLIENT_LOG)
    hub = EngineHub()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    connections: set[asyncio.StreamWriter] = set()
    started = time.time()
    hub.info = lambda: {
        "pid": os.getpid(), "socket": str(path), "startedAt": started,
        "idleSeconds": idle, "clients": len(connections),
        "workspaces": [root.as_uri() for root in hub.open_roots()]}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_uid(writer.get_extra_info("socket"))
        if peer is not None and peer != os.getuid():
            log.warning("refused a connection from uid %d", peer)
            writer.close()
            return
        connections.add(writer)
        ls = create_server(hub)
        try:
            await serve_connection(ls, lambda: reader.read(65536),
                                   _StreamWriter(writer.write, writer.close))
        except (ConnectionError, OSError) as err:
            log.info("a client connection ended: %s", err)
        finally:
            connections.discard(writer)
            writer.close()

    old_umask = os.umask(0o177)  # the socket is born 0600
    try:
        server = await asyncio.start_unix_server(handle, path=str(path), limit=2 ** 20)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log.info("daemon %d serving %s (exits after %.0f s idle)", os.getpid(), path, idle)
    idle_since = time.monotonic()
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), min(1.0, max(idle / 4, 0.05)))
        if connections or hub.busy():
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle:
            log.info("idle for %.0f s: exiting", idle)
            break
    server.close()
    for writer in list(connections):
        writer.close()
    await loop.run_in_executor(None, hub.close)
    return 0


def _peer_uid(sock: socket.socket | None) -> int | None:
    """The uid of the process at the other end (Linux); None where the OS cannot tell, where
    the socket's 0600 mode and the 0700 folder are the guard."""
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError as err:
        if err.errno == errno.ENOPROTOOPT:
            return None
        raise
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)
