"""Small helpers every handler uses: params validation, the contract's errors, uri to path, messages
to the client.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp
from pygls.capabilities import get_capability
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from ..errors import ZeroLatencyError
from ..frontdoor import uri_path

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from .session import ZeroLatencyServer
    pass

log = logging.getLogger("zero_latency")


def _validated(method: str, params: Any) -> dict[str, Any]:
    from ..protocol import validate_params

    try:
        return validate_params(method, params)
    except ZeroLatencyError as err:
        raise JsonRpcInvalidParams(err.message) from err


def _checked_text(method: str, field: str, value: str) -> str:
    """`value` if it is valid text (JSON allows a lone surrogate; nothing after this does)."""
    from ..protocol import check_text

    try:
        return check_text(method, field, value)
    except ZeroLatencyError as err:
        raise JsonRpcInvalidParams(err.message) from err


def _quote(value: str) -> str:
    from ..protocol import quote

    return quote(value)


def _rpc_error(err: ZeroLatencyError) -> JsonRpcException:
    """The contract's error object: application failures are RequestFailed with `data.kind`."""
    return JsonRpcException(err.message, code=err.code, data=err.wire_data())


def _uri_path(uri: str) -> Path | None:
    """The canonical path of a file uri (frontdoor.uri_path: initialize's folders are read
    there too, before the server has loaded)."""
    return uri_path(uri)


def _document_key(uri: str) -> str:
    """What pending edits are keyed by: the file, not the spelling of its uri."""
    path = _uri_path(uri)
    return str(path) if path is not None else uri


def _disk_state(path: Path, text: str, max_bytes: int) -> str:
    """Blocking (call off the loop): "same" when the file on disk holds `text`, "special"
    when the path is no regular file (never read: a FIFO would block), else "differs"."""
    from ..chunking import normalise_newlines
    from ..files import SkipFile, open_regular

    try:
        with open_regular(path) as file:
            data = file.read(max_bytes + 1)
    except SkipFile:
        return "special"
    except OSError:
        return "differs"
    try:
        disk = data.decode("utf-8")
    except UnicodeDecodeError:
        return "differs"
    return "same" if normalise_newlines(disk) == normalise_newlines(text) else "differs"


def _supports(ls: ZeroLatencyServer, dotted: str) -> bool:
    """A client capability, by its dotted snake_case path (False where any part is unset)."""
    return bool(get_capability(ls.client_capabilities, dotted, False))


def _show_threadsafe(ls: ZeroLatencyServer, message: str, kind: lsp.MessageType) -> None:
    """window/showMessage from a worker thread (the engine warns from its threads)."""
    log.warning("%s", message)
    loop = ls.main_loop
    if loop is None:
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(lambda: ls.window_show_message(
            lsp.ShowMessageParams(type=kind, message=message)))


def _show(ls: ZeroLatencyServer, message: str, kind: lsp.MessageType) -> None:
    log.warning("%s", message)
    # Not connected (shutdown): the log line above is enough.
    with contextlib.suppress(Exception):
        ls.window_show_message(lsp.ShowMessageParams(type=kind, message=message))
