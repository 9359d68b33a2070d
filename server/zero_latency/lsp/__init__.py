"""The language server: one pygls 2.x server per client connection, over the engines of the
process (`hub.EngineHub`).

The same handlers serve a connection on stdio (`zl serve --no-daemon`) and every connection
of the per-user daemon (`daemon.py`). Handlers stay thin: they validate params
(protocol/schema.json), hop to the engine's threads and translate errors to the contract's
JSON-RPC codes. Nothing here blocks the asyncio loop. Messages are framed by `framing.py`, not
by pygls's reader, so that a mis-framed message cannot wedge the connection. On stdio, stdout
carries protocol messages only; logs go to stderr and window/logMessage.

One module a concern, read in this order: `session` (the protocol subclass, the session object,
the handler registry), `lifecycle` (hello, initialize, initialized, shutdown), `requests` (the
`docs/*` requests, `workspace/symbol`), `docsync` (buffers and workspace events),
`status_push` (`zl/status`), `plumbing` (validation, errors, uris, messages), `logs` (logging
to clients and to the daemon's log), `serve` (framing, dispatch, a connection's loop).
"""

from __future__ import annotations

# Importing the handler modules registers their handlers (`session.feature`).
from . import docsync, lifecycle, requests  # noqa: F401
from .logs import CLIENT_LOG
from .plumbing import _rpc_error
from .serve import _StreamWriter, serve, serve_connection
from .session import ZeroLatencyServer, create_server
from .status_push import STATUS_PUSH_INTERVAL_S

__all__ = ["CLIENT_LOG", "STATUS_PUSH_INTERVAL_S", "ZeroLatencyServer", "_StreamWriter",
           "_rpc_error", "create_server", "serve", "serve_connection"]
