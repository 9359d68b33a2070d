"""Cold start as an editor sees it: `zl serve` started, `initialize` sent at once, time until
its answer; then `initialized` and a first `docs/search`, time from the initialize answer to
the search's answer (the engine, the model and the store open meanwhile).

Two cases, interleaved (cold, warm, cold, warm, ...) so that the machine's load hits both alike:
- **cold**: no daemon runs (a fresh ZL_RUNTIME_DIR): the bridge starts one;
- **warm**: a daemon of the same environment already runs (started by a first `zl serve` that
  stays attached), so the bridge only attaches.

Every run has its own runtime, data, cache and config folders (HOME is left alone so the
bundled model and the Hugging Face cache resolve as for a user); its daemons are stopped at
the end. Prints each case's medians and the ratios cold / warm, with the load (`uptime`)
before and after.

    python benchmarks/cold_start.py --runs 10
    python benchmarks/cold_start.py --runs 10 --workspace ../shared/data/corpora/rust-book
    git worktree add --detach /tmp/zl-old <commit> &&
        python benchmarks/cold_start.py --runs 10 --baseline-source /tmp/zl-old/server
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
import threading
import time
from pathlib import Path
from typing import Any

ZL = [sys.executable, "-m", "zero_latency"]
DEFAULT_WORKSPACE = Path(__file__).resolve().parents[1] / "tests" / "data"


class Serve:
    """A `zl serve` process driven over its stdio, messages read on a thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([*ZL, "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env)
        self.answers: dict[Any, tuple[float, dict[str, Any]]] = {}
        self.ready = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            header = out.readline()
            if not header:
                return
            if not header.lower().startswith(b"content-length:"):
                continue
            length = int(header.split(b":")[1])
            while out.readline().strip():
                pass
            message = json.loads(out.read(length))
            if "id" in message and "method" not in message:
                with self.ready:
                    self.answers[message["id"]] = (time.perf_counter(), message)
                    self.ready.notify_all()
            elif "id" in message:  # a request from the server: answer it (null result)
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, msg_id: int, method: str, params: Any, timeout: float = 300) -> float:
        """Send a request; the seconds from this process's start to its answer."""
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        with self.ready:
            if not self.ready.wait_for(lambda: msg_id in self.answers, timeout):
                raise TimeoutError(f"no answer to {method} within {timeout} s")
            at, answer = self.answers[msg_id]
        if "error" in answer:
            raise RuntimeError(f"{method} failed: {answer['error']}")
        return at - self.started

    def close(self) -> None:
        try:
            self.request(99, "shutdown", None, timeout=30)
            self.send({"jsonrpc": "2.0", "method": "exit"})
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def session(env: dict[str, str], workspace: Path, query: str) -> tuple[float, float]:
    """One editor session: (start -> initialize answered, start -> first search answered)."""
    serve = Serve(env)
    try:
        t_init = serve.request(1, "initialize", {
            "processId": os.getpid(), "rootUri": workspace.as_uri(),
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": workspace.name}],
            "capabilities": {}, "initializationOptions": {"model": "bundled"}})
        serve.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        t_search = serve.request(2, "docs/search", {"query": query, "limit": 5})
        return t_init, t_search
    finally:
        serve.close()


def environment(root: Path) -> dict[str, str]:
    env = {**os.environ, "ZL_RUNTIME_DIR": str(root / "run"),
           "XDG_DATA_HOME": str(root / "data"), "XDG_CACHE_HOME": str(root / "cache"),
           "XDG_CONFIG_HOME": str(root / "config")}
    env.pop("ZL_CONFIG", None)
    for name in ("run", "data", "cache", "config"):
        (root / name).mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


def stop_daemon(env: dict[str, str]) -> None:
    subprocess.run([*ZL, "daemon", "stop"], env=env, capture_output=True, timeout=120,
                   check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE)
    parser.add_argument("--query", default="how do I configure the server")
    parser.add_argument("--baseline-source", type=Path, metavar="DIR",
                        help="also a cold case run from another checkout's server/ folder "
                             "(PYTHONPATH), interleaved: e.g. a `git worktree` of an older "
                             "commit; printed as 'cold baseline' with its ratio to 'cold'")
    args = parser.parse_args()
    workspace = args.workspace.resolve()
    load_before = subprocess.run(["uptime"], capture_output=True, text=True,
                                 check=False).stdout.strip()
    base = Path(tempfile.mkdtemp(prefix="zl-cold-", dir="/tmp"))
    results: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    if args.baseline_source:
        results["cold baseline"] = []
    warm_env = environment(base / "warm")
    holder: Serve | None = None
    try:
        # The warm case's daemon: a first editor that stays attached, its index built.
        holder = Serve(warm_env)
        holder.request(1, "initialize", {"processId": os.getpid(),
                                         "rootUri": workspace.as_uri(), "capabilities": {},
                                         "initializationOptions": {"model": "bundled"}})
        holder.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        holder.request(2, "docs/search", {"query": args.query, "limit": 5})
        for run in range(args.runs):
            cold_root = base / f"cold-{run}"
            # Folders of its own (the warm daemon holds its store's lock); the model's
            # optimised graph is found in the home folder's cache as for a user's new dirs.
            cold_env = environment(cold_root)
            results["cold"].append(session(cold_env, workspace, args.query))
            stop_daemon(cold_env)
            results["warm"].append(session(warm_env, workspace, args.query))
            if args.baseline_source:
                old_env = {**environment(base / f"old-{run}"),
                           "PYTHONPATH": str(args.baseline_source.resolve())}
                results["cold baseline"].append(session(old_env, workspace, args.query))
                stop_daemon(old_env)
    finally:
        if holder is not None:
            holder.close()
        stop_daemon(warm_env)
        for run in range(args.runs):
            for name in ("cold", "old"):
                if (base / f"{name}-{run}").exists():
                    stop_daemon(environment(base / f"{name}-{run}"))
        shutil.rmtree(base, ignore_errors=True)
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"workspace {workspace}, {args.runs} runs each, interleaved")
    print(f"load before: {load_before}\nload after:  {load.strip()}")
    medians: dict[str, dict[str, float]] = {}
    for case, pairs in results.items():
        columns = {"start -> initialize answered": [p[0] * 1000 for p in pairs],
                   "initialize answered -> first search answered":
                       [(p[1] - p[0]) * 1000 for p in pairs],
                   "start -> first search answered": [p[1] * 1000 for p in pairs]}
        medians[case] = {name: statistics.median(v) for name, v in columns.items()}
        for name, values in columns.items():
            print(f"{case}: {name:45s} median {statistics.median(values):7.1f} ms  "
                  f"(min {min(values):.1f}, max {max(values):.1f})")
    for name in medians["cold"]:
        print(f"cold / warm, {name}: {medians['cold'][name] / medians['warm'][name]:.2f}x")
    if "cold baseline" in medians:
        print(f"baseline: {args.baseline_source}")
        for name in medians["cold"]:
            print(f"cold / cold baseline, {name}: "
                  f"{medians['cold'][name] / medians['cold baseline'][name]:.2f}x")
    print(f"target: cold initialize <= 300 ms: "
          f"{medians['cold']['start -> initialize answered']:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
