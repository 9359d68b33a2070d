"""The keyword pass alone (issue 14's "every file keyword-searchable"), in process: an Engine
with the bundled model on an empty store in a temp dir, then `WorkspaceIndex.sync(embed=False)`
on the corpus, timed; `--profile` prints the top functions by cumulative time (cProfile).
Also times chunking alone (read + chunk_document for every file) to show its share.

    python benchmarks/keyword_pass.py --corpus ../shared/data/corpora/tldr-pages
    python benchmarks/keyword_pass.py --corpus ../shared/data/corpora/tldr-pages --profile

The machine this runs on may be shared: say so next to the figures, and compare runs made
back to back.

`sync(embed=False)` on more than indexer.POOL_MIN_FILES files reads and chunks them in worker
processes (chunk_pool.py): that is what this times. Measured 2026-12-03 on the 2-core machine
(load ≈ 0.5), the same stores' payloads compared for identity, back to back, workers vs one
process (indexer.POOL_MIN_FILES raised):

    corpus        files   chunks   workers   one process
    tldr-pages    7,425    9,053    7.3 s      12.3 s   (6.9 s once a group is one store write)
    peps            736   23,004    8.9 s      17.7 s
    rust-book       104    1,323    1.5 s       1.4 s   (under POOL_MIN_FILES: in process)

Profiled with the workers, what is left on the indexer's thread: the store's upsert (~2 s of
Python-to-Rust payload conversion, plus ~0.9 s of one write per file, since made one per
group), waiting for the workers (~4 s), the walk (~0.8 s).

Since 61a84fe the workers also analyse each chunk for BM25 (language identification and the
sparse vector: a third of the indexer's thread before). CPU seconds of the pass (the
indexer's process and its reaped workers) are printed beside the wall clock, which a shared
machine's load moves more: on the 45,834-file all-languages tldr workspace
(`first_run.py --tldr-all`), load 12-15, 81.5 CPU-s (workers 63.8) vs 100.5 (workers 47.4)
before; the indexer's own thread 17.7 vs 53 s.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path

from zero_latency.chunking import chunk_document, language_for, normalise_newlines
from zero_latency.config import Settings
from zero_latency.engine import Engine


def chunk_all(corpus: Path, engine: Engine) -> tuple[int, int]:
    """Read and chunk every indexable file as the indexer would: (files, chunks)."""
    assert engine.embedder is not None
    count, limit = engine.embedder.count_tokens, min(256, engine.embedder.max_tokens)
    files = chunks = 0
    for path in sorted(corpus.rglob("*")):
        language = language_for(path.name)
        if language is None or not path.is_file():
            continue
        text = normalise_newlines(path.read_text(encoding="utf-8", errors="replace"))
        chunks += len(chunk_document(text, language, count, limit, 32))
        files += 1
    return files, chunks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--profile", action="store_true", help="cProfile the keyword pass")
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    with tempfile.TemporaryDirectory() as work:
        engine = Engine(Settings(model="bundled", storePath=work))
        try:
            index = engine.open_workspace(corpus)
            started = time.perf_counter()
            files, chunks = chunk_all(corpus, engine)
            chunking_s = time.perf_counter() - started
            profiler = cProfile.Profile() if args.profile else None
            cpu = os.times()
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            report = index.sync(embed=False)
            if profiler:
                profiler.disable()
            keyword_s = time.perf_counter() - started
            after = os.times()  # the chunking workers are reaped when the pass ends
            cpu_s = sum(getattr(after, f) - getattr(cpu, f) for f in
                        ("user", "system", "children_user", "children_system"))
            workers_s = sum(getattr(after, f) - getattr(cpu, f) for f in
                            ("children_user", "children_system"))
        finally:
            engine.close()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
    print(json.dumps({"corpus": corpus.name, "files": files, "chunks": chunks,
                      "chunkingSeconds": round(chunking_s, 2),
                      "keywordPassSeconds": round(keyword_s, 2),
                      "keywordPassCpuSeconds": round(cpu_s, 2),
                      "ofWhichWorkersCpuSeconds": round(workers_s, 2),
                      "loadAverage": round(os.getloadavg()[0], 2),
                      "indexedFiles": report.indexedFiles}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
