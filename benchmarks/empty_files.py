"""Warm re-index of a workspace of empty files (issue 10 item 14: `__init__.py` everywhere).

Empty files make no chunks; they used to leave no trace in the store, so every run read them
all again, and the indexer rescanned its growing group once per file (quadratic). Creates
`--files` empty `.py` files (100 per folder) plus one real document, indexes cold, then
times warm runs in fresh engines (as `zl index` does).

    python benchmarks/empty_files.py --files 20000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from zero_latency.config import Settings
from zero_latency.engine import Engine


def run(ws: Path, store: Path) -> tuple[float, int, int]:
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        engine.open_workspace(ws)
        started = time.perf_counter()
        report = engine.index([ws])
        return time.perf_counter() - started, report.indexedFiles, report.unchangedFiles
    finally:
        engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--warm-runs", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="zl-empty-"))
    ws = scratch / "ws"
    for n in range(args.files):
        folder = ws / f"pkg{n // 100}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{n % 100}.py").touch()
    (ws / "readme.md").write_text("# Readme\n\nOne real document.\n")
    old = time.time() - 60
    for path in ws.rglob("*"):
        os.utime(path, (old, old))
    try:
        cold, indexed, _ = run(ws, scratch / "store")
        print(f"{args.files} empty files + 1 document: cold index {cold:.1f} s "
              f"({indexed} files read)")
        for k in range(args.warm_runs):
            warm, indexed, unchanged = run(ws, scratch / "store")
            print(f"warm re-index {k + 1}: {warm:.2f} s ({indexed} read, {unchanged} unchanged)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
