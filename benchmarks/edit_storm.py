"""Search latency during an edit storm (issue 10 item 16), against a real `zl serve`.

Opens `--docs` documents of a workspace, measures search latency with no edits (the
baseline), then again while another thread sends `--edits` didChange notifications spread
over the documents as fast as the pipe takes them (the attack: 2,000 in 17 s on 50 open
documents), and prints both p50/p95/max and the ratio of the p95s (target: <= 2).

    python benchmarks/edit_storm.py ../shared/data/corpora/tldr-pages/common --store /tmp/zl-s
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.sidecar import QUERIES, percentile
from tests.rpc import RawServer


class LockedServer(RawServer):
    """RawServer whose frames can be sent from two threads."""

    def __init__(self) -> None:
        self._send_lock = threading.Lock()
        super().__init__()

    def send_bytes(self, data: bytes) -> None:
        with self._send_lock:
            super().send_bytes(data)


def measure(server: RawServer, searches: int, stop: threading.Event | None = None,
            first: int = 0) -> list[float]:
    """Sequential searches, each query text new (no query-embedding cache hits)."""
    times = []
    for n in range(first, first + searches):
        if stop is not None and stop.is_set():
            break
        t = time.perf_counter()
        reply = server.request("docs/search", {"query": f"{QUERIES[n % len(QUERIES)]} {n}",
                                               "limit": 10}, timeout=120)
        times.append((time.perf_counter() - t) * 1000)
        assert "result" in reply, reply
    return times


def summary(times: list[float]) -> str:
    return (f"p50 {percentile(times, 0.5):7.1f} ms  p95 {percentile(times, 0.95):7.1f} ms  "
            f"max {max(times):7.1f} ms  ({len(times)} searches)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a folder of Markdown files")
    parser.add_argument("--store", type=Path, help="storePath (default: a temp folder)")
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--edits", type=int, default=2000)
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--debounce-ms", type=int, default=300)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="zl-storm-"))
    ws = scratch / "ws"
    ws.mkdir()
    for path in sorted(args.source.rglob("*.md"))[: args.docs]:
        shutil.copy(path, ws / path.name)
    docs = sorted(ws.glob("*.md"))
    server = LockedServer()
    init = server.request("initialize", {
        "processId": None, "rootUri": ws.as_uri(),
        "workspaceFolders": [{"uri": ws.as_uri(), "name": ws.name}],
        "capabilities": {},
        "initializationOptions": {"model": "bundled",
                                  "storePath": str(args.store or scratch / "store"),
                                  "debounceMs": args.debounce_ms}})
    assert "result" in init, init
    server.notify("initialized", {})
    index = server.request("docs/index", {}, timeout=3600)["result"]
    texts = {}
    for path in docs:
        texts[path] = path.read_text(encoding="utf-8")
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": path.as_uri(), "languageId": "markdown", "version": 1,
            "text": texts[path]}})
    measure(server, 10, first=10**6)  # warm-up
    baseline = measure(server, args.searches)

    stop = threading.Event()
    sent = [0]

    def storm() -> None:
        started = time.perf_counter()
        for n in range(args.edits):
            path = docs[n % len(docs)]
            line = texts[path].count("\n")
            added = f"\nEdit {n} mentions storm{n} in passing.\n"
            texts[path] += added
            change: dict[str, Any] = {"range": {"start": {"line": line, "character": 0},
                                                "end": {"line": line, "character": 0}},
                                      "text": added}
            server.notify("textDocument/didChange", {
                "textDocument": {"uri": path.as_uri(), "version": 2 + n // len(docs)},
                "contentChanges": [change]})
            sent[0] += 1
            # The attack's pace: 2,000 edits in about 17 s.
            time.sleep(max(0.0, started + (n + 1) * 0.0085 - time.perf_counter()))
        stop.set()

    writer = threading.Thread(target=storm, daemon=True)
    storm_started = time.perf_counter()
    writer.start()
    during = measure(server, 10**9, stop, first=args.searches)
    writer.join()
    storm_s = time.perf_counter() - storm_started
    last = f"storm{args.edits - 1}"
    deadline = time.monotonic() + 300
    while not server.request("docs/search", {"query": last, "mode": "keyword"}
                             )["result"]["hits"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the last edit never became searchable")
        time.sleep(0.05)
    settled_s = time.perf_counter() - storm_started
    code = server.close()
    shutil.rmtree(scratch, ignore_errors=True)

    print(f"workspace: {len(docs)} open documents, {index['chunks']} chunks; "
          f"{sent[0]} didChange in {storm_s:.1f} s; last edit searchable after "
          f"{settled_s:.1f} s; server exit {code}")
    print(f"no edits:   {summary(baseline)}")
    print(f"edit storm: {summary(during)}")
    ratio = percentile(during, 0.95) / percentile(baseline, 0.95)
    print(f"p95 during storm / p95 without edits = {ratio:.2f} (target <= 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
