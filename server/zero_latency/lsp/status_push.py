"""`zl/status`: the server pushes `docs/status` when it changes (throttled, coalesced, only when it
differs from the last one sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine (numpy, Qdrant, ONNX Runtime) loads after `initialize`
    from .session import ZeroLatencyServer
    pass

log = logging.getLogger("zero_latency")


#: At most one zl/status every this many seconds (the contract's "~2/s").
STATUS_PUSH_INTERVAL_S = 0.5


#: docs/status states in which the status will change again without a hook announcing it.
_BUSY_STATES = frozenset({"loading", "loadingModel", "indexing"})


class _StatusPush:
    """One connection's zl/status pushes: throttled, coalesced and sent only when the object
    differs from the last one sent. While the status says work is under way (not idle, or
    files pending) it looks again after the interval, so the end of work nobody announces (an
    edit's re-index, another client's run) is pushed too; once idle it waits for a hook."""

    def __init__(self, ls: ZeroLatencyServer) -> None:
        self.ls = ls
        self.last_sent: dict[str, Any] | None = None
        self.last_push_at = -STATUS_PUSH_INTERVAL_S
        self.timer: asyncio.TimerHandle | None = None
        self.sending = False
        self.again = False  # a change arrived while a status was being read

    def changed(self) -> None:
        if self.ls.released or self.ls.engine is None:
            return
        if self.sending:
            self.again = True
        elif self.timer is None:
            delay = max(0.0, self.last_push_at + STATUS_PUSH_INTERVAL_S - time.monotonic())
            self.timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.sending = True
        self.ls.spawn(self._send())

    async def _send(self) -> None:
        busy = False
        try:
            # The very object docs/status answers (the handler is a plain coroutine).
            from .requests import docs_status  # here: requests imports the session first

            status = await docs_status(self.ls, None)
            state = status.get("state")
            engine = self.ls.engine
            busy = (state in _BUSY_STATES or bool(status.get("pendingFiles")) or (
                state == "embedding" and engine is not None and engine.busy()))
            if status != self.last_sent and not self.ls.released:
                self.ls.protocol.notify("zl/status", status)
                self.last_sent = status
        except Exception as err:  # a push is best effort: never a failure loop
            log.debug("zl/status not sent: %r", err)
        finally:
            self.last_push_at = time.monotonic()
            self.sending = False
            if self.again or busy:
                self.again = False
                self.changed()


_STATUS_PUSHES: weakref.WeakKeyDictionary[ZeroLatencyServer, _StatusPush] = (
    weakref.WeakKeyDictionary())


def _status_changed(ls: ZeroLatencyServer) -> None:
    """Hook: something docs/status reports may have changed (an index run began, progressed or
    ended, the model loaded, background work failed). Event loop thread only: workers hop
    here with `loop.call_soon_threadsafe`."""
    push = _STATUS_PUSHES.get(ls)
    if push is None:
        push = _STATUS_PUSHES[ls] = _StatusPush(ls)
    push.changed()


def _status_changed_threadsafe(loop: asyncio.AbstractEventLoop, ls: ZeroLatencyServer) -> None:
    """`_status_changed` from a worker thread; a closed loop (the client left) is ignored."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_status_changed, ls)
