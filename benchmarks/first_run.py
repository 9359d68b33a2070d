"""First run on a big workspace (issue 14), through the wire contract: a real `zl serve
--no-daemon` process on an empty store, timed from `initialized`.

Per corpus it measures:
- time to the first keyword hit for a word found only in the LAST file the walk reaches;
- time until every file is keyword-searchable (the keyword pass's last progress report);
- the dense backfill's rate (from its `$/progress` reports, over `--backfill-seconds`) against
  the engine's embedder alone on the same corpus's chunks (what benchmarks/embed.py measures),
  run in this process right after the server is stopped;
- how long an opened file (late in the backfill's order) waits for its dense vectors;
- kill -9 at ~50% of the backfill on the first `--kill-files` files of the corpus, restart:
  chunks embedded again (the restart's embedding minus what was missing).

    python benchmarks/first_run.py --corpus ../shared/data/corpora/tldr-pages
    python benchmarks/first_run.py --corpus ../shared/data/corpora/peps --backfill-seconds 60

The keyword pass alone (`--keyword-only`), through the wire, against another tree's server
beside it (`--baseline-tree`: a folder holding that tree's `server/`, e.g. `git archive HEAD
server | tar -x -C /tmp/zl-base`), runs interleaved, figures as ratios to the baseline:

    python benchmarks/first_run.py --corpus ../shared/data/corpora/tldr-pages --keyword-only \
        --baseline-tree /tmp/zl-base --rounds 3
    python benchmarks/first_run.py --tldr-all 45834 --keyword-only --baseline-tree /tmp/zl-base

Measured 2026-12-05 (2 cores, shared), this tree against the one before the keyword pass's
BM25 analysis moved into the chunking workers (61a84fe), interleaved:

    tldr-pages, 2 rounds, load 3-6: every file keyword-searchable 7.62 vs 11.16 s (0.68x),
      CPU 12.5 vs 13.0 s; again at load 5-6 (searches only near the end): 8.97 vs 10.66 s
      (0.84x), CPU 11.6 vs 11.6 s.
    --tldr-all 45834, 1 round, load 6-10: 85.4 vs 146.5 s (0.58x), CPU 93.3 vs 129.6 s;
      again with searches only near the end and sparse.detect's letter check (83fed2e),
      load 6-9: 68.6 vs 119.5 s (0.57x), CPU 85.6 vs 111.6 s.

`--tldr-all N` builds issue 22's big workspace in the temp folder: tldr pages "in every
language" as a user's clone of tldr-pages/tldr has them (~45k pages), from what ../shared
holds: the English pages (`pages/`) and the German, Chinese, Korean and Russian ones
(`pages.de` …), then further copies of the translated pages (`pages.de.2` …), each copied
file with a planted line of its own (`zlmark` and letters that number it) so that no two files
are the same text, until N files. The last file the walk reaches is found by its marker.

The machine this runs on may be shared: say so next to the figures.

Measured 2026-12-03 (2 cores, shared, load ≈ 1.5–3; bundled int8 MiniLM):

    tldr-pages: first keyword hit of the last file 11.3 s, every file keyword-searchable
      11.1 s (26.8 s on 2026-11-26 at load ≈ 4, chunking in one process); opened file
      embedded 0.14 s; backfill 29.9 vs embedder alone 23.9 chunks/s (the load moved between
      the two runs: no loss, not a precise ratio); kill -9 at half the backfill of 300 files
      (413 chunks): 208 embedded before, 205 after, 0 twice.
    peps (--kill-files 0 --backfill-seconds 30), back to back with the tree before the opened
      file's embedding became urgent (both chunking in one process, before chunk_pool.py):
      every file keyword-searchable 19.3 s (21.8 s before); opened file embedded 0.16 s
      (1.39 s before). benchmarks/keyword_pass.py has the keyword pass with the workers.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from zero_latency.config import Settings
from zero_latency.embedder import OnnxEmbedder
from zero_latency.engine import Engine
from zero_latency.files import WorkspaceFilter
from zero_latency.models import resolve_model
from zero_latency.stores import EdgeStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed import real_chunks

T = TypeVar("T")
SERVE = [sys.executable, "-m", "zero_latency", "serve", "--no-daemon"]
WORD = re.compile(r"[a-z]{6,}")


class Server:
    """A `zl serve --no-daemon` process and a JSON-RPC client that timestamps notifications."""

    def __init__(self, root: Path, store: Path, env: dict[str, str], **options: Any) -> None:
        self.proc = subprocess.Popen(SERVE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.replies: dict[int, dict[str, Any]] = {}
        self.notes: list[tuple[float, dict[str, Any]]] = []
        self.cond = threading.Condition()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.request("initialize", {
            "processId": None, "rootUri": root.as_uri(),
            "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
            "capabilities": {"window": {"workDoneProgress": True}},
            "initializationOptions": {"model": "bundled", "storePath": str(store), **options}},
            timeout=300)
        self.cpu_at_start = cpu_seconds(self.proc.pid)
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        self.started = time.monotonic()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while header := out.readline():
            if not header.startswith(b"Content-Length:"):
                continue
            length = int(header.split(b":")[1])
            while out.readline().strip():
                pass
            message = json.loads(out.read(length))
            with self.cond:
                if "method" in message and "id" in message:  # server->client request
                    self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                elif "method" in message:
                    self.notes.append((time.monotonic(), message))
                else:
                    self.replies[message["id"]] = message
                self.cond.notify_all()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: Any = None, timeout: float = 120) -> Any:
        with self.cond:
            self.next_id += 1
            msg_id = self.next_id
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        with self.cond:
            if not self.cond.wait_for(lambda: msg_id in self.replies, timeout):
                raise TimeoutError(f"{method}: no reply in {timeout} s")
            reply = self.replies.pop(msg_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def progress(self) -> list[tuple[float, dict[str, Any]]]:
        with self.cond:
            return [(t, n["params"]["value"]) for t, n in self.notes
                    if n["method"] == "$/progress" and n["params"]["value"].get("kind") == "report"]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request("shutdown", timeout=60)
                self.send({"jsonrpc": "2.0", "method": "exit"})
                self.proc.wait(timeout=60)
            except (TimeoutError, OSError):
                self.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its children it has reaped (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def wait_for(check: Callable[[], T | None], seconds: float, what: str,
             every: float = 0.1) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {seconds} s")


def walk_order(root: Path) -> list[str]:
    """The files in the order the keyword pass walks them."""
    return [entry.rel for entry in WorkspaceFilter(root, Settings()).walk(root)]


def word_counts(root: Path, rels: list[str]) -> collections.Counter[str]:
    """In how many files each word occurs."""
    frequency: collections.Counter[str] = collections.Counter()
    for rel in rels:
        text = (root / rel).read_text(encoding="utf-8", errors="replace").lower()
        frequency.update(set(WORD.findall(text)))
    return frequency


def unique_word(root: Path, frequency: collections.Counter[str], target: str) -> str | None:
    """A word of `target` that no other file holds (so only that file answers it)."""
    own = WORD.findall((root / target).read_text(encoding="utf-8", errors="replace").lower())
    return next((w for w in own if frequency[w] == 1), None)


def last_with_unique_word(root: Path, order: list[str],
                          frequency: collections.Counter[str]) -> tuple[str, str, int]:
    """The file walked last among those holding a word of their own, that word, and how many
    files the walk reaches after it."""
    for behind, rel in enumerate(reversed(order)):
        word = unique_word(root, frequency, rel)
        if word is not None:
            return rel, word, behind
    raise SystemExit("no file has a word of its own: pick another corpus")


def hit_paths(server: Server, query: str, mode: str = "keyword") -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = server.request(
        "docs/search", {"query": query, "mode": mode, "limit": 10})["hits"]
    return hits


def embedded_done(message: str) -> int | None:
    match = re.match(r"([\d,]+)/([\d,]+) chunks embedded", message)
    return int(match.group(1).replace(",", "")) if match else None


def files_done(message: str) -> tuple[int, int] | None:
    """(done, total) of a keyword pass progress message ("1,234/7,425 path")."""
    done, _, rest = message.replace(",", "").partition("/")
    total = rest.split(" ", 1)[0]
    return (int(done), int(total)) if done.isdigit() and total.isdigit() else None


def keyword_pass(server: Server, last: str, word: str, out: dict[str, Any]) -> None:
    """Time the keyword pass: the last file's first keyword hit, then every file (the keyword
    pass's last progress report). Searches for the last file start once the pass reports
    NEAR_END of its files: asked 20 times a second from the start, they cost the server more
    than the pass they time (a search on a growing store, ~1,700 on the 45k workspace)."""
    def near_end() -> bool:
        for _, value in server.progress():
            message = value.get("message", "")
            counts = files_done(message)
            if "chunks embedded" in message or (counts and counts[0] >= NEAR_END * counts[1]):
                return True
        return False

    wait_for(near_end, 1800, "the keyword pass's last files", every=0.05)

    def found_last() -> bool:
        return any(h["path"] == last for h in hit_paths(server, word))

    wait_for(found_last, 1800, "the last file's keyword hit", every=0.05)
    out["firstKeywordHitOfLastFileS"] = round(time.monotonic() - server.started, 2)

    def keyword_pass_done() -> float | None:
        for t, value in server.progress():
            message = value.get("message", "")
            if "chunks embedded" in message:
                return t
            counts = files_done(message)
            if counts is not None and counts[0] == counts[1]:
                return t
        return None

    ended = wait_for(keyword_pass_done, 1800, "the keyword pass")
    out["everyFileKeywordSearchableS"] = round(ended - server.started, 2)
    # CPU seconds of the server and its chunking workers (reaped when the pass ends) up to
    # now: less at the mercy of a shared machine's load than the wall clock.
    out["cpuSecondsAtEnd"] = round(cpu_seconds(server.proc.pid) - server.cpu_at_start, 2)
    status = server.request("docs/status")
    out["keywordChunks"] = status["keywordChunks"]
    out["filesIndexed"] = status["files"]


#: The share of its files the keyword pass reports before the benchmark searches for the last.
NEAR_END = 0.9


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def keyword_rounds(corpus: Path, work: Path, env: dict[str, str], trees: dict[str, str | None],
                   rounds: int) -> dict[str, Any]:
    """The keyword pass alone, each tree's server in turn (interleaved rounds, a fresh store
    each), with the load average at each run's start; the medians as ratios to the first
    tree's (the baseline)."""
    order = walk_order(corpus)
    last, word, behind = last_findable(corpus, order)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for r in range(rounds):
        for name, tree in trees.items():
            run_env = dict(env)
            if tree is not None:
                run_env["PYTHONPATH"] = str(Path(tree) / "server")
            out: dict[str, Any] = {"loadAtStart": load_average()}
            server = Server(corpus, work / f"store-{name}-{r}", run_env)
            try:
                keyword_pass(server, last, word, out)
            finally:
                server.close()
                shutil.rmtree(work / f"store-{name}-{r}", ignore_errors=True)
            out["loadAtEnd"] = load_average()
            runs[name].append(out)
            print(name, json.dumps(out), file=sys.stderr)
    result: dict[str, Any] = {"corpus": str(corpus), "files": len(order), "lastFile": last,
                              "filesWalkedAfterIt": behind, "query": word, "runs": runs}
    for figure in ("everyFileKeywordSearchableS", "cpuSecondsAtEnd"):
        medians = {name: statistics.median(o[figure] for o in outs)
                   for name, outs in runs.items()}
        base = next(iter(medians))
        result[figure + "Median"] = medians
        result[figure + "RatioToBaseline"] = {name: round(m / medians[base], 3)
                                             for name, m in medians.items()}
    return result


def letters(n: int) -> str:
    """`n` in base 26, as letters (a word to every tokenizer, stemmer and language)."""
    out = ""
    while True:
        n, digit = divmod(n, 26)
        out = chr(ord("a") + digit) + out
        if not n:
            return out


def marker(copy: int, n: int) -> str:
    return f"zlmark{letters(copy)}q{letters(n)}"


PLANTED = re.compile(r"zlmark[a-z]+q[a-z]+")


def last_findable(root: Path, order: list[str]) -> tuple[str, str, int]:
    """The last file the walk reaches and a word only it holds: its planted marker, if it
    has one, else `last_with_unique_word`'s choice."""
    planted = PLANTED.findall((root / order[-1]).read_text(encoding="utf-8", errors="replace"))
    if planted:
        return order[-1], planted[0], 0
    return last_with_unique_word(root, order, word_counts(root, order))


#: The translated page folders of ../shared's tldr-pages-i18n.
I18N = ("pages.de", "pages.ko", "pages.ru", "pages.zh")


def build_tldr_all(data: Path, target: Path, files: int) -> Path:
    """Issue 22's "tldr pages, every language" workspace of `files` files (module docstring)."""
    english, i18n = data / "tldr-pages", data / "tldr-pages-i18n"
    if not english.is_dir() or not i18n.is_dir():
        raise SystemExit(f"--tldr-all needs {english} and {i18n}")
    made = 0

    def copy_tree(source: Path, into: Path, mark: int | None) -> None:
        nonlocal made
        for path in sorted(source.rglob("*.md")):
            if made >= files:
                return
            dest = into / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_bytes()
            if mark is not None:
                text += f"\n- Planted: {marker(mark, made)}\n".encode()
            dest.write_bytes(text)
            made += 1

    copy_tree(english, target / "pages", None)
    for lang in I18N:
        copy_tree(i18n / lang, target / lang, None)
    copy = 2
    while made < files:
        before = made
        for lang in I18N:
            copy_tree(i18n / lang, target / f"{lang}.{copy}", copy)
        if made == before:
            raise SystemExit("the corpora hold no pages to copy")
        copy += 1
    return target


def first_run(corpus: Path, work: Path, env: dict[str, str], backfill_seconds: float,
              baseline_chunks: int) -> dict[str, Any]:
    order = walk_order(corpus)
    frequency = word_counts(corpus, order)
    last, word, behind = last_with_unique_word(corpus, order, frequency)
    server = Server(corpus, work / "store", env)
    out: dict[str, Any] = {"corpus": str(corpus), "files": len(order), "lastFile": last,
                           "filesWalkedAfterIt": behind, "query": word}
    try:
        keyword_pass(server, last, word, out)
        # The backfill: watch its rate, and open a file it would reach last.
        watch_from = time.monotonic()
        time.sleep(min(10.0, backfill_seconds / 3))  # let the backfill reach its pace
        # The oldest file with a word of its own that search finds (a word only in markup,
        # a URL say, is not indexed): the backfill's order reaches it last.
        by_age = sorted(order, key=lambda r: (corpus / r).stat().st_mtime_ns)
        rel, own = next((r, w) for r in by_age
                        if (w := unique_word(corpus, frequency, r)) is not None
                        and any(h["path"] == r for h in hit_paths(server, w)))
        opened = corpus / rel
        server.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
            "textDocument": {"uri": opened.as_uri(), "languageId": "markdown", "version": 1,
                             "text": opened.read_text(encoding="utf-8")}}})
        sent = time.monotonic()

        def opened_embedded() -> bool:
            return any(h["path"] == rel and h["embedded"] for h in hit_paths(server, own))

        wait_for(opened_embedded, 120, "the opened file's vectors", every=0.05)
        out["openedFileEmbeddedS"] = round(time.monotonic() - sent, 2)
        remaining = backfill_seconds - (time.monotonic() - watch_from)
        if remaining > 0:
            time.sleep(remaining)
        points = [(t, n) for t, v in server.progress() if t >= watch_from
                  if (n := embedded_done(v.get("message", ""))) is not None]
        if len(points) >= 2:
            (t0, n0), (t1, n1) = points[0], points[-1]
            out["backfillChunksPerS"] = round((n1 - n0) / (t1 - t0), 1)
            out["backfillEmbeddedInWindow"] = n1
        out["embeddedAtStop"] = server.request("docs/status")["embeddedChunks"]
    finally:
        server.close()
        print(json.dumps(out), file=sys.stderr)  # kept if what follows fails
    out["embedderAloneChunksPerS"] = round(baseline(corpus, baseline_chunks), 1)
    if "backfillChunksPerS" in out:
        out["backfillVsEmbedder"] = round(out["backfillChunksPerS"]
                                          / out["embedderAloneChunksPerS"], 3)
    return out


def baseline(corpus: Path, chunks: int) -> float:
    """The engine's embedder alone on the corpus's chunks, in groups as the backfill sends."""
    files, _warning = resolve_model("bundled", "cpu", True)
    embedder = OnnxEmbedder(files, "cpu", 0, 0)
    try:
        texts = real_chunks(corpus, embedder, chunks, 256)
        embedder.embed(texts[:8])  # warm-up
        started = time.perf_counter()
        for at in range(0, len(texts), 32):
            embedder.embed(texts[at : at + 32])
        return len(texts) / (time.perf_counter() - started)
    finally:
        embedder.close()


def kill_and_resume(corpus: Path, work: Path, env: dict[str, str], files: int) -> dict[str, Any]:
    """kill -9 at ~50% of the backfill, restart: chunks embedded twice."""
    root = work / "subset"
    for rel in walk_order(corpus)[:files]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / rel, root / rel)
    store = work / "subset-store"
    first = Server(root, store, env)
    status = wait_for(lambda: (s := first.request("docs/status"))["keywordChunks"]
                      and s["embeddedChunks"] * 2 >= s["keywordChunks"] and s, 1800,
                      "half the backfill", every=0.05)
    first.kill()
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        kept = EdgeStore(engine.store_path(root), engine.model_fingerprint(), engine.dimension())
        before = kept.counts()
        kept.close()
    finally:
        engine.close()
    second = Server(root, store, env)
    try:
        report = second.request("docs/index", {}, timeout=3600)
    finally:
        second.close()
    missing = before.chunks - before.embedded
    return {"files": files, "chunks": before.chunks, "embeddedBeforeKill": before.embedded,
            "statusAtKill": status["embeddedChunks"], "embeddedAfterRestart":
            report["embeddedChunks"], "embeddedAgain": report["embeddedChunks"] - missing}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    corpus_arg = parser.add_mutually_exclusive_group(required=True)
    corpus_arg.add_argument("--corpus", type=Path)
    corpus_arg.add_argument("--tldr-all", type=int, metavar="FILES",
                            help="build the all-languages tldr workspace of FILES files")
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "corpora", help="the corpora folder (for --tldr-all)")
    parser.add_argument("--backfill-seconds", type=float, default=60)
    parser.add_argument("--baseline-chunks", type=int, default=512)
    parser.add_argument("--kill-files", type=int, default=300)
    parser.add_argument("--keyword-only", action="store_true",
                        help="time the keyword pass only (no backfill, no kill)")
    parser.add_argument("--baseline-tree", type=Path,
                        help="with --keyword-only: also run this tree's server (its server/)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zl-fr-", dir="/tmp"))
    env = {**os.environ, "ZL_RUNTIME_DIR": str(work / "run"),
           "XDG_DATA_HOME": str(work / "data"), "XDG_CACHE_HOME": str(work / "cache"),
           "XDG_CONFIG_HOME": str(work / "config")}
    env.pop("PYTHONPATH", None)
    try:
        corpus = (args.corpus.resolve() if args.corpus is not None
                  else build_tldr_all(args.data, work / "tldr-all", args.tldr_all))
        if args.keyword_only:
            trees: dict[str, str | None] = {}
            if args.baseline_tree is not None:
                trees["baseline"] = str(args.baseline_tree.resolve())
            trees["this tree"] = None
            result = keyword_rounds(corpus, work, env, trees, args.rounds)
        else:
            result = first_run(corpus, work, env, args.backfill_seconds, args.baseline_chunks)
            if args.kill_files:
                result["killAndResume"] = kill_and_resume(corpus, work, env, args.kill_files)
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
