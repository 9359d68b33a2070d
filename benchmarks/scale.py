"""Build a large workspace and its store, for measuring search at 10k and 100k chunks.

Embedding 100k chunks for real takes over an hour on 2 cores, and search latency does not
depend on what the dense vectors say (the store scans or walks them the same way), so this
builds the index through the real indexer (real files, chunking, BM25, payloads, store writes)
with one stand-in: the engine is given `HashingEmbedder.standing_in_for(real model)`, the
test double that makes deterministic pseudo-random unit vectors but borrows the real model's
id, fingerprint and token counter. The store is therefore stamped with the real model, so
`zl serve` opens it as its own, embeds queries and edits with the real model, and finds every
file unchanged on start-up.

The workspace is copies of the real corpora (`copy-N/<corpus>/…`) until it holds `--chunks`.

    python benchmarks/scale.py /tmp/zl-100k --chunks 100000
    python benchmarks/sidecar.py /tmp/zl-100k/workspace --store /tmp/zl-100k/store
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

from zero_latency.config import Settings
from zero_latency.embedder import HashingEmbedder
from zero_latency.engine import Engine

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for workspace/ and store/")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--corpora", nargs="+", default=["peps", "rust-book", "tldr-pages"])
    parser.add_argument("--data", type=Path, default=CORPORA)
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()
    workspace, store = args.out / "workspace", args.out / "store"
    if workspace.exists() or store.exists():
        print(f"{args.out} already holds a workspace or store: remove it first", file=sys.stderr)
        return 2
    settings = Settings(model=args.model, storePath=str(store))
    real = Engine(settings).load_model()
    if real is None:
        print("no model could be loaded", file=sys.stderr)
        return 2
    engine = Engine(settings, model=HashingEmbedder.standing_in_for(real))
    workspace.mkdir(parents=True)
    index = engine.open_workspace(workspace)
    started = time.perf_counter()
    copy = 0
    while index.chunk_count() < args.chunks:
        copy += 1
        for name in args.corpora:
            shutil.copytree(args.data / name, workspace / f"copy-{copy}" / name)
            engine.index([workspace / f"copy-{copy}" / name])
            print(f"copy {copy} {name}: {index.chunk_count()} chunks, {len(index.files)} files",
                  file=sys.stderr)
            if index.chunk_count() >= args.chunks:
                break
    seconds = time.perf_counter() - started
    files, chunks = len(index.files), index.chunk_count()
    engine.close()
    real.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"built {files} files, {chunks} chunks in {seconds:.0f} s "
          f"({chunks / seconds:.0f} chunks/s without inference); peak RSS {rss:.0f} MB")
    print(f"store: {store}  workspace: {workspace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
