"""What partial dense coverage costs: hybrid nDCG@10 on SciFact training queries while the
dense backfill has embedded 0 %, ~50 % and 100 % of the chunks (keyword nDCG@10 for
reference: it needs no dense vector, so it is the same at every coverage).

The workspace is the subset benchmarks/floor.py uses (the first N labelled queries, their
relevant abstracts and a fixed random sample of other abstracts; same seed, same defaults).
It runs through the real engine and the real two passes:

1. `Engine.index` with `backfillPaused`: the keyword pass only (BM25 + payload, no dense
   vector). Search here is what a user gets before the backfill starts: 0 % coverage.
2. `WorkspaceIndex.backfill`, cancelled through its `CancelToken` once half the chunks have
   their vector. The backfill walks the files in priority order (newest modified first), which
   is not random; so every file is given a random modification time (seeded) before indexing.
   It reads 1,024 pending chunks ahead in that order and embeds them longest first: the share
   embedded is the longest chunks of a random sample of the documents (on SciFact, mostly the
   abstracts' first chunks), not a random share of the chunks. (A real workspace's first part
   is its most recently edited files: this is an honest "partial" figure, not a prediction
   for any particular workspace.)
3. The backfill resumed to the end: 100 %.

    python benchmarks/coverage_quality.py                       # 300 queries, ~1,000 docs
    python benchmarks/coverage_quality.py --queries 100 --distractors 200   # quicker

Before search fused partial coverage itself (the store's DBSF at every coverage), measured
2026-11-25 (bundled int8 MiniLM, defaults then 0/50/100 %: 300 queries, 927 documents, 1,655
chunks; 10 min on the shared 2-core machine at load ~5, the backfill at ~4.7 chunks/s):

    dense coverage           hybrid nDCG@10    R@10
    0.0% (0/1655)                    0.8090  0.8878   (= keyword: no dense candidates)
    50.0% (828/1655)                 0.6884  0.8274   (random half of the documents)
    100.0% (1655/1655)               0.8437  0.9127   (floor.py's 0.30 row: 0.8437)
    keyword only                     0.8090  0.8878

A random half embedded is worse than none: the fusion lifts embedded documents by their dense
rank, which the relevant documents still waiting for their vector cannot get.

With search.fuse_partial (while chunks are pending: DBSF in Python, an un-embedded chunk's
dense share imputed from the embedded BM25 candidates of the query; nothing pending: the
store's fusion, unchanged). tune / holdout: the even / odd labelled queries; the method was
chosen on tune. p50 ms was taken while tests ran beside it (load ~4): compare within a row
only roughly (keyword-only 54 ms on the same machine):

    dense coverage           hybrid nDCG@10    R@10  p50 ms    tune holdout
    0.0% (0/1655)                    0.8090  0.8878   136.4  0.8183  0.7997
    25.1% (416/1655)                 0.8071  0.8820   119.5  0.8113  0.8030
    50.0% (828/1655)                 0.8210  0.8893    94.6  0.8286  0.8135
    75.0% (1241/1655)                0.8344  0.8993    90.0  0.8394  0.8295
    100.0% (1655/1655)               0.8437  0.9127    62.3  0.8522  0.8353
    keyword only                     0.8090  0.8878    53.7  0.8183  0.7997

2026-12-06, after the backfill's read-ahead was embedded longest first and fuse_partial's line
was given its slope prior (search.SLOPE_PRIOR), against the tree before both (8ac9c44: files in
random order, chunks in file order, no prior), in one session (load ~1):

    this tree                  nDCG@10   R@10   tune holdout | before       nDCG@10   tune holdout
    0.0% (0/1655)               0.8091 0.8878 0.8186  0.7997 | 0.0%          0.8091 0.8186 0.7997
    30.5% (504/1655)            0.8298 0.9027 0.8410  0.8187 | 26.8% (444)   0.8129 0.8219 0.8040
    53.2% (880/1655)            0.8551 0.9160 0.8664  0.8439 | 55.2% (913)   0.8266 0.8319 0.8213
    75.9% (1256/1655)           0.8584 0.9260 0.8651  0.8518 | 77.9% (1289)  0.8465 0.8533 0.8397
    100.0% (1655/1655)          0.8596 0.9293 0.8650  0.8541 | 100.0%        0.8596 0.8650 0.8541

Most of the gain is the order (the longest chunk of more documents is embedded sooner): this
tree without the prior gives 0.8304/0.8552/0.8584. The prior is for near-duplicates (see
search.SLOPE_PRIOR); on SciFact it moves nDCG@10 by under 0.001 here.

Alternatives, scored offline on the same candidate lists (25/50/75 %, tune): the chunk's own
BM25 share as its dense share 0.823/0.822/0.829 (holdout 0.803/0.804/0.821); that share
clipped to [0, 1] 0.788/0.774/0.782; half of it 0.810/0.808/0.829; the mean dense share of
the 10 embedded candidates nearest in BM25 rank 0.809/0.806/0.823; the line (chosen)
0.826/0.826/0.837 (holdout 0.803/0.814/0.829).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from quality import DEFAULT_DATA, evaluate, load, write_workspace
from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.errors import CancelledError
from zero_latency.indexer import CancelToken, WorkspaceIndex

#: floor.py's sample of non-relevant documents (its seed), so both benchmarks score one corpus.
DISTRACTOR_SEED = 15
#: Seed of the random modification times that make the backfill's order random.
ORDER_SEED = 14


def subset(corpus: dict[str, dict[str, str]], qrels: dict[str, set[str]], queries: int,
           distractors: int) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    """floor.py's subset: the first `queries` labelled queries, their relevant documents and
    `distractors` others drawn with its seed (0: all queries / the whole corpus)."""
    if queries:
        qrels = dict(list(qrels.items())[:queries])
    if distractors:
        relevant = set().union(*qrels.values())
        others = sorted(set(corpus) - relevant)
        keep = relevant | set(random.Random(DISTRACTOR_SEED).sample(
            others, min(distractors, len(others))))
        corpus = {d: doc for d, doc in corpus.items() if d in keep}
    return corpus, qrels


def shuffle_mtimes(workspace: Path) -> None:
    """A seeded random modification time per file: the backfill's newest-first order becomes
    a random order over the documents."""
    files = sorted(workspace.glob("*.md"))
    random.Random(ORDER_SEED).shuffle(files)
    base = time.time() - 86_400
    for rank, path in enumerate(files):
        stamp = base + rank  # one second apart: distinct at any filesystem's resolution
        os.utime(path, (stamp, stamp))


def backfill_until(index: WorkspaceIndex, share: float) -> None:
    """Run the real backfill and cancel it (its CancelToken) once `share` of the stored chunks
    have a dense vector (it stops at a group boundary: at most BACKFILL_GROUP chunks more)."""
    counts = index.store.counts()
    target = round(counts.chunks * share) - counts.embedded
    if target <= 0:
        return
    cancel = CancelToken()

    def progressed(done: int, total: int, seconds: float) -> None:
        if done >= target:
            cancel.cancel()

    with contextlib.suppress(CancelledError):  # stopped where asked
        index.backfill(progressed, cancel)
    index.store.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--queries", type=int, default=300,
                        help="first N labelled queries (0: all)")
    parser.add_argument("--distractors", type=int, default=700,
                        help="documents besides the relevant ones (0: the whole corpus)")
    parser.add_argument("--coverages", type=float, nargs="+",
                        default=[0.0, 0.25, 0.5, 0.75, 1.0],
                        help="shares of chunks embedded to measure at, ascending")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        print(f"SciFact not found at {args.data}: pass --data", file=sys.stderr)
        return 2
    corpus, queries, qrels = load(args.data)
    corpus, qrels = subset(corpus, qrels, args.queries, args.distractors)
    # tune: the even-numbered labelled queries, holdout: the odd ones (as quality.py --subset):
    # the partial fusion was chosen on the first and is confirmed on the second.
    halves = {"tune": dict(list(qrels.items())[0::2]), "holdout": dict(list(qrels.items())[1::2])}
    rows: list[tuple[float, int, int, dict[str, Any], dict[str, dict[str, Any]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "scifact"
        workspace.mkdir()
        write_workspace(corpus, workspace)
        shuffle_mtimes(workspace)
        engine = Engine(Settings(model=args.model, storePath=str(Path(tmp) / "store"),
                                 backfillPaused=True))
        try:
            if engine.load_model() is None:  # hybrid without a model is keyword search
                print("the model did not load", file=sys.stderr)
                return 2
            index = engine.open_workspace(workspace)
            started = time.perf_counter()
            report = engine.index([workspace])  # the keyword pass only: the backfill is paused
            print(f"keyword pass: {report.files} docs, {report.chunks} chunks in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
            keyword = evaluate(engine, queries, qrels, "keyword")
            keyword_halves = {name: evaluate(engine, queries, half, "keyword")
                              for name, half in halves.items()}
            for share in sorted(args.coverages):
                started = time.perf_counter()
                backfill_until(index, share)
                counts = index.store.counts()
                print(f"backfill to {counts.embedded}/{counts.chunks} chunks took "
                      f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
                rows.append((share, counts.embedded, counts.chunks,
                             evaluate(engine, queries, qrels, "hybrid"),
                             {name: evaluate(engine, queries, half, "hybrid")
                              for name, half in halves.items()}))
        finally:
            engine.close()
    print(f"\nSciFact train: {keyword['queries']:.0f} queries over {len(corpus)} documents "
          f"({rows[0][2]} chunks), model {args.model}; files in random order, each read-ahead "
          "of the backfill embedded longest first")
    print(f"{'dense coverage':<24} {'hybrid nDCG@10':>14} {'R@10':>7} {'p50 ms':>7} "
          f"{'tune':>7} {'holdout':>7}")
    for _share, embedded, chunks, m, by_half in rows:
        label = f"{embedded / chunks:.1%} ({embedded}/{chunks})"
        print(f"{label:<24} {m['ndcg@10']:>14.4f} {m['recall@10']:>7.4f} {m['p50_ms']:>7.1f} "
              f"{by_half['tune']['ndcg@10']:>7.4f} {by_half['holdout']['ndcg@10']:>7.4f}")
    print(f"{'keyword only':<24} {keyword['ndcg@10']:>14.4f} {keyword['recall@10']:>7.4f} "
          f"{keyword['p50_ms']:>7.1f} {keyword_halves['tune']['ndcg@10']:>7.4f} "
          f"{keyword_halves['holdout']['ndcg@10']:>7.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
