"""A small blocking JSON-RPC client of the daemon, for the CLI and the MCP server.

It speaks the wire contract as an editor does (initialize, requests, shutdown/exit), so that
what `zl search` and an agent get is exactly what the editor gets. Requests the server sends
back (progress tokens, watcher registration) are acknowledged; notifications go to a callback
(`$/progress` for a progress bar, `window/showMessage` for warnings).

Hand-written rather than pygls's client: that one is asyncio-only and brings lsprotocol's
converters, which cost more start-up time than a whole warm `zl search` takes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import select
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .framing import Frame, FrameParser

Notify = Callable[[str, Any], None]


class RpcError(Exception):
    """An error response: `code`, `message` and `data` as the server sent them."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class ConnectionLost(RpcError):
    def __init__(self, message: str) -> None:
        super().__init__(-32099, message)


class RpcClient:
    def __init__(self, sock: socket.socket, on_notification: Notify | None = None) -> None:
        self.sock = sock
        self.on_notification = on_notification or (lambda _method, _params: None)
        self._parser = FrameParser()
        self._ids = itertools.count(1)
        self._responses: dict[int | str, dict[str, Any]] = {}

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        msg_id = next(self._ids)
        self.send({"id": msg_id, "method": method, "params": params})
        deadline = None if timeout is None else time.monotonic() + timeout
        while msg_id not in self._responses:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining == 0.0:
                raise TimeoutError(f"{method}: no answer within {timeout} s")
            self._read(remaining)
        response = self._responses.pop(msg_id)
        if "error" in response:
            error = response["error"]
            raise RpcError(error.get("code", -32603), error.get("message", ""),
                           error.get("data"))
        return response.get("result")

    def _read(self, timeout: float | None) -> None:
        # Wake up now and then so that Ctrl-C is seen while a long request runs.
        ready, _, _ = select.select([self.sock], [], [], min(timeout or 0.5, 0.5))
        if not ready:
            return
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionLost("the Zero-Latency daemon closed the connection")
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Bytes read from the daemon (by `_read`, or before this client existed)."""
        for item in self._parser.feed(data):
            if isinstance(item, Frame):
                self._handle(json.loads(item.body))

    def _handle(self, message: dict[str, Any]) -> None:
        if "method" not in message:
            self._responses[message.get("id")] = message  # type: ignore[index]
        elif "id" in message:  # the server asks: progress tokens, watchers. Acknowledge.
            self.send({"id": message["id"], "result": None})
        else:
            self.on_notification(message["method"], message.get("params"))

    def close(self) -> None:
        """End the session as an editor does (shutdown, exit), then the connection."""
        try:
            self.request("shutdown", timeout=10)
            self.notify("exit")
        except (OSError, RpcError, TimeoutError):
            pass
        finally:
            self.sock.close()


def hello_params() -> dict[str, Any]:
    """zl/hello's params: this client process's version and home folder (spec.md). The daemon
    serves clients whose $HOME is not its own; `~` and the home-folder refusal are theirs."""
    from . import __version__

    params: dict[str, Any] = {"version": __version__}
    home = os.path.expanduser("~")
    if os.path.isabs(home):
        params["home"] = home
    return params


#: The id of a client's own zl/hello request (an editor's ids are numbers or its own strings).
HELLO_ID = "zl-hello"
_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*(\d+)", re.IGNORECASE)
#: How long a client waits for a daemon of another version to answer zl/retire.
RETIRE_WAIT_S = 5.0


def _request_raw(sock: socket.socket, method: str, params: Any, msg_id: str,
                 timeout: float | None = None) -> tuple[dict[str, Any], bytes]:
    """Send one request and read its answer, hand-parsed: exactly one frame, whose end must
    be known to the byte (the bridge forwards whatever follows it to the editor). Returns
    (the answer, the bytes that came after it)."""
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method,
                       "params": params}).encode("utf-8")
    sock.settimeout(timeout)
    try:
        sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += _recv(sock)
        header, rest = data.split(b"\r\n\r\n", 1)
        match = _CONTENT_LENGTH.search(header)
        if match is None:
            raise ValueError("no Content-Length in its answer")
        length = int(match.group(1))
        while len(rest) < length:
            rest += _recv(sock)
    finally:
        sock.settimeout(None)
    answer = json.loads(rest[:length])
    if not isinstance(answer, dict) or answer.get("id") != msg_id:
        raise ValueError(f"its first message was not the answer to {method}")
    return answer, rest[length:]


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ValueError("it closed the connection")
    return data


def attach(autostart: bool = True, say: Callable[[str], None] | None = None,
           ) -> tuple[socket.socket, dict[str, Any], bytes]:
    """A connection to a daemon of this very version, said hello to (zl/hello).

    The daemon's folder is named by this install's and environment's fingerprint, so its
    daemon has this version; one that answers with another (hand-started, a leftover, a
    fake) is never used: it is asked to step aside (zl/retire: it exits once its last
    client leaves) and a daemon of this version takes the socket over. `say` hears that,
    once. Returns (the socket, zl/hello's result, bytes that came after the answer).
    Raises DaemonError, or OSError/ValueError when the daemon does not answer."""
    from . import __version__
    from .daemon import DaemonError, connect, socket_path

    sock = connect(autostart=autostart)
    result, rest = _hello(sock)
    version = result.get("version")
    if version == __version__:
        return sock, result, rest
    path = socket_path()
    inode = os.lstat(path).st_ino if path.exists() else None
    pid = result.get("pid")
    with contextlib.suppress(OSError, ValueError):
        _request_raw(sock, "zl/retire", {"version": __version__}, "zl-retire",
                     timeout=RETIRE_WAIT_S)
    sock.close()
    if say is not None:
        say(f"the Zero-Latency daemon at {path} (pid {pid}) is version {version}, not "
            f"{__version__}: it was asked to exit once its last client leaves; starting a "
            f"daemon of version {__version__}")
    if not autostart:
        raise DaemonError(f"the Zero-Latency daemon at {path} is version {version}, not "
                          f"{__version__}")
    sock = connect(replacing=inode)
    result, rest = _hello(sock)
    if result.get("version") != __version__:
        sock.close()
        raise DaemonError(f"the Zero-Latency daemon at {path} still answers with version "
                          f"{result.get('version')}")
    return sock, result, rest


def _hello(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """zl/hello's result ({} for an error answer: a daemon too old to know it) and the
    bytes after it."""
    from .daemon import DaemonError

    try:
        answer, rest = _request_raw(sock, "zl/hello", hello_params(), HELLO_ID)
    except (OSError, ValueError) as err:
        sock.close()
        raise DaemonError(f"the Zero-Latency daemon did not answer its handshake: {err}") from err
    result = answer.get("result")
    return (result if isinstance(result, dict) else {}), rest


def warn_stderr(message: str) -> None:
    print(f"zl: {message}", file=sys.stderr)


def open_session(folders: list[Path], options: dict[str, Any],
                 on_notification: Notify | None = None,
                 autostart: bool = True, sock: socket.socket | None = None) -> RpcClient:
    """Connect to the daemon (starting it when needed: one of this version, see `attach`)
    and initialize a session on `folders` with `options` as initializationOptions. `sock`:
    a connection already said hello to (the version unchecked: `zl daemon status`)."""
    if sock is None:
        sock, _hello, rest = attach(autostart=autostart, say=warn_stderr)
    else:
        rest = b""
    client = RpcClient(sock, on_notification)
    client.feed(rest)
    client.request("initialize", {
        "processId": os.getpid(),
        "rootUri": folders[0].as_uri() if folders else None,
        "workspaceFolders": [{"uri": f.as_uri(), "name": f.name} for f in folders],
        "capabilities": {"window": {"workDoneProgress": True}},
        "initializationOptions": options,
    })
    client.notify("initialized", {})
    return client
