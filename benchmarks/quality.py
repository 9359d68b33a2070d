"""Search quality on BEIR SciFact (train split): nDCG@10 and Recall@10 per mode, plus latency.

Each abstract becomes a Markdown file (`# title` + text) in a temp workspace, indexed through
the real engine; every training query runs in each mode; hits map back to documents by their
best chunk. Published test-split figures for orientation: BM25 0.665, all-MiniLM-L6-v2 0.645,
gte-small 0.727 (nDCG@10).

    python benchmarks/quality.py                      # all 809 queries, bundled model
    python benchmarks/quality.py --queries 100 --fusion rrf dbsf
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
             fusion: str) -> dict[str, float]:
    ndcgs, recalls, latencies = [], [], []
    for qid, relevant in qrels.items():
        if qid not in queries:
            continue
        started = time.perf_counter()
        result = engine.search(queries[qid], limit=30, mode=mode,  # type: ignore[arg-type]
                               fusion=fusion)  # type: ignore[arg-type]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--queries", type=int, default=0, help="first N labelled queries (0: all)")
    parser.add_argument("--modes", nargs="+", default=["keyword", "semantic", "hybrid"])
    parser.add_argument("--fusion", nargs="+", default=["rrf"], choices=["rrf", "dbsf"])
    parser.add_argument("--keep", type=Path,
                        help="keep the workspace and store here, to re-evaluate without "
                             "re-indexing (unchanged files embed nothing)")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        print(f"SciFact not found at {args.data}: pass --data", file=sys.stderr)
        return 2
    corpus, queries, qrels = load(args.data)
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
                for fusion in args.fusion if mode == "hybrid" else ["-"]:
                    name = mode if fusion == "-" else f"{mode}/{fusion}"
                    rows.append((name, evaluate(engine, queries, qrels, mode,
                                                fusion if fusion != "-" else "rrf")))
        finally:
            engine.close()
    print(f"\nSciFact train ({rows[0][1]['queries']} queries, {len(corpus)} docs), "
          f"model {args.model}")
    print(f"{'mode':<14} {'nDCG@10':>8} {'R@10':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for name, m in rows:
        print(f"{name:<14} {m['ndcg@10']:>8.4f} {m['recall@10']:>7.4f} {m['p50_ms']:>8.1f} "
              f"{m['p95_ms']:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
