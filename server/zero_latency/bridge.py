"""`zl serve`: the editor's stdio, forwarded byte for byte to the per-user daemon.

The editor speaks LSP over stdio exactly as before; the daemon does the work. The bridge
holds no model and no store (a few MB), so a second window costs nothing, and it ends the
moment the editor does: stdin closing or `exit` ends the bridge at once, while an index run
the daemon started goes on there (or resumes in the next run). It watches the frames going
by only to learn whether `shutdown` came before `exit` (LSP's exit code 0 or 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import threading

from .client import hello_params
from .daemon import DaemonError, connect, socket_path
from .framing import Frame, FrameParser

#: The id of the bridge's own zl/hello request (an editor's ids are numbers or its own strings).
HELLO_ID = "zl-bridge-hello"
_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*(\d+)", re.IGNORECASE)


class _Watch:
    """What the client has said so far, as far as the exit code is concerned."""

    def __init__(self) -> None:
        self.parser = FrameParser()
        self.shutdown = False
        self.exit = False

    def feed(self, data: bytes) -> None:
        for item in self.parser.feed(data):
            if not isinstance(item, Frame):
                continue
            try:
                method = json.loads(item.body).get("method")
            except (ValueError, AttributeError):
                continue
            if method == "shutdown":
                self.shutdown = True
            elif method == "exit":
                self.exit = True


def _hello(sock: socket.socket) -> bytes:
    """Say who this client is (zl/hello: its version and home folder) before the editor's
    first byte, and read the answer, which the editor must not see. Returns whatever came
    after the answer (nothing, normally), to be forwarded. Hand-parsed: exactly one frame,
    whose end must be known to the byte."""
    body = json.dumps({"jsonrpc": "2.0", "id": HELLO_ID, "method": "zl/hello",
                       "params": hello_params()}).encode("utf-8")
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
    answer = json.loads(rest[:length])
    if not isinstance(answer, dict) or answer.get("id") != HELLO_ID:
        return data  # not the answer: the editor's business (and the hello's answer follows)
    return rest[length:]


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ValueError("it closed the connection")
    return data


def run_bridge() -> int:
    if sys.stdin.isatty():
        print(f"zl serve: the Zero-Latency language server, speaking LSP (JSON-RPC) on "
              f"stdin/stdout for an editor, forwarded to the daemon at {socket_path()}. "
              "Editors start it themselves; Ctrl-C ends it.", file=sys.stderr)
    try:
        sock = connect()
    except (DaemonError, OSError) as err:
        print(f"zl serve: cannot reach the Zero-Latency daemon: {err}", file=sys.stderr)
        return 1
    try:
        early = _hello(sock)
    except (OSError, ValueError) as err:
        print(f"zl serve: the Zero-Latency daemon did not answer its handshake: {err}",
              file=sys.stderr)
        return 1
    if early:
        os.write(1, early)
    watch = _Watch()
    editor_gone = threading.Event()

    def upstream() -> None:  # editor -> daemon
        try:
            while True:
                data = os.read(0, 65536)
                if not data:
                    break
                watch.feed(data)
                sock.sendall(data)
        except OSError:
            pass
        editor_gone.set()
        # Unblocks the reader below: the bridge ends now, the daemon sees the client leave.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=upstream, name="zl-upstream", daemon=True).start()
    try:
        while True:  # daemon -> editor
            data = sock.recv(65536)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0  # the editor closed its end
    except OSError:
        pass
    finally:
        sock.close()
    if watch.exit:
        return 0 if watch.shutdown else 1
    if editor_gone.is_set():
        return 0
    print("zl serve: the Zero-Latency daemon closed the connection (it stopped or crashed); "
          "the editor can restart the server", file=sys.stderr)
    return 1
