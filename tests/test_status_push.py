"""`zl/status`: the server pushes the docs/status object when it changes (index run start,
progress and end, model loaded, background failure), at most ~2/s, so clients listen instead of
polling. Driven with the raw JSON-RPC client over a real `zl serve` on real Rust-book chapters.
"""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zero_latency.lsp import STATUS_PUSH_INTERVAL_S

from .rpc import RawServer, started

TIMEOUT_S = 300  # a cold index on a loaded two-core machine
#: Arrival times carry pipe and thread jitter: two pushes may be read closer together than they
#: were sent. Half the interval still tells throttled pushes from one per progress report.
MIN_GAP_S = STATUS_PUSH_INTERVAL_S / 2


class Pushes:
    """The zl/status notifications a raw server sends, with their arrival times."""

    def __init__(self, server: RawServer) -> None:
        self.server = server
        self.seen: list[tuple[float, dict[str, Any]]] = []

    def until(self, what: str, done: Callable[[dict[str, Any]], bool],
              timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        """Reads messages (answering the server's own requests) until a push satisfies `done`."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no zl/status {what} within {timeout_s} s: {self.seen[-3:]}")
            try:
                message = self.server.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if "method" in message and "id" in message:  # window/workDoneProgress/create
                self.server.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif message.get("method") == "zl/status":
                status: dict[str, Any] = message["params"]
                self.seen.append((time.monotonic(), status))
                if done(status):
                    return status


def _idle_with(files: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["state"] == "idle" and s["files"] == files and s["pendingFiles"] == 0


def test_status_is_pushed_through_an_index_run_at_most_twice_a_second(
        workspace: Path, tmp_path: Path) -> None:
    files = len(list(workspace.rglob("*.md")))
    server = started(workspace, tmp_path / "store")
    try:
        pushes = Pushes(server)
        # Start-up: the model loads, the first run indexes every file; the end is pushed.
        final = pushes.until("reporting the indexed workspace", _idle_with(files))
        states = [s["state"] for _, s in pushes.seen]
        assert states[0] in ("loadingModel", "indexing"), states  # pushed before the end
        assert final["chunks"] > 0 and final["model"]["dimension"] == 384, final

        # The same object docs/status answers.
        answered = server.request("docs/status", {}, timeout=60)["result"]
        assert answered == final

        # A forced run: pushed again when it starts, and when it ends.
        pushes.seen.clear()
        server.send({"jsonrpc": "2.0", "id": "force", "method": "docs/index",
                     "params": {"force": True}})
        pushes.until("for the forced run", lambda s: s["state"] == "indexing")
        pushes.until("after the forced run", _idle_with(files))

        # Never faster than the interval, and never the same object twice in a row.
        times = [at for at, _ in pushes.seen]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= MIN_GAP_S for gap in gaps), gaps
        objects = [s for _, s in pushes.seen]
        assert all(a != b for a, b in itertools.pairwise(objects)), objects
    finally:
        server.close()
