"""A minimal raw JSON-RPC client over a real `zl serve` process, for what a well-behaved
client library refuses to send (requests before initialize, malformed frames)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .conftest import SERVER_COMMAND

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], seconds: float, what: str,
             every: float = 0.2) -> T:
    """`check()`'s first truthy value, asked every `every` s; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


class RawServer:
    def __init__(self, command: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(command or SERVER_COMMAND, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stdout_garbage: list[bytes] = []
        self.stderr: list[bytes] = []
        self.notifications: list[dict[str, Any]] = []  # seen while waiting for responses
        self.error_replies: list[dict[str, Any]] = []  # every error response, in order
        self.answered: list[Any] = []  # the id of every response, in order
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self._next_id = 0

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _read(self) -> None:
        """Parse LSP frames; anything on stdout that is not a frame is recorded as garbage."""
        out = self.proc.stdout
        assert out is not None
        while True:
            header = out.readline()
            if not header:
                return
            if not header.startswith(b"Content-Length:"):
                if header.strip():
                    self.stdout_garbage.append(header)
                continue
            length = int(header.split(b":")[1])
            while out.readline().strip():  # the rest of the headers
                pass
            message = json.loads(out.read(length))
            if "error" in message and "method" not in message:
                self.error_replies.append(message)
            if "id" in message and "method" not in message:
                self.answered.append(message["id"])
            self.messages.put(message)

    def errors(self) -> list[dict[str, Any]]:
        return list(self.error_replies)

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params: Any = None, timeout: float = 30) -> dict[str, Any]:
        self._next_id += 1
        msg_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.response(msg_id, timeout)

    def response(self, msg_id: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response to {msg_id}")
            message = self.messages.get(timeout=remaining)
            if message.get("id") == msg_id and "method" not in message:
                return message
            if "method" in message and "id" in message:  # a server->client request
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" in message:
                self.notifications.append(message)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def close(self) -> int:
        if self.proc.poll() is None:
            try:
                self.request("shutdown", timeout=10)
                self.notify("exit")
                return self.proc.wait(timeout=10)
            except (TimeoutError, BrokenPipeError, OSError):
                self.proc.kill()
        return self.proc.wait(timeout=10)


def init_params(root: Path, store: Path, **options: Any) -> dict[str, Any]:
    return {"processId": None, "rootUri": root.as_uri(),
            "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
            "capabilities": {"window": {"workDoneProgress": True}},
            "initializationOptions": {"model": "bundled", "storePath": str(store), **options}}


def started(root: Path, store: Path, command: list[str] | None = None,
            **options: Any) -> RawServer:
    """A server (through the daemon, unless `command` says otherwise), initialized on `root`."""
    server = RawServer(command)
    assert "result" in server.request("initialize", init_params(root, store, **options),
                                      timeout=120)
    server.notify("initialized", {})
    return server
