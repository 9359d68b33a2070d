"""Are the optimised model's vectors the model's? (issue 22: cosine >= 0.99 to the plain model's
for every chunk of rust-book, SciFact semantic nDCG@10 within 0.005 of the plain model's.)

The plain model is the graph as shipped, run by the engine's embedder on ONNX Runtime
(`optimised=False`: the same tokenizer, truncation and pooling, one text per run, as
benchmarks/embed.py checks against a bare ONNX Runtime loop); the optimised one is what the
engine runs (`--runtime auto`: the shipped graph on OpenVINO where it passes its probe, else
`models.optimise`'s graph, fused then int8-quantised, on ONNX Runtime; `--runtime onnxruntime`
for the latter alone). Both embed the same texts in this run:

- every chunk of `--corpus` (default rust-book) as the indexer would embed it (heading path +
  text): the cosine of each chunk's two vectors, its lowest and percentiles, how many fall
  under 0.99, the worst chunks with their length in model tokens, and each graph's rate on
  them (the same texts, the same streams: a ratio, not a benchmark of its own);
- SciFact (train queries with labels, `--scifact`): every abstract chunked as the indexer
  chunks `# title` + text, every query embedded as a query, documents ranked by their best
  chunk's cosine (exact search, what semantic mode ranks by), nDCG@10 for each graph.

    python benchmarks/embed_fidelity.py                    # rust-book and all of SciFact
    python benchmarks/embed_fidelity.py --scifact-docs 2000 --queries 300

Exit status 1 when a chunk falls under 0.99 or nDCG@10 moves by more than 0.005.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import get_args

import numpy as np

from zero_latency.chunking import chunk_document, document_title
from zero_latency.config import Runtime
from zero_latency.embedder import Matrix, OnnxEmbedder
from zero_latency.models import resolve_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed import DEFAULT_CORPUS, real_chunks
from quality import DEFAULT_DATA, load, ndcg_at_10

MIN_COSINE = 0.99
MAX_NDCG_DELTA = 0.005


def embed_timed(embedder: OnnxEmbedder, texts: list[str]) -> tuple[float, Matrix]:
    embedder.embed(texts[:4])  # warm-up
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    return time.perf_counter() - started, vectors


def chunk_fidelity(plain: OnnxEmbedder, fast: OnnxEmbedder, corpus: Path) -> bool:
    texts = real_chunks(corpus, plain, 10**9, 256)
    plain_s, a = embed_timed(plain, texts)
    fast_s, b = embed_timed(fast, texts)
    cosines = np.sum(a * b, axis=1)
    order = np.argsort(cosines)
    under = int(np.sum(cosines < MIN_COSINE))
    print(f"\n{corpus.name}: {len(texts)} chunks, load {os.getloadavg()[0]:.2f}")
    print(f"  cosine optimised vs plain: min {cosines.min():.5f}  p0.1 "
          f"{np.percentile(cosines, 0.1):.5f}  p1 {np.percentile(cosines, 1):.5f}  p5 "
          f"{np.percentile(cosines, 5):.5f}  median {np.median(cosines):.5f}")
    print(f"  chunks under {MIN_COSINE}: {under}  (under 0.995: "
          f"{int(np.sum(cosines < 0.995))})")
    for i in order[:5]:
        tokens = min(plain.count_tokens(texts[i]) + 2, plain.files.max_length)
        first = " ".join(texts[i].split())[:70]
        print(f"    {cosines[i]:.5f}  {tokens:>3} tokens  {first}")
    print(f"  rate on these chunks: plain {len(texts) / plain_s:.1f}/s, optimised "
          f"{len(texts) / fast_s:.1f}/s ({plain_s / fast_s:.2f}x)")
    return under == 0


def scifact_fidelity(plain: OnnxEmbedder, fast: OnnxEmbedder, data: Path, docs: int,
                     queries_wanted: int) -> bool:
    corpus, queries, qrels = load(data)
    asked = [q for q in qrels if q in queries][:queries_wanted or None]
    if docs:  # the labelled documents of the asked queries first, then the rest in order
        wanted = [d for q in asked for d in sorted(qrels[q]) if d in corpus]
        keep = list(dict.fromkeys(wanted + list(corpus)))[:docs]
        corpus = {d: corpus[d] for d in keep}
    texts: list[str] = []
    owner: list[str] = []
    limit = min(256, plain.max_tokens)
    for did, doc in corpus.items():
        chunks = chunk_document(f"# {doc['title']}\n\n{doc['text']}\n", "markdown",
                                plain.count_tokens, limit, 32)
        title = document_title(f"{did}.md", chunks)
        texts += [c.embedding_text(title) for c in chunks]
        owner += [did] * len(chunks)
    print(f"\nSciFact: {len(corpus)} documents, {len(texts)} chunks, {len(asked)} queries, "
          f"load {os.getloadavg()[0]:.2f}")
    ndcgs: dict[str, float] = {}
    for name, embedder in (("plain", plain), ("optimised", fast)):
        started = time.perf_counter()
        matrix = embedder.embed(texts)
        scores: list[float] = []
        for qid in asked:
            sims = matrix @ embedder.embed_query(queries[qid])
            ranked: list[str] = []
            for i in np.argsort(-sims):
                if owner[i] not in ranked:
                    ranked.append(owner[i])
                    if len(ranked) == 10:
                        break
            scores.append(ndcg_at_10(ranked, qrels[qid]))
        ndcgs[name] = statistics.fmean(scores)
        print(f"  {name:<10} semantic nDCG@10 {ndcgs[name]:.4f}  "
              f"({time.perf_counter() - started:.0f} s)")
    delta = ndcgs["optimised"] - ndcgs["plain"]
    print(f"  optimised - plain: {delta:+.4f} (allowed: +-{MAX_NDCG_DELTA})")
    return abs(delta) <= MAX_NDCG_DELTA


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--scifact", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--scifact-docs", type=int, default=0, help="0: every document")
    parser.add_argument("--queries", type=int, default=0, help="0: every labelled query")
    parser.add_argument("--no-scifact", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runtime", choices=get_args(Runtime), default="auto",
                        help="what runs the optimised side (auto: what the engine runs)")
    args = parser.parse_args()
    files, _ = resolve_model(args.model)
    plain = OnnxEmbedder(files, threads=args.threads, optimised=False, runtime="onnxruntime")
    fast = OnnxEmbedder(files, threads=args.threads, optimised=True, runtime=args.runtime)
    try:
        print(f"model {files.model_id}: plain {plain.files.onnx_path} on ONNX Runtime\n"
              f"  optimised: {fast.fingerprint} on {fast.runtime} "
              f"({fast.runtime_note or fast.optimise_note or 'built'})")
        if fast.fingerprint == plain.fingerprint:
            print("no optimised graph or runtime to compare", file=sys.stderr)
            return 2
        ok = chunk_fidelity(plain, fast, args.corpus)
        if not args.no_scifact:
            if (args.scifact / "corpus.jsonl").is_file():
                ok &= scifact_fidelity(plain, fast, args.scifact, args.scifact_docs,
                                       args.queries)
            else:
                print(f"SciFact not found at {args.scifact}: pass --scifact", file=sys.stderr)
    finally:
        plain.close()
        fast.close()
    print(f"\nvectors stay the model's: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
