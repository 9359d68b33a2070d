"""A small, fast guard on ranking quality: a slice of BEIR SciFact (labelled by people who never
saw this code), indexed with the real bundled model, scored with nDCG@10 in every mode.

The full benchmark is benchmarks/quality.py; this slice (the first labelled queries, their
relevant abstracts and the abstracts that follow them in the corpus as distractors) runs in
seconds and fails when hybrid ranking regresses: below either single mode, or below the floor
measured on this slice when it was written (hybrid 0.861, semantic 0.845, keyword 0.793 with
the bundled int8 MiniLM) less a margin of 0.02.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from benchmarks.quality import evaluate, load, write_workspace
from zero_latency.config import Settings
from zero_latency.engine import Engine

from .conftest import SHARED

QUERIES = 40
DOCS = 400
HYBRID_FLOOR = 0.84


def test_hybrid_beats_each_mode_on_a_scifact_slice(tmp_path: Path) -> None:
    data = SHARED / "data" / "scifact-train"
    if not (data / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact is absent at {data} (it lives in ../shared beside the project)")
    corpus, queries, qrels = load(data)
    picked = dict(itertools.islice(((q, r) for q, r in qrels.items() if q in queries), QUERIES))
    wanted = set().union(*picked.values())
    slice_ids = list(wanted) + [d for d in corpus if d not in wanted][: DOCS - len(wanted)]
    workspace = tmp_path / "scifact"
    workspace.mkdir()
    write_workspace({d: corpus[d] for d in slice_ids}, workspace)

    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        engine.open_workspace(workspace)
        assert engine.index([workspace]).files == len(slice_ids)
        scores = {mode: evaluate(engine, queries, picked, mode)["ndcg@10"]
                  for mode in ("keyword", "semantic", "hybrid")}
    finally:
        engine.close()
    summary = ", ".join(f"{m} {s:.3f}" for m, s in scores.items())
    assert scores["hybrid"] >= max(scores["keyword"], scores["semantic"]), summary
    assert scores["hybrid"] >= HYBRID_FLOOR, summary
