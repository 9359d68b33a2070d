"""The shared daemon as its clients see it: editors (`zl serve`), the CLI and an agent (`zl mcp`).

Measures, in one run, on an existing index of WORKSPACE (indexed first if needed):
- `zl search` as a whole process (start to exit), p50 over N queries: with a warm daemon that
  an editor is attached to, against `zl search --no-daemon` (loads the model every time);
  and that the CLI's hits equal the editor's, an unsaved edit included;
- a second editor on the indexed workspace: chunks embedded (target 0) and the RSS of its
  `zl serve` (target < 50 MB) next to the daemon's;
- `shutdown` and stdin EOF during an index run: time until `zl serve` exits, over TRIALS each;
- `zl mcp` driven by the MCP SDK's client over stdio: search round trip p50.

    python benchmarks/daemon.py ../shared/data/corpora/peps --store /tmp/zl-peps
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.sidecar import QUERIES, rss_mb
from tests.rpc import started
from zero_latency import daemon

ZL = [sys.executable, "-m", "zero_latency"]


def cli_search(args: argparse.Namespace, query: str, *extra: str) -> tuple[float, Any]:
    began = time.perf_counter()
    done = subprocess.run([*ZL, "search", query, "--json", "--model", args.model,
                           "--store-path", str(args.store), *extra],
                          capture_output=True, text=True, cwd=args.workspace, check=True)
    return time.perf_counter() - began, json.loads(done.stdout)


def wait_for(check: Any, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)
    return value


def exit_times(args: argparse.Namespace, how: str) -> list[float]:
    """Start a --force index run through one editor, then end a second editor mid-run."""
    times = []
    for _ in range(args.trials):
        runner = started(args.workspace, args.store)
        runner.send({"jsonrpc": "2.0", "id": "long", "method": "docs/index",
                     "params": {"force": True}})
        editor = started(args.workspace, args.store)
        wait_for(lambda e=editor: e.request("docs/status")["result"]["state"] == "indexing")
        began = time.perf_counter()
        if how == "eof":
            assert editor.proc.stdin is not None
            editor.proc.stdin.close()
        else:
            editor.request("shutdown")
            editor.notify("exit")
        editor.proc.wait(timeout=60)
        times.append(time.perf_counter() - began)
        runner.proc.kill()  # its run goes on in the daemon; the next trial's force restarts it
        runner.proc.wait()
    return times


def mcp_latency(args: argparse.Namespace) -> list[float]:
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    env = {k: v for k, v in os.environ.items() if k.startswith(("ZL_", "HOME", "PATH"))}
    params = StdioServerParameters(
        command=sys.executable, env=env, cwd=str(args.workspace),
        args=["-m", "zero_latency", "mcp", "--model", args.model, "--store-path",
              str(args.store)])

    async def run() -> list[float]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await session.call_tool("status", {})
            out = []
            for query in QUERIES:
                began = time.perf_counter()
                result = await session.call_tool("search", {"query": query, "limit": 10})
                out.append(time.perf_counter() - began)
                assert not result.is_error, result.content
            return out

    return anyio.run(run)


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    args.workspace = args.workspace.resolve()
    runtime = Path(tempfile.mkdtemp(prefix="zl-bench-", dir="/tmp"))
    os.environ[daemon.RUNTIME_DIR_ENV] = str(runtime)
    try:
        editor = started(args.workspace, args.store)
        report = editor.request("docs/index", {}, timeout=7200)["result"]
        print(f"workspace: {report['files']} files, {report['chunks']} chunks")
        queries = QUERIES[:args.queries]

        warm = [cli_search(args, q)[0] for q in queries]
        # --no-daemon cannot open the store the daemon holds: measure it on a copy.
        copy = Path(tempfile.mkdtemp(prefix="zl-copy-"))
        shutil.copytree(args.store, copy, dirs_exist_ok=True)
        cold_args = argparse.Namespace(**{**vars(args), "store": copy})
        cold = [cli_search(cold_args, q, "--no-daemon")[0] for q in queries]
        print(f"zl search, whole process: warm daemon {ms(warm)}; --no-daemon {ms(cold)}; "
              f"ratio {statistics.median(cold) / statistics.median(warm):.1f}x")

        same = all(
            [h["uri"] for h in cli_search(args, q)[1]["hits"]]
            == [h["uri"] for h in editor.request("docs/search", {"query": q})["result"]["hits"]]
            for q in queries[:3])
        target = next(args.workspace.rglob("*.*"))
        editor.notify("textDocument/didOpen", {"textDocument": {
            "uri": target.as_uri(), "languageId": "markdown", "version": 1,
            "text": target.read_text(errors="replace") + "\n\nzebrafinch quasar\n"}})
        wait_for(lambda: cli_search(args, "zebrafinch quasar", "--mode", "keyword")[1]["hits"])
        print(f"CLI hits equal the editor's: {same}; an unsaved edit found by the CLI: True")

        second = started(args.workspace, args.store)
        again = second.request("docs/index", {}, timeout=7200)["result"]
        pid = daemon.running_pid(runtime)
        assert pid is not None
        print(f"second editor: {again['embeddedChunks']} chunks embedded (target 0); zl serve "
              f"RSS {rss_mb(second.proc.pid)[0]:.0f} MB (target < 50); daemon RSS "
              f"{rss_mb(pid)[0]:.0f} MB")
        second.close()

        for how in ("shutdown", "eof"):
            times = exit_times(args, how)
            print(f"{how} during an index run to exit, {len(times)} trials: {ms(times)} "
                  "(target < 1 s)")

        print(f"zl mcp search round trip: {ms(mcp_latency(args))}")
        editor.close()
    finally:
        daemon.stop(runtime)
        shutil.rmtree(runtime, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
