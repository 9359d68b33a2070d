"""Search quality on BEIR SciFact (train split): nDCG@10 and Recall@10 per mode, plus latency.

Each abstract becomes a Markdown file (`# title` + text) in a temp workspace, indexed through
the real engine; every training query runs in each mode; hits map back to documents by their
best chunk. Published test-split figures for orientation: BM25 0.665, all-MiniLM-L6-v2 0.645,
gte-small 0.727 (nDCG@10).

    python benchmarks/quality.py                      # all 809 queries, bundled model
    python benchmarks/quality.py --queries 100 --fusion rrf dbsf "rrf:k=20,dense=1.5"
    python benchmarks/quality.py --keep /tmp/scifact   # later runs re-use the index
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.stores import HYBRID_FUSION, Fusion

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact-train"


def load(data: Path) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, set[str]]]:
    corpus = {}
    with (data / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[doc["_id"]] = {"title": doc["title"], "text": doc["text"]}
    queries = {}
    with (data / "queries.jsonl").open() as fh:
        for line in fh:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    qrels: dict[str, set[str]] = defaultdict(set)
    with (data / "qrels" / "train.tsv").open() as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels[qid].add(did)
    return corpus, queries, qrels


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def recall_at_10(ranked: list[str], relevant: set[str]) -> float:
    return len(set(ranked[:10]) & relevant) / len(relevant) if relevant else 0.0


def write_workspace(corpus: dict[str, dict[str, str]], root: Path) -> None:
    for did, doc in corpus.items():
        (root / f"{did}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n", encoding="utf-8")


def evaluate(engine: Engine, queries: dict[str, str], qrels: dict[str, set[str]], mode: str,
             fusion: Fusion = HYBRID_FUSION, limit: int = 30) -> dict[str, float]:
    ndcgs, recalls, latencies = [], [], []
    for qid, relevant in qrels.items():
        if qid not in queries:
            continue
        started = time.perf_counter()
        result = engine.search(queries[qid], limit=limit, mode=mode,  # type: ignore[arg-type]
                               fusion=fusion)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked: list[str] = []
        for hit in result["hits"]:  # best chunk first: a document counts at its best rank
            did = Path(hit["path"]).stem
            if did not in ranked:
                ranked.append(did)
        ndcgs.append(ndcg_at_10(ranked, relevant))
        recalls.append(recall_at_10(ranked, relevant))
    latencies.sort()
    return {
        "ndcg@10": statistics.fmean(ndcgs), "recall@10": statistics.fmean(recalls),
        "p50_ms": latencies[len(latencies) // 2],
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1], "queries": len(ndcgs),
    }


def bm25_reference(corpus: dict[str, dict[str, str]], queries: dict[str, str],
                   qrels: dict[str, set[str]]) -> dict[str, float]:
    """A standard BM25 (k1=0.9, b=0.4, Lucene's variant, English stop words and Snowball
    stemming, whole documents: title + text), as the BEIR baselines run it: `bm25s`, an
    independent implementation, for the yardstick that keyword mode must reach."""
    import bm25s  # optional: pip install 'zero-latency[bench]'
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = list(corpus)
    retriever = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    retriever.index(bm25s.tokenize([f"{corpus[d]['title']} {corpus[d]['text']}" for d in ids],
                                   stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)
    asked = [q for q in qrels if q in queries]
    results, _ = retriever.retrieve(
        bm25s.tokenize([queries[q] for q in asked], stopwords="en", stemmer=stemmer,
                       show_progress=False), k=10, show_progress=False)
    ranked = [[ids[i] for i in row] for row in results]
    return {
        "ndcg@10": statistics.fmean(ndcg_at_10(r, qrels[q]) for q, r in zip(asked, ranked,
                                                                             strict=True)),
        "recall@10": statistics.fmean(recall_at_10(r, qrels[q]) for q, r in zip(asked, ranked,
                                                                                strict=True)),
        "p50_ms": float("nan"), "p95_ms": float("nan"), "queries": len(asked),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--queries", type=int, default=0, help="first N labelled queries (0: all)")
    parser.add_argument("--limit", type=int, default=30,
                        help="hits asked per query (a document counts at its best chunk, so "
                             "more than 10 chunks are needed for 10 documents)")
    parser.add_argument("--subset", choices=["all", "tune", "holdout"], default="all",
                        help="tune: the even-numbered labelled queries, holdout: the odd ones "
                             "(choose settings on one, report them on the other)")
    parser.add_argument("--modes", nargs="+", default=["keyword", "semantic", "hybrid"])
    parser.add_argument("--fusion", nargs="+", type=Fusion.parse, default=[HYBRID_FUSION],
                        help='hybrid fusions to compare: rrf, dbsf, "rrf:k=60,dense=1,sparse=1"')
    parser.add_argument("--bm25-reference", action="store_true",
                        help="also score a standard BM25 (bm25s, k1=0.9, b=0.4) on whole "
                             "documents: the yardstick for keyword mode")
    parser.add_argument("--no-context", action="store_true",
                        help="ablation: embed and BM25-encode each chunk without the heading "
                             "path / title the engine puts in front (use another --keep)")
    parser.add_argument("--keep", type=Path,
                        help="keep the workspace and store here, to re-evaluate without "
                             "re-indexing (unchanged files embed nothing)")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        print(f"SciFact not found at {args.data}: pass --data", file=sys.stderr)
        return 2
    corpus, queries, qrels = load(args.data)
    if args.no_context:
        from zero_latency.chunking import Chunk

        Chunk.embedding_text = lambda self, title: self.text  # type: ignore[method-assign]
    if args.subset != "all":
        qrels = dict(list(qrels.items())[args.subset == "holdout" :: 2])
    if args.queries:
        qrels = dict(list(qrels.items())[: args.queries])
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        workspace = base / "scifact"
        if not workspace.is_dir():
            workspace.mkdir(parents=True)
            write_workspace(corpus, workspace)
        store = base / "store"
        engine = Engine(Settings(model=args.model, storePath=str(store)))
        try:
            engine.open_workspace(workspace)
            started = time.perf_counter()
            report = engine.index([workspace])
            seconds = time.perf_counter() - started
            print(f"indexed {report.files} docs, {report.chunks} chunks "
                  f"({report.embeddedChunks} embedded) in {seconds:.0f} s with "
                  f"{engine.model_id}", file=sys.stderr)
            rows: list[tuple[str, dict[str, Any]]] = []
            for mode in args.modes:
                for fusion in args.fusion if mode == "hybrid" else [HYBRID_FUSION]:
                    name = f"{mode} {fusion}" if mode == "hybrid" else mode
                    rows.append((name, evaluate(engine, queries, qrels, mode, fusion, args.limit)))
        finally:
            engine.close()
    if args.bm25_reference:
        rows.append(("reference BM25 (bm25s, k1=0.9, b=0.4)",
                     bm25_reference(corpus, queries, qrels)))
    print(f"\nSciFact train ({rows[0][1]['queries']} queries: {args.subset}, {len(corpus)} docs), "
          f"model {args.model}")
    print(f"{'mode':<40} {'nDCG@10':>8} {'R@10':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for name, m in rows:
        print(f"{name:<40} {m['ndcg@10']:>8.4f} {m['recall@10']:>7.4f} {m['p50_ms']:>8.1f} "
              f"{m['p95_ms']:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
