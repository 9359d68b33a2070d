"""The per-user daemon: one engine process per install and environment, that every client
of that install and environment attaches to.

The model is gopls's `-remote=auto`: the first client (`zl serve` started by an editor, a `zl`
command, `zl mcp`) starts the daemon in the background; every client then talks to it over a
Unix domain socket in a user-only directory, with the same JSON-RPC contract as stdio. The
daemon owns every store it opens (Qdrant Edge allows one writer), keeps the model warm, and
exits after `idle` seconds with no client and no work.

A daemon serves only clients that would behave exactly as it does: its socket lives in a
folder named by a fingerprint of the package version, the package's install folder, the
Python executable and every environment variable the engine reads (`identity()`). A client
with another `XDG_DATA_HOME`, `ZL_CONFIG` or `HF_HUB_OFFLINE`, or of another install, computes
another folder and gets a daemon of its own, as `--no-daemon` would give it an engine of its
own. The `zl/hello` handshake checks the version once more (a hand-started daemon, a fake).

Exactly one daemon runs per folder: a daemon takes an exclusive `flock` on `daemon.lock`
before it touches the socket, so when five clients start five daemons at once, one wins and
the others exit; a socket left by a killed daemon is stale by definition once the lock is
ours, and is replaced. A daemon whose socket file is removed or replaced binds it again
within a second (`HEAL_CHECK_S`).

This module is imported by `zl serve`'s bridge, which must stay small: nothing here imports
the engine or pygls at module level.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from .hub import EngineHub

log = logging.getLogger("zero_latency.daemon")

RUNTIME_DIR_ENV = "ZL_RUNTIME_DIR"
IDLE_ENV = "ZL_DAEMON_IDLE_SECONDS"
#: A few minutes: a second window or a `zl` command soon after finds the model warm.
DEFAULT_IDLE_SECONDS = 300.0
SOCKET_NAME = "sock"  # short: a Unix socket path is limited to ~107 bytes
#: The daemon's description of itself, written beside its socket (`zl daemon status`).
IDENTITY_FILE = "identity.json"
#: How often a daemon checks that its socket file is still the one it bound.
HEAL_CHECK_S = 1.0
#: How long a client waits for a daemon that holds the lock but has no socket yet (it is
#: starting, or healing a removed socket) before it says what is wrong.
LOCK_HOLDER_WAIT_S = 10.0

#: Environment variables the engine reads (directly, through platformdirs or huggingface_hub)
#: that decide what a client gets: a client with other values gets a daemon of its own.
#: ZL_RUNTIME_DIR only says where daemons live; ZL_STORE_API_KEY is read by the CLI and sent
#: as a setting; display variables (TERM, NO_COLOR, VISUAL) are the client's own business.
#: Network plumbing (proxies, CA bundles) is left out on purpose: it differs between the
#: contexts one user starts clients from, and two daemons on one data folder would contend
#: for the same stores (one writer each).
IDENTITY_ENV = (
    "HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "ZL_CONFIG", IDLE_ENV,
    "TRANSFORMERS_OFFLINE")
#: ...and every variable with one of these prefixes (the Hub client reads many: HF_HOME,
#: HF_HUB_CACHE, HF_HUB_OFFLINE, HF_ENDPOINT, HF_TOKEN, ...).
IDENTITY_PREFIXES = ("HF_", "HUGGINGFACE_", "HUGGING_FACE_")
_SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")


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


def identity() -> dict[str, Any]:
    """What decides this process's behaviour as a daemon, or what a client needs its daemon's
    to be: the version, the package folder, the executable and the engine's environment."""
    from . import __version__

    env = {name: value for name, value in os.environ.items()
           if name in IDENTITY_ENV or name.startswith(IDENTITY_PREFIXES)}
    return {"version": __version__, "package": str(Path(__file__).resolve().parent),
            "executable": sys.executable, "env": dict(sorted(env.items()))}


def fingerprint(ident: dict[str, Any] | None = None) -> str:
    """12 hex digits naming the daemon folder of an identity (48 bits: a collision between
    two environments of one user is not a concern; the socket path must stay short)."""
    text = json.dumps(ident or identity(), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def shown(ident: dict[str, Any]) -> dict[str, Any]:
    """`ident` as `zl daemon status` and the identity file show it: secrets (tokens, keys)
    only as "(set)"."""
    env = {name: "(set)" if any(word in name.upper() for word in _SECRET_WORDS) else value
           for name, value in ident["env"].items()}
    return {**ident, "env": env}


def daemon_folder(runtime: Path | None = None) -> Path:
    """This process's daemon folder: `<runtime dir>/<fingerprint>` (not created here)."""
    return (runtime or runtime_dir()) / fingerprint()


def socket_path(runtime: Path | None = None) -> Path:
    """The socket of this process's daemon (for its install and environment)."""
    return daemon_folder(runtime) / SOCKET_NAME


def daemon_folders(runtime: Path | None = None) -> list[Path]:
    """Every daemon folder under the runtime folder (one per install and environment)."""
    runtime = runtime or runtime_dir()
    try:
        return sorted(p for p in runtime.iterdir()
                      if p.is_dir() and not p.is_symlink() and (p / "daemon.lock").exists())
    except OSError:
        return []


# --- the client side ---------------------------------------------------------------------------


def connect(autostart: bool = True, timeout: float = 60.0, *,
            replacing: int | None = None) -> socket.socket:
    """A connection to this install's and environment's daemon, starting one when none runs
    (and `autostart`). `replacing`: the inode of a socket whose daemon must not be used (it
    answered with another version): a daemon of ours is started to take its place."""
    runtime = private_dir()
    folder = private_dir(runtime / fingerprint())
    path = folder / SOCKET_NAME
    if len(os.fsencode(path)) > 100:
        raise DaemonError(f"the socket path {path} is too long for a Unix socket: set "
                          f"{RUNTIME_DIR_ENV} to a shorter folder")
    if replacing is None:
        try:
            return _connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as err:
            if not autostart:
                raise DaemonError(f"no Zero-Latency daemon is running ({path}: "
                                  f"{err.strerror})") from err
    proc = spawn(folder)
    deadline = time.monotonic() + timeout
    lost_at: float | None = None
    began = time.monotonic()
    while True:
        if replacing is None or _inode(path) != replacing:
            try:
                return _connect(path)
            except (FileNotFoundError, ConnectionRefusedError):
                pass
        code = proc.poll()
        if code not in (None, 0):
            raise DaemonError(f"the Zero-Latency daemon failed to start (exit {code}): "
                              f"{_log_tail(folder)}")
        now = time.monotonic()
        if code == 0:  # another daemon holds the folder's lock: it binds (or heals) the socket
            lost_at = lost_at or now
            holder = _lock_holder(folder)
            if holder is None:  # it is gone meanwhile: start one again
                proc, lost_at = spawn(folder), None
            elif now - lost_at > LOCK_HOLDER_WAIT_S and not _starting(folder):
                what = ("still answers with another version" if replacing is not None
                        else "has no socket there")
                raise DaemonError(f"the Zero-Latency daemon (pid {holder}) that holds {folder} "
                                  f"{what} ({path}); stop it (`zl daemon stop`, or kill "
                                  f"{holder}) and try again")
        if now > deadline:
            raise DaemonError(f"the Zero-Latency daemon did not start within {timeout:.0f} s; "
                              f"its log: {folder / 'daemon.log'}")
        # A new daemon binds its socket within ~0.1 s (more on a loaded machine): look often
        # for a while, then less.
        time.sleep(0.005 if now - began < 2 else 0.05)


def _inode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_ino
    except OSError:
        return None


def _starting(folder: Path) -> bool:
    """Whether the folder's daemon took its lock less than a minute ago (it may still be
    importing the engine before it binds the socket, on a loaded machine)."""
    try:
        return time.time() - os.stat(folder / "daemon.pid").st_mtime < 60
    except OSError:
        return False


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
    """Start a daemon in the background, detached from this process and its terminal. It
    inherits this environment, so it computes this folder's fingerprint (and checks it)."""
    log_file = open(folder / "daemon.log", "ab")  # noqa: SIM115 (the child keeps it)
    try:
        return subprocess.Popen(
            # Straight to daemon.run (daemon_main: no CLI imports); `daemon run` kept in the
            # command line so that it reads in `ps` as the one `zl daemon run` starts.
            [sys.executable, "-m", "zero_latency.daemon_main", "daemon", "run",
             "--fingerprint", folder.name],
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


def _lock_holder(folder: Path) -> int | None:
    """The pid of the daemon holding `folder`'s lock, or None."""
    try:
        with open(folder / "daemon.lock", "rb") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    pid = (folder / "daemon.pid").read_text().strip()
                except OSError:
                    return None
                return int(pid) if pid.isdigit() else None
            fcntl.flock(lock, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


def running_pid(runtime: Path | None = None) -> int | None:
    """The pid of this install's and environment's daemon, or None."""
    return _lock_holder(daemon_folder(runtime))


def running(runtime: Path | None = None) -> list[tuple[Path, int]]:
    """Every daemon under the runtime folder: (its folder, its pid)."""
    found = []
    for folder in daemon_folders(runtime):
        pid = _lock_holder(folder)
        if pid is not None:
            found.append((folder, pid))
    return found


def read_identity(folder: Path) -> dict[str, Any] | None:
    """What a daemon wrote about itself when it started (secrets shown as "(set)")."""
    try:
        data = json.loads((folder / IDENTITY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stop(runtime: Path | None = None, timeout: float = 60.0) -> list[int]:
    """Ask every daemon under the runtime folder to end (SIGTERM: it flushes and closes its
    stores); wait for them. Returns their pids."""
    pids = [pid for _folder, pid in running(runtime)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid):
            if time.monotonic() > deadline:
                raise DaemonError(f"the daemon (pid {pid}) did not stop within {timeout:.0f} s")
            time.sleep(0.05)
    return pids


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


class _Place:
    """Where a daemon serves: its folder, lock, socket (and the inode it bound there)."""

    def __init__(self, folder: Path, lock: Any) -> None:
        self.folder = folder
        self.lock = lock
        self.path = folder / SOCKET_NAME
        self.inode: int | None = None
        self.retired = False

    def ours(self) -> bool:
        return self.inode is not None and _inode(self.path) == self.inode

    def leave(self) -> None:
        """Give the folder up (retired, or exiting): remove the socket and pid file if they
        are still ours, and release the lock, so that a successor can take the folder."""
        if self.ours():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.inode = None
        pid_file = self.folder / "daemon.pid"
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        if not self.lock.closed:
            self.lock.close()


def run(idle: float | None = None, expect: str | None = None) -> int:
    """Serve until idle (no client and no work for `idle` seconds), SIGTERM/SIGINT, or
    retired (`zl/retire`) and left by its last client. `expect`: the fingerprint the client
    that started it computed (a mismatch: this process is another install or environment)."""
    if idle is None:
        idle = float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_SECONDS)
    ident = identity()
    mine = fingerprint(ident)
    if expect is not None and expect != mine:
        log.error("started for daemon folder %s, but this process's install and environment "
                  "make %s (package %s, %s): not serving", expect, mine, ident["package"],
                  ident["executable"])
        return 2
    folder = private_dir(private_dir() / mine)
    lock = open(folder / "daemon.lock", "a+b")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another daemon already serves %s", folder)
        lock.close()
        return 0
    (folder / "daemon.pid").write_text(str(os.getpid()))
    identity_file = folder / IDENTITY_FILE
    identity_file.write_text(json.dumps({**shown(ident), "fingerprint": mine,
                                         "pid": os.getpid()}, indent=1))
    os.chmod(identity_file, 0o600)
    place = _Place(folder, lock)
    with contextlib.suppress(FileNotFoundError):
        place.path.unlink()  # the lock is ours: whatever socket is there is stale
    import asyncio  # here: `zl serve`'s bridge imports this module, and needs no event loop

    try:
        return asyncio.run(_serve(place, idle, ident))
    finally:
        place.leave()


async def _serve(place: _Place, idle: float, ident: dict[str, Any]) -> int:
    import asyncio

    from .frontdoor import FrontDoor, SessionSetup, preload

    loop = asyncio.get_running_loop()
    # The socket is bound before the language server has loaded (pygls and lsprotocol take
    # ~0.3 s to import): until then each connection's front door answers zl/hello and
    # initialize (frontdoor.py), and the rest waits for the server.
    loading = loop.run_in_executor(None, preload)
    hub_ready: asyncio.Future[EngineHub] = loop.create_future()
    stopping = asyncio.Event()
    connections: set[asyncio.StreamWriter] = set()
    servers: list[asyncio.Server] = []
    started = time.time()
    path = place.path

    def loaded(done: asyncio.Future[None]) -> None:
        err = None if done.cancelled() else done.exception()
        if done.cancelled() or err is not None:
            log.error("the language server could not load: %r", err)
            hub_ready.set_exception(DaemonError(f"the language server did not load: {err!r}"))
            stopping.set()
            return
        from .lsp import CLIENT_LOG

        logging.getLogger("zero_latency").addHandler(CLIENT_LOG)
        hub = engines()
        hub.info = lambda: {
            "pid": os.getpid(), "socket": str(path), "startedAt": started,
            "idleSeconds": idle, "clients": len(connections),
            "workspaces": [root.as_uri() for root in hub.open_roots()],
            "version": ident["version"], "fingerprint": place.folder.name,
            "identity": shown(ident), "retired": place.retired}
        hub.retire = retire
        hub_ready.set_result(hub)
        # The engine's modules (numpy, Qdrant, ONNX Runtime) next, while the client sends
        # `initialized`: the first session's engine then only has to open its store.
        loop.run_in_executor(None, _preload_engine)

    loading.add_done_callback(loaded)
    made: list[EngineHub] = []

    def engines() -> EngineHub:
        """The process's engines, made when first needed (a front door's initialize may come
        before the server has loaded)."""
        if not made:
            from .hub import EngineHub

            made.append(EngineHub())
        return made[0]

    def warm(setup: SessionSetup) -> None:
        # The session's engine and model (ONNX Runtime), while pygls and lsprotocol load: it
        # asks for them as soon as it has `initialized`.
        loop.run_in_executor(None, engines().warm, setup.settings)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_uid(writer.get_extra_info("socket"))
        if peer is not None and peer != os.getuid():
            log.warning("refused a connection from uid %d", peer)
            writer.close()
            return
        connections.add(writer)

        def write(data: bytes) -> None:
            # A client that went away (EOF, reset, kill -9) gets nothing more: asyncio would
            # log "socket.send() raised exception." for every write to its dead transport.
            if not writer.is_closing():
                writer.write(data)

        try:
            early = None
            reading: asyncio.Future[bytes] | None = None
            if not hub_ready.done():
                early = FrontDoor(write, warm)
                while not hub_ready.done():
                    reading = reading or asyncio.ensure_future(reader.read(65536))
                    await asyncio.wait([reading, hub_ready],  # type: ignore[type-var]
                                       return_when=asyncio.FIRST_COMPLETED)
                    if reading.done():
                        data = reading.result()
                        reading = None
                        if not data:
                            return  # gone before the server loaded: nothing to release
                        early.feed(data)
            if hub_ready.exception() is not None:
                return
            from .lsp import _StreamWriter, create_server, serve_connection

            ls = create_server(hub_ready.result())

            async def read() -> bytes:
                nonlocal reading
                if reading is not None:  # the front door's last read, still on its way
                    pending, reading = reading, None
                    return await pending
                return await reader.read(65536)

            await serve_connection(ls, read, _StreamWriter(write, writer.close), early)
        except (ConnectionError, OSError) as err:
            log.info("a client connection ended: %s", err)
        finally:
            connections.discard(writer)
            writer.close()

    async def bind() -> None:
        for server in servers:  # a listener on a removed file: its connections go on
            server.close()
        servers.clear()
        private_dir(private_dir(place.folder.parent) / place.folder.name)  # removed too?
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old_umask = os.umask(0o177)  # the socket is born 0600
        try:
            servers.append(await asyncio.start_unix_server(handle, path=str(path),
                                                           limit=2 ** 20))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        place.inode = _inode(path)

    def retire(version: str) -> dict[str, Any]:
        """A client of `version` met this daemon: when that is not this daemon's version,
        step aside (no new client reaches it, a successor may take the folder) and exit
        once the last client has gone."""
        if version == ident["version"] or place.retired:
            return {"retiring": place.retired}
        log.info("a client of version %s asked this daemon (version %s) to retire: exiting "
                 "once its last client leaves", version, ident["version"])
        place.retired = True
        for server in servers:
            server.close()
        place.leave()
        return {"retiring": True}

    await bind()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log.info("daemon %d (version %s) serving %s (exits after %.0f s idle)", os.getpid(),
             ident["version"], path, idle)
    idle_since = time.monotonic()
    tick = min(HEAL_CHECK_S, max(idle / 4, 0.05))
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), tick)
        if place.retired:
            if not connections:
                log.info("retired, and the last client has gone: exiting")
                break
            continue
        if not place.ours():
            # Removed (a temp cleaner, a user) or replaced: the lock is ours, so bind again.
            log.warning("the socket %s was removed or replaced: binding it again", path)
            try:
                await bind()
            except (OSError, DaemonError) as err:
                log.error("cannot bind %s again: %s", path, err)
        if connections or (hub_ready.done() and not hub_ready.exception()
                           and hub_ready.result().busy()):
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle:
            log.info("idle for %.0f s: exiting", idle)
            break
    for server in servers:
        server.close()
    for writer in list(connections):
        writer.close()
    if made:  # the server's engines, and any warmed for a session that never came
        await loop.run_in_executor(None, made[0].close)
    failed = hub_ready.done() and hub_ready.exception() is not None
    return 1 if failed else 0


def _preload_engine() -> None:
    try:
        from . import engine  # noqa: F401
    except Exception as err:  # the session that needs it reports it
        log.warning("could not load the engine ahead: %r", err)


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
