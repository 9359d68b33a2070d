"""Search latency per mode on one index, in one process: keyword, semantic and hybrid run the
same queries, interleaved (query by query, the modes in turn), so that a loaded machine slows
every mode alike and the ratios hold where absolute times do not.

The index is built in process (an Engine with its own store folder, no daemon), fully
embedded: a sample of tldr pages (`--corpus tldr`, the page descriptions as queries) or the
SciFact training corpus (`--corpus scifact`, its queries). `--workdir DIR` keeps the
workspace and the store there (a second run reuses them: nothing to index); default a
temporary folder.

Identical results. `--record FILE` writes every query's hits (path, ranges, score, raw score,
snippet, highlights) per mode and limit as JSON; `--compare FILE` checks this run's against
them, hit by hit (exit status 1 on any difference). Record before a change to the query path,
compare after, on the same `--workdir` (the same stored vectors).

Every query is embedded before timing (the embedder caches query vectors, so otherwise
the first mode to meet a query pays for its embedding): the times are the search path's.
`--embed` times what a new query costs instead: the embedder's query cache is emptied before
every timed search, so semantic and hybrid each embed their query.

`--cold` empties the search path's chunk caches (each chunk's words; before hybrid read a
chunk's BM25 terms from its stored sparse vector, those terms too), kept for the next queries,
before every timed search: every search then analyses its chunks afresh, as the first query to
meet them does.

`--profile MODE` runs the queries once more in that mode under cProfile and prints the top
functions by cumulative and by own time.

    python benchmarks/search_modes.py --workdir /tmp/zl-modes --record /tmp/modes.json
    python benchmarks/search_modes.py --workdir /tmp/zl-modes --compare /tmp/modes.json
    python benchmarks/search_modes.py --workdir /tmp/zl-modes --profile hybrid
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import DEFAULT_DATA
from quality import load as load_scifact
from zero_latency import search as search_module
from zero_latency.config import Settings
from zero_latency.engine import Engine

TLDR = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora" / "tldr-pages"
MODES = ("keyword", "semantic", "hybrid")
LIMITS = (10, 30)
#: What a recorded hit is compared on (elapsedMs and the like vary from run to run).
FIELDS = ("path", "range", "matchRange", "score", "rawScore", "snippet", "highlights",
          "embedded", "headingPath")


def tldr_workspace(root: Path, pages: int, queries: int, seed: int,
                   lang: str = "en") -> list[str]:
    """Copy a seeded sample of tldr pages (every platform; in English, else the translation
    into `lang`) into `root`; the descriptions of the first `queries` of them are the
    queries."""
    source = TLDR if lang == "en" else TLDR.with_name("tldr-pages-i18n") / f"pages.{lang}"
    files = sorted(source.glob("*/*.md"))
    random.Random(seed).shuffle(files)
    asked: list[str] = []
    for f in files[:pages]:
        text = f.read_text(encoding="utf-8")
        target = root / f.parent.name / f.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        description = " ".join(ln[1:].strip() for ln in text.splitlines()
                               if ln.startswith(">") and "More information" not in ln)
        if description and len(asked) < queries:
            asked.append(description)
    return asked


def scifact_workspace(root: Path, queries: int, seed: int, docs: int) -> list[str]:
    """The SciFact training corpus (its first `docs` abstracts, 0: all) and a seeded sample
    of its queries."""
    corpus, asked, _ = load_scifact(DEFAULT_DATA)
    for did, doc in list(corpus.items())[: docs or None]:
        target = root / f"{did}.md"
        if not target.exists():
            target.write_text(f"# {doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
    ordered = sorted(asked.values())
    random.Random(seed).shuffle(ordered)
    return ordered[:queries]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def forget_chunks() -> None:
    """Empty the query path's caches of chunk analyses (where this version has them)."""
    for name in ("_chunk_terms", "_chunk_words"):
        cached = getattr(search_module, name, None)
        if cached is not None:
            cached.cache_clear()


def essentials(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: h.get(k) for k in FIELDS} for h in result["hits"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=("tldr", "scifact"), default="tldr")
    parser.add_argument("--pages", type=int, default=1000, help="tldr pages in the sample")
    parser.add_argument("--lang", default="en",
                        help="tldr pages in this language (de, ko, ru, zh: the translations)")
    parser.add_argument("--docs", type=int, default=0, help="SciFact abstracts (0: all)")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2, help="times each query is asked")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--workdir", type=Path, help="keep workspace and store here")
    parser.add_argument("--record", type=Path, help="write the hits to this JSON file")
    parser.add_argument("--compare", type=Path, help="check the hits against this JSON file")
    parser.add_argument("--profile", choices=MODES, help="cProfile this mode's queries")
    parser.add_argument("--embed", action="store_true",
                        help="every semantic and hybrid search embeds its query")
    parser.add_argument("--cold", action="store_true",
                        help="empty the chunk caches before every timed search")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="zl-modes-") as tmp:
        work = args.workdir or Path(tmp)
        ws = work / (f"ws-{args.corpus}" if args.lang == "en" else f"ws-tldr-{args.lang}")
        ws.mkdir(parents=True, exist_ok=True)
        queries = (tldr_workspace(ws, args.pages, args.queries, args.seed, args.lang)
                   if args.corpus == "tldr"
                   else scifact_workspace(ws, args.queries, args.seed, args.docs))
        engine = Engine(Settings(model=args.model, storePath=str(work / "store")))
        try:
            engine.open_workspace(ws)
            started = time.perf_counter()
            engine.index([ws])
            index = engine.index_for(ws)
            assert index is not None
            counts = index.counts()
            print(f"{args.corpus}: {len(index.files)} files, {counts.chunks} chunks "
                  f"({counts.embedded} embedded), index {time.perf_counter() - started:.1f} s; "
                  f"{len(queries)} queries x {args.rounds} rounds, load before "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for mode in MODES:  # warm: the model, the language detector, the store's pages
                engine.search(queries[0], limit=10, mode=mode)  # type: ignore[arg-type]
            # The embedder caches query vectors: whichever mode met a query first would pay
            # for its embedding and the other reuse it (semantic ran first for two queries in
            # three at limit 10), so every query is embedded before timing and the figures
            # are the search path's alone.
            assert engine.embedder is not None
            for query in queries:
                engine.embedder.embed_query(query)
            times: dict[tuple[str, int], list[float]] = {(m, n): [] for m in MODES for n in LIMITS}
            # CPU time too: on a shared, loaded machine the wall clock also counts the time
            # the process waited for a core.
            cpu: dict[tuple[str, int], list[float]] = {(m, n): [] for m in MODES for n in LIMITS}
            recorded: dict[str, list[dict[str, Any]]] = {}
            for round_ in range(args.rounds):
                for i, query in enumerate(queries):
                    for limit in LIMITS:
                        # The order of the modes rotates, so none always runs first.
                        for mode in MODES[i % 3:] + MODES[: i % 3]:
                            if args.cold:
                                forget_chunks()
                            if args.embed:  # the embedder's LRU of query vectors
                                engine.embedder._cache.clear()  # type: ignore[attr-defined]
                            c0, t0 = time.process_time(), time.perf_counter()
                            result = engine.search(query, limit=limit,
                                                   mode=mode)  # type: ignore[arg-type]
                            times[mode, limit].append((time.perf_counter() - t0) * 1000)
                            cpu[mode, limit].append((time.process_time() - c0) * 1000)
                            if round_ == 0:
                                recorded[f"{mode}/{limit}/{i}"] = essentials(result)
            load = os.getloadavg()
            print(f"load after {' '.join(f'{x:.2f}' for x in load)}")
            print(f"{'mode':<10}{'limit':>6}{'p50 ms':>9}{'p95 ms':>9}{'mean':>9}"
                  f"{'cpu p50':>9}{'cpu p95':>9}")
            for limit in LIMITS:
                for mode in MODES:
                    t, c = times[mode, limit], cpu[mode, limit]
                    print(f"{mode:<10}{limit:>6}{statistics.median(t):>9.2f}"
                          f"{percentile(t, 0.95):>9.2f}{statistics.fmean(t):>9.2f}"
                          f"{statistics.median(c):>9.2f}{percentile(c, 0.95):>9.2f}")
                ratio50 = (statistics.median(times['hybrid', limit])
                           / statistics.median(times['semantic', limit]))
                ratio95 = (percentile(times['hybrid', limit], 0.95)
                           / percentile(times['semantic', limit], 0.95))
                cpu50 = (statistics.median(cpu['hybrid', limit])
                         / statistics.median(cpu['semantic', limit]))
                print(f"hybrid/semantic at limit {limit}: p50 {ratio50:.2f}x, p95 {ratio95:.2f}x, "
                      f"cpu p50 {cpu50:.2f}x")
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                for query in queries:
                    for limit in LIMITS:
                        engine.search(query, limit=limit, mode=args.profile)  # type: ignore[arg-type]
                profiler.disable()
                for key in ("cumulative", "tottime"):
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(25)
                    print(out.getvalue())
            status = 0
            if args.record:
                args.record.write_text(json.dumps(recorded, ensure_ascii=False, indent=0))
                print(f"recorded {len(recorded)} result lists to {args.record}")
            if args.compare:
                before = json.loads(args.compare.read_text())
                differ = [key for key in before if before[key] != recorded.get(key)]
                differ += [key for key in recorded if key not in before]
                hits = sum(len(v) for v in before.values())
                if differ:
                    status = 1
                    print(f"DIFFERENT: {len(differ)} of {len(before)} result lists, e.g. "
                          f"{differ[:5]}")
                    first = differ[0]
                    print(json.dumps({"before": before.get(first), "now": recorded.get(first)},
                                     ensure_ascii=False)[:3000])
                else:
                    print(f"identical: {len(before)} result lists, {hits} hits "
                          f"(ids, ranges, scores, raw scores, snippets)")
            return status
        finally:
            engine.close()


if __name__ == "__main__":
    sys.exit(main())
