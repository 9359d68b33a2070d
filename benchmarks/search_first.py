"""Search first, for every client (issue 20): searches while another client's index run goes on,
against the same searches with no run, in one run of this script.

1. `zl index WORKSPACE` from nothing, in the background (another client's run); once its
   keyword pass is done (every file keyword-searchable, the backfill embedding), CLIENTS
   concurrent clients (daemon sessions, as `zl search` and editors open them) each send
   QUERIES searches: latency per search, p50/p95, keyword and hybrid; and `zl search` as a
   whole process, p50.
2. The daemon is stopped (the run with it: it resumes later, nothing lost) and started again
   with no run: the same searches on the same index (same keyword chunks, about the same
   embedded share), the same figures.
Printed: both, and the ratios during/without (targets: p95 <= 2x, whole `zl search` <= 2x).
Everything runs with its own ZL_RUNTIME_DIR, data and config dirs; its daemon is stopped.

    python benchmarks/search_first.py ../shared/data/corpora/peps
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

ZL = [sys.executable, "-m", "zero_latency"]
QUESTIONS = ["how are exceptions chained", "type hints for generic classes",
             "the walrus operator", "what is a coroutine", "deprecating a module",
             "string formatting with f-strings", "pattern matching on classes",
             "the global interpreter lock", "unicode identifiers", "packaging metadata"]


def status(ws: Path) -> dict[str, Any]:
    done = subprocess.run([*ZL, "status", "--workspace", str(ws), "--json"],
                          capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout) if done.returncode == 0 else {}
    return result


def sessions_search(ws: Path, clients: int, queries: int, mode: str) -> list[float]:
    """Each of `clients` threads opens a daemon session (as `zl search` does) and sends
    `queries` searches; the latency of every search."""
    from zero_latency.client import open_session

    def one(n: int) -> list[float]:
        client = open_session([ws], {"indexOnStart": False, "findIndexedRoot": True})
        times = []
        try:
            for k in range(queries):
                query = QUESTIONS[(n + k) % len(QUESTIONS)]
                began = time.perf_counter()
                client.request("docs/search", {"query": query, "mode": mode})
                times.append(time.perf_counter() - began)
        finally:
            client.close()
        return times

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return [t for times in pool.map(one, range(clients)) for t in times]


def whole_searches(ws: Path, count: int) -> list[float]:
    times = []
    for k in range(count):
        began = time.perf_counter()
        subprocess.run([*ZL, "search", QUESTIONS[k % len(QUESTIONS)], "--workspace", str(ws),
                        "--json"], capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return times


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def measure(ws: Path, args: argparse.Namespace) -> dict[str, float]:
    sessions_search(ws, 1, 2, "hybrid")  # warm: the model and the store loaded, not timed
    figures: dict[str, float] = {}
    for mode in ("keyword", "hybrid"):
        times = sessions_search(ws, args.clients, args.queries, mode)
        figures[f"{mode} p50"] = p(times, 50) * 1000
        figures[f"{mode} p95"] = p(times, 95) * 1000
    figures["zl search p50"] = statistics.median(whole_searches(ws, args.whole)) * 1000
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--queries", type=int, default=5, help="searches per client and mode")
    parser.add_argument("--whole", type=int, default=10, help="whole `zl search` processes")
    args = parser.parse_args()
    from zero_latency import daemon

    base = Path(tempfile.mkdtemp(prefix="zl-sf-", dir="/tmp"))
    runtime = base / "rt"
    runtime.mkdir(mode=0o700)
    config = base / "config.toml"
    config.write_text(f'model = "bundled"\nstorePath = "{base / "store"}"\n')
    os.environ.update({"ZL_RUNTIME_DIR": str(runtime), "ZL_CONFIG": str(config),
                       "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME",
                                                        str(Path.home() / ".cache"))})
    ws = args.workspace.resolve()
    load = os.getloadavg()[0]
    run = subprocess.Popen([*ZL, "index", str(ws)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 1800
        while not ((s := status(ws)).get("state") == "indexing"
                   and s.get("embeddedChunks", 0) > 0):
            if time.monotonic() > deadline or run.poll() is not None:
                raise SystemExit("the run never reached its backfill")
            time.sleep(0.5)
        during = measure(ws, args)
        still = run.poll() is None
        embedded = status(ws).get("embeddedChunks", 0)
    finally:
        run.kill()
        run.wait()
        daemon.stop(runtime)
    without = measure(ws, args)  # a new daemon, no run (the backfill waits for the next one)
    after = status(ws)
    daemon.stop(runtime)
    print(f"{ws.name}: {after.get('files')} files, {after.get('keywordChunks')} keyword chunks, "
          f"{embedded}/{after.get('embeddedChunks')} embedded (during/without); load {load:.1f}; "
          f"the run still going after the searches: {still}")
    print(f"{'':16}{'during a run':>14}{'no run':>10}{'ratio':>8}")
    for key, value in during.items():
        print(f"{key:16}{value:12.1f} ms{without[key]:8.1f} ms{value / without[key]:7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
