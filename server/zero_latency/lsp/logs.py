"""Logging towards the clients (window/logMessage) and the daemon's log (an answered error in
one line).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, ClassVar

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInternalError

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from .session import ZeroLatencyServer
    pass

log = logging.getLogger("zero_latency")


class _ClientLogHandler(logging.Handler):
    """Mirrors log records to every connected client as window/logMessage, from any thread."""

    LEVELS: ClassVar[dict[int, lsp.MessageType]] = {
        logging.ERROR: lsp.MessageType.Error, logging.WARNING: lsp.MessageType.Warning,
        logging.INFO: lsp.MessageType.Info}

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.clients: set[ZeroLatencyServer] = set()

    def emit(self, record: logging.LogRecord) -> None:
        for ls in list(self.clients):
            loop = ls.main_loop  # known once initialize arrives
            if loop is None or loop.is_closed() or ls.released:
                continue
            params = lsp.LogMessageParams(
                type=self.LEVELS.get(record.levelno, lsp.MessageType.Log),
                message=self.format(record))
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(ls.window_log_message, params)


CLIENT_LOG = _ClientLogHandler()


CLIENT_LOG.setFormatter(logging.Formatter("%(message)s"))


class _AnsweredErrorsInOneLine(logging.Filter):
    """pygls logs every error answer with its traceback; an answer the contract expects (a
    refused folder, bad params: anything but an internal error) is the user's mistake, not
    ours, and gets one line in the daemon's log instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, JsonRpcException) and error.code != JsonRpcInternalError.CODE:
            record.msg, record.args = f"{record.getMessage()}: {error}", ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("pygls.protocol.json_rpc").addFilter(_AnsweredErrorsInOneLine())
