"""Serving a connection: framing (`framing.py`, not pygls's reader) and dispatch, the writer
that goes quiet when its session has ended, and `zl serve --no-daemon` on stdio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
)

from ..framing import Frame, FrameParser, FramingError
from ..hub import EngineHub
from .logs import CLIENT_LOG
from .plumbing import _show
from .session import create_server

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from ..frontdoor import FrontDoor
    from .session import ZeroLatencyServer

log = logging.getLogger("zero_latency")


class _StreamWriter:
    """pygls's writer interface over an asyncio transport (a socket) or a binary file. Once
    the session has ended (`closed`), writes are dropped: work the client started (an index
    run's progress, status pushes) may still report, but never to a dead connection."""

    def __init__(self, write: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self._write = write
        self._close = close
        self.closed = False
        #: While the server replays what the front door already answered (frontdoor.py).
        self.muted = False
        self.held: list[bytes] = []  # what was muted

    def write(self, data: bytes) -> None:
        if self.muted:
            self.held.append(data)
        elif not self.closed:
            self._write(data)

    def close(self) -> None:
        self.closed = True
        self._close()


#: Asks a daemon of another version to step aside (spec.md, "zl/retire"): answered by the
#: connection's plumbing, before and regardless of any session.
RETIRE = "zl/retire"


def dispatch(ls: ZeroLatencyServer, item: Frame | FramingError) -> None:
    """Hand one framed message to the server, answering what JSON-RPC says to answer for
    what cannot be handled: invalid JSON (-32700), batches, non-objects and ids that are
    neither numbers nor strings (-32600). Only the top-level object is a message."""
    protocol = ls.protocol
    if isinstance(item, FramingError):
        log.warning("framing error: %s", item.message)
        protocol._send_response(item.message_id, None,  # type: ignore[arg-type]
                                JsonRpcException(item.message, code=item.code)
                                .to_response_error())
        return
    try:
        data = json.loads(item.body)
    except (ValueError, UnicodeDecodeError) as err:
        protocol._send_response(None, None,  # type: ignore[arg-type]
                                JsonRpcParseError(f"invalid JSON: {err}"[:200])
                                .to_response_error())
        return
    refusal = _invalid_request(data)
    if refusal is not None:
        message_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(message_id, int | str) or isinstance(message_id, bool):
            message_id = None
        protocol._send_response(message_id, None,  # type: ignore[arg-type]
                                JsonRpcInvalidRequest(refusal).to_response_error())
        return
    if data.get("method") == RETIRE and "id" in data:
        params = data.get("params")
        version = params.get("version") if isinstance(params, dict) else None
        if ls.hub.retire is None:
            error = JsonRpcException(f"{RETIRE}: not a daemon", code=-32601)
        elif not isinstance(version, str):
            error = JsonRpcInvalidParams(f"{RETIRE}: params.version must be a string")
        else:
            protocol._send_response(data["id"], ls.hub.retire(version))
            return
        protocol._send_response(data["id"], None, error.to_response_error())
        return
    try:
        message = protocol.structure_message(data)
    except JsonRpcException as err:
        log.warning("cannot read a message: %s", err.message)
        if "id" in data and "method" in data:
            protocol._send_response(data["id"], None, err.to_response_error())
        return
    try:
        protocol.handle_message(message)
    except Exception as err:  # one message never ends the connection
        # e.g. a late answer to a request of ours we stopped waiting for (a client held up
        # by a prompt answers window/workDoneProgress/create after our timeout): pygls sets
        # the result on a cancelled future.
        log.warning("could not handle a message (%s): %r", getattr(message, "method", None)
                    or f"response to {getattr(message, 'id', '?')}", err)


def _invalid_request(data: Any) -> str | None:
    if isinstance(data, list):
        return "batch requests are not supported: send one message per frame"
    if not isinstance(data, dict):
        return "a message must be a JSON object"
    if data.get("jsonrpc") != "2.0":
        return 'a message must have "jsonrpc": "2.0"'
    message_id = data.get("id")
    if "id" in data and message_id is not None and (
            not isinstance(message_id, int | str) or isinstance(message_id, bool)):
        return "id must be a number or a string"
    if "method" in data and not isinstance(data["method"], str):
        return "method must be a string"
    if "method" not in data and "id" not in data:
        return "a message needs a method or an id"
    return None


def _replay(ls: ZeroLatencyServer, early: FrontDoor, writer: _StreamWriter) -> bool:
    """Hand the server every message the front door read, in order, the front door's answers
    muted. False when the server refused an initialize the front door had answered (params
    the front door took for plain that lsprotocol cannot read): the session cannot go on."""
    ls.early_setup = early.setup
    for index, item in enumerate(early.items):
        writer.muted = index in early.answered
        try:
            dispatch(ls, item)
        finally:
            writer.muted = False
    if early.setup is None or ls.initialize_seen:
        return True
    refusal = b"".join(writer.held).decode("utf-8", "replace")
    log.error("the server refused the initialize its front door had answered: %s", refusal)
    _show(ls, "Zero-Latency: the server could not read this client's initialize params after "
          f"all ({refusal}); closing the connection", lsp.MessageType.Error)
    return False


async def serve_connection(ls: ZeroLatencyServer, read: Callable[[], Any],
                           writer: _StreamWriter, early: FrontDoor | None = None) -> int:
    """Serve one client until `exit`, or until its stream ends; then release what it held.
    `read` returns the next bytes (b"" at the end). `early`: the daemon's front door, which
    read (and answered) the client's first messages while this server loaded. Returns the
    LSP exit code."""
    ls.protocol.set_writer(writer)
    CLIENT_LOG.clients.add(ls)
    parser = early.parser if early is not None else FrameParser()
    reading: asyncio.Future[Any] | None = None
    closing = asyncio.ensure_future(ls.closing.wait())
    try:
        if early is not None and not _replay(ls, early, writer):
            return 1
        while not ls.closing.is_set():
            reading = asyncio.ensure_future(read())
            await asyncio.wait([reading, closing], return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                break
            data = reading.result()
            reading = None
            if not data:
                break
            for item in parser.feed(data):
                dispatch(ls, item)
                if ls.closing.is_set():
                    break
    finally:
        closing.cancel()
        if reading is not None:
            reading.cancel()
        CLIENT_LOG.clients.discard(ls)
        writer.closed = True  # nothing more goes to this client, whatever still reports
        ls.release()
        for task in list(ls.background):
            task.cancel()
        if ls.startup_task is not None:
            ls.startup_task.cancel()
    # The stream ended without `exit`: the client went away (0, as an editor that closed).
    return ls.exit_code if ls.exit_code is not None else 0


def serve() -> int:
    """`zl serve --no-daemon`: one client on stdio, with engines of its own."""
    logging.getLogger("zero_latency").addHandler(CLIENT_LOG)
    hub = EngineHub()
    ls = create_server(hub)
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    stdout = sys.stdout.buffer

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        # A thread reads stdin (a pipe, a file or a terminal alike); the loop never blocks.
        chunks: asyncio.Queue[bytes] = asyncio.Queue()

        def pump() -> None:
            while True:
                try:
                    data = stdin.read(65536) or b""
                except (OSError, ValueError):
                    data = b""
                loop.call_soon_threadsafe(chunks.put_nowait, data)
                if not data:
                    return

        threading.Thread(target=pump, name="zl-stdin", daemon=True).start()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(signal.SIGTERM, ls.closing.set)  # end as on `exit`
        return await serve_connection(ls, chunks.get, _StreamWriter(write, lambda: None))

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        log.error("the client closed its end of stdout")
        code = 1
    finally:
        hub.close()
        logging.getLogger("zero_latency").removeHandler(CLIENT_LOG)
    return code
