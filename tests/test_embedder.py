"""The embedding-model seam: the engine and the indexer work with any `Embedder`, the real
ONNX model implements it with a pooling strategy per model, and the hashing test double runs
the whole index/search path without a model (fast tests, benchmarks/scale.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zero_latency.config import Settings
from zero_latency.embedder import (
    POOLINGS,
    Embedder,
    HashingEmbedder,
    OnnxEmbedder,
    cls_pooling,
    mean_pooling,
)
from zero_latency.engine import Engine
from zero_latency.models import resolve_bundled


def test_the_hashing_double_says_what_it_is_and_is_deterministic() -> None:
    double = HashingEmbedder(dimension=16)
    assert isinstance(double, Embedder)
    assert "test-double" in double.model_id and double.device == "test-double"
    assert "TEST DOUBLE" in (HashingEmbedder.__doc__ or "")
    vectors = double.embed(["alpha", "beta", "alpha"])
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert np.array_equal(HashingEmbedder(dimension=16).embed_query("alpha"), vectors[0])
    assert np.array_equal(double.submit(["beta"]).result()[0], vectors[1])
    assert double.count_tokens("three little words") == 3


def test_the_engine_indexes_and_searches_with_the_double(tmp_path: Path) -> None:
    """The indexer only uses the protocol: a model with no `.files`, no executor and no
    tokenizer indexes a workspace, and a chunk's own text finds it by dense search."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.md").write_text("# Keys\n\nRotate the signing keys every month.\n")
    (ws / "b.md").write_text("# Cats\n\nCats sleep most of the day.\n")
    double = HashingEmbedder(dimension=8, max_tokens=64)
    engine = Engine(Settings(storePath=str(tmp_path / "store")), model=double)
    try:
        engine.open_workspace(ws)
        report = engine.index()
        assert report.indexedFiles == 2 and report.embeddedChunks >= 2, report
        status = engine.status()
        assert status["model"] == {"id": "test-double:hashing-8", "dimension": 8,
                                   "device": "test-double", "languages": ["en"]}
        index = engine.indexes[ws.resolve()]
        assert index.max_tokens == 64 and index.count_tokens("a b c") == 3
    finally:
        engine.close()


def test_pooling_is_a_strategy_chosen_by_the_model() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]], dtype=np.int64)
    assert np.allclose(mean_pooling(hidden, mask), [[2.0, 1.0]])  # the padding is left out
    assert np.allclose(cls_pooling(hidden, mask), [[1.0, 0.0]])
    assert {"mean": mean_pooling, "cls": cls_pooling} == POOLINGS


def test_the_onnx_model_implements_the_protocol() -> None:
    files = resolve_bundled()
    model = OnnxEmbedder(files, threads=2)
    try:
        assert isinstance(model, Embedder)
        assert model.model_id == files.model_id and model.shipped_files == files
        # The graph it runs (optimised here, models.optimise) names the vectors.
        assert model.fingerprint == model.files.fingerprint()
        assert model.max_tokens == files.max_length - 2 and model.dimension == 384
        long_text = "word " * 1000
        assert model.count_tokens(long_text) == 1000, "the chunker's count never truncates"
        submitted = model.submit(["A man is eating food."]).result()
        assert np.allclose(submitted, model.embed(["A man is eating food."]), atol=1e-5)
    finally:
        model.close()
    with pytest.raises(RuntimeError):  # closed: the worker takes no more work
        model.submit(["late"]).result()


def test_urgent_work_runs_before_the_rest_of_a_background_job(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An opened file's embedding does not wait for the backfill's group, nor for the group
    queued behind it: the model runs it at the group's next text. The first text of the
    background job is held (a wrapper around the real ONNX run, which still runs) until the
    urgent job is queued: that ordering is what is tested, not the machine's speed."""
    model = OnnxEmbedder(resolve_bundled(), threads=2)
    try:
        real_run = model._run
        urgent_queued = threading.Event()

        def held(batch: list[list[int]]) -> Any:
            if threading.current_thread().name == "zl-embed":
                assert urgent_queued.wait(120)
            return real_run(batch)

        monkeypatch.setattr(model, "_run", held)
        finished: list[str] = []
        background = model.submit([f"backfill text number {i}" for i in range(20)])
        queued = model.submit(["the next backfill group"])
        urgent = model.submit(["the file the user just opened"], urgent=True)
        for name, future in (("background", background), ("queued", queued),
                             ("urgent", urgent)):
            future.add_done_callback(lambda _f, name=name: finished.append(name))
        urgent_queued.set()
        vectors = {name: f.result(timeout=300) for name, f in
                   (("urgent", urgent), ("background", background), ("queued", queued))}
        assert finished == ["urgent", "background", "queued"]
        assert np.allclose(vectors["urgent"], model.embed(["the file the user just opened"]),
                           atol=1e-5), "an urgent job's vectors are the model's own"
        assert np.allclose(vectors["background"][3], model.embed(["backfill text number 3"])[0],
                           atol=1e-5), "the interrupted job's vectors are unharmed"
    finally:
        model.close()
