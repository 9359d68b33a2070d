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
import socket
import sys
import threading

from .client import attach
from .daemon import DaemonError, socket_path
from .framing import Frame, FrameParser


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


def run_bridge() -> int:
    if sys.stdin.isatty():
        print(f"zl serve: the Zero-Latency language server, speaking LSP (JSON-RPC) on "
              f"stdin/stdout for an editor, forwarded to the daemon at {socket_path()}. "
              "Editors start it themselves; Ctrl-C ends it.", file=sys.stderr)
    try:
        # A daemon of this version, said hello to (its answer is not the editor's business).
        sock, _hello, early = attach(
            say=lambda message: print(f"zl serve: {message}", file=sys.stderr))
    except (DaemonError, OSError) as err:
        print(f"zl serve: cannot reach the Zero-Latency daemon: {err}", file=sys.stderr)
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
