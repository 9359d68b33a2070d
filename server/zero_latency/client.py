"""A small blocking JSON-RPC client of the daemon, for the CLI and the MCP server.

It speaks the wire contract as an editor does (initialize, requests, shutdown/exit), so that
what `zl search` and an agent get is exactly what the editor gets. Requests the server sends
back (progress tokens, watcher registration) are acknowledged; notifications go to a callback
(`$/progress` for a progress bar, `window/showMessage` for warnings).

Hand-written rather than pygls's client: that one is asyncio-only and brings lsprotocol's
converters, which cost more start-up time than a whole warm `zl search` takes.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import socket
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


def open_session(folders: list[Path], options: dict[str, Any],
                 on_notification: Notify | None = None,
                 autostart: bool = True) -> RpcClient:
    """Connect to the daemon (starting it when needed) and initialize a session on `folders`
    with `options` as initializationOptions."""
    from .daemon import connect

    client = RpcClient(connect(autostart=autostart), on_notification)
    client.request("zl/hello", hello_params())
    client.request("initialize", {
        "processId": os.getpid(),
        "rootUri": folders[0].as_uri() if folders else None,
        "workspaceFolders": [{"uri": f.as_uri(), "name": f.name} for f in folders],
        "capabilities": {"window": {"workDoneProgress": True}},
        "initializationOptions": options,
    })
    client.notify("initialized", {})
    return client
