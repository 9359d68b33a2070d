"""The `Store` contract, run against every backend: the embedded Qdrant Edge store in a temp
folder, and the Qdrant server store through qdrant-client's in-process local mode (no Qdrant
server runs on this machine; see test_server_store.py for what local mode cannot show).

A new backend passes this suite by adding one entry to `BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from qdrant_client import QdrantClient

from zero_latency.stores import (
    MARKER_HASH,
    ChunkPayload,
    ChunkPoint,
    EdgeStore,
    PathFilter,
    SparseVec,
    Store,
    file_marker_id,
    point_id,
)
from zero_latency.stores.server import ServerStore

DIM = 4
FP = "contract/model#1"
Opener = Callable[[], Store]


def unit(*xs: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    v = np.asarray(xs, dtype=np.float32)
    return cast(np.ndarray[Any, np.dtype[np.float32]], v / np.linalg.norm(v))


def chunk(path: str, text: str, dense: np.ndarray[Any, np.dtype[np.float32]] | None,
          terms: list[int], language: str = "markdown") -> ChunkPoint:
    chunk_hash = f"h-{text}"
    payload: ChunkPayload = {
        "path": path, "text": text, "language": language, "chunk_hash": chunk_hash,
        "file_hash": f"f-{path}", "mtime_ns": 1, "size": 10, "source": "disk", "start": 0,
        "end": 1, "heading": [], "title": path}
    return ChunkPoint(id=point_id(path, chunk_hash, 0), dense=dense,
                      sparse=SparseVec(terms, [1.0] * len(terms)), payload=payload)


def marker(path: str) -> ChunkPoint:
    payload: ChunkPayload = {"path": path, "chunk_hash": MARKER_HASH, "file_hash": "f-empty",
                             "mtime_ns": 1, "size": 0, "source": "disk",
                             "language": "plaintext"}
    return ChunkPoint(id=file_marker_id(path), dense=None, sparse=SparseVec([], []),
                      payload=payload)


ALPHA = chunk("a.md", "alpha", unit(1, 0, 0, 0), [1, 2])
BETA = chunk("b.md", "beta", unit(0, 1, 0, 0), [3])
GAMMA = chunk("c.py", "gamma", unit(0, 0, 1, 0), [4, 5], language="python")
SAMPLE = [ALPHA, BETA, GAMMA]


@pytest.fixture(params=["edge", "server"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the same store again each call (after the previous one is closed)."""
    if request.param == "edge":
        yield lambda: EdgeStore(tmp_path / "store", FP, DIM)
        return
    client = QdrantClient(location=":memory:")
    workspace = tmp_path / "ws"
    yield lambda: ServerStore("http://qdrant.test:6333", None, workspace, FP, DIM,
                              client=client)
    client.close()


@pytest.fixture
def store(opener: Opener) -> Iterator[Store]:
    opened = opener()
    yield opened
    opened.close()


def ids(hits: list[Any]) -> list[str]:
    return [h.id for h in hits]


def test_upsert_then_query_in_every_mode(store: Store) -> None:
    store.upsert(SAMPLE)
    assert store.count() == 3
    semantic = store.query(unit(0, 1, 0.1, 0), None, "semantic", 3, PathFilter())
    assert semantic[0].id == BETA.id and semantic[0].payload["text"] == "beta"
    keyword = store.query(None, SparseVec([4], [1.0]), "keyword", 3, PathFilter())
    assert ids(keyword) == [GAMMA.id]
    hybrid = store.query(unit(1, 0, 0, 0), SparseVec([1], [1.0]), "hybrid", 3, PathFilter())
    assert hybrid[0].id == ALPHA.id
    # Nothing to search with: no hits rather than an error.
    assert store.query(None, SparseVec([], []), "keyword", 3, PathFilter()) == []


def test_filters_by_path_and_language(store: Store) -> None:
    store.upsert(SAMPLE)
    query = unit(1, 1, 1, 0)
    only = store.query(query, None, "semantic", 5, PathFilter(only=["a.md", "c.py"]))
    assert set(ids(only)) == {ALPHA.id, GAMMA.id}
    never = store.query(query, None, "semantic", 5, PathFilter(never=["a.md"]))
    assert set(ids(never)) == {BETA.id, GAMMA.id}
    python = store.query(query, SparseVec([1, 3, 4], [1.0, 1.0, 1.0]), "hybrid", 5,
                         PathFilter(languages=["python"]))
    assert ids(python) == [GAMMA.id]
    # An empty allow-list matches nothing, never everything.
    assert store.query(query, None, "semantic", 5, PathFilter(only=[])) == []
    assert store.query(query, None, "semantic", 5, PathFilter(languages=[])) == []


def test_delete_by_id_and_by_path(store: Store) -> None:
    store.upsert(SAMPLE)
    store.delete([ALPHA.id])
    store.delete_paths(["c.py"])
    assert store.count() == 1
    assert set(store.manifest()) == {"b.md"}


def test_manifest_payload_and_vectors(store: Store) -> None:
    store.upsert([*SAMPLE, marker("empty.txt")])
    manifest = store.manifest()
    assert set(manifest) == {"a.md", "b.md", "c.py", "empty.txt"}
    assert manifest["a.md"].chunk_ids == {ALPHA.id: "h-alpha"}
    assert manifest["empty.txt"].chunk_total() == 0
    store.set_payload([ALPHA.id], {"mtime_ns": 7})
    assert store.manifest()["a.md"].mtime_ns == 7
    vectors = store.vectors([ALPHA.id, BETA.id])
    assert np.allclose(vectors[ALPHA.id], unit(1, 0, 0, 0), atol=1e-6)
    assert set(store.vectors_by_hash(["h-beta", "h-none"])) == {"h-beta"}


def test_chunks_without_dense_vectors_are_pending_until_added(store: Store) -> None:
    keyword_only = [chunk(p.payload["path"], p.payload.get("text", ""), None,
                          p.sparse.indices) for p in SAMPLE]
    for point in keyword_only:  # the chunker's token count, kept with b.md's chunk only
        if point.payload["path"] == "b.md":
            point.payload["tokens"] = 7
    store.upsert([*keyword_only, marker("empty.txt")])
    counts = store.counts()
    assert (counts.chunks, counts.embedded, counts.pending) == (3, 0, 3)  # markers not counted
    # Keyword search finds them; semantic search has nothing to compare yet.
    assert ids(store.query(None, SparseVec([3], [1.0]), "keyword", 3, PathFilter())) == [BETA.id]
    assert store.query(unit(0, 1, 0, 0), None, "semantic", 3, PathFilter()) == []
    pending = store.pending(["b.md"], 10)
    assert [(p.id, p.path) for p in pending] == [(BETA.id, "b.md")]
    assert pending[0].text == "b.md\n\nbeta"  # what the model sees: title, then the text
    assert pending[0].tokens == 7
    store.add_dense({BETA.id: unit(0, 1, 0, 0)})
    assert store.counts().embedded == 1
    assert {p.id for p in store.pending(None, 10)} == {ALPHA.id, GAMMA.id}
    assert {p.tokens for p in store.pending(None, 10)} == {0}  # not counted: 0
    # The vector came in; the keyword vector and payload stayed.
    assert ids(store.query(unit(0, 1, 0, 0), None, "semantic", 3, PathFilter())) == [BETA.id]
    assert ids(store.query(None, SparseVec([3], [1.0]), "keyword", 3, PathFilter())) == [BETA.id]
    assert store.manifest()["b.md"].file_hash == "f-b.md"


def test_clear_flush_and_reopen(opener: Opener) -> None:
    first = opener()
    first.upsert(SAMPLE)
    first.flush()
    first.close()
    again = opener()
    try:
        assert again.count() == 3 and set(again.manifest()) == {"a.md", "b.md", "c.py"}
        again.clear()
        assert again.count() == 0 and again.manifest() == {}
        again.upsert([BETA])  # a cleared store takes writes as a new one does
        assert ids(again.query(None, SparseVec([3], [1.0]), "keyword", 3,
                               PathFilter())) == [BETA.id]
        assert again.counts().chunks == 1
    finally:
        again.close()


def test_candidate_lists_without_payload_then_payloads_by_id(store: Store) -> None:
    """What hybrid fuses itself during the backfill: ids and scores only, then the payloads
    of the hits it keeps (an id not stored is left out)."""
    store.upsert(SAMPLE)
    dense = store.query(unit(1, 0, 0, 0), None, "semantic", 3, PathFilter(), payload=False)
    assert dense[0].id == ALPHA.id and dense[0].payload == {}
    keyword = store.query(None, SparseVec([4], [1.0]), "keyword", 3, PathFilter(),
                          payload=False)
    assert ids(keyword) == [GAMMA.id] and keyword[0].score > 0 and keyword[0].payload == {}
    found = store.payloads([GAMMA.id, BETA.id, "00000000-0000-0000-0000-000000000000"])
    assert set(found) == {GAMMA.id, BETA.id}
    assert found[GAMMA.id]["text"] == "gamma" and found[BETA.id]["path"] == "b.md"


def test_sparse_vectors_by_id(store: Store) -> None:
    """The stored BM25 vectors of given chunks (hybrid's keyword evidence reads their terms),
    with or without a dense vector; an id not stored is left out."""
    weighted = chunk("w.md", "weighted", None, [7, 11])
    weighted.sparse.values = [0.25, 1.5]
    store.upsert([*SAMPLE, weighted])
    found = store.sparse_vectors([ALPHA.id, GAMMA.id, weighted.id,
                                  "00000000-0000-0000-0000-000000000000"])
    assert set(found) == {ALPHA.id, GAMMA.id, weighted.id}
    for point in (ALPHA, GAMMA, weighted):
        got = found[point.id]
        assert sorted(zip(got.indices, got.values, strict=True)) == sorted(
            zip(point.sparse.indices, point.sparse.values, strict=True))
    assert store.sparse_vectors([]) == {}


def test_cosines_are_scored_by_the_store(store: Store) -> None:
    """Hybrid's cosines: each stored chunk's similarity to a query vector, as numpy gives it
    from the chunk's stored vector (to float precision); a chunk without a dense vector yet and
    an id not stored are left out."""
    waiting = chunk("w.md", "waiting", None, [1])
    store.upsert([*SAMPLE, waiting])
    unknown = "00000000-0000-0000-0000-000000000000"
    for query in (unit(1, 0, 0, 0), unit(0.3, -0.2, 0.9, 0.1)):
        stored = store.vectors(ids(SAMPLE))
        found = store.cosines(query, [*ids(SAMPLE), waiting.id, unknown])
        assert set(found) == set(stored) and waiting.id not in found and unknown not in found
        for pid, vector in stored.items():
            assert abs(found[pid] - float(vector @ query)) < 1e-6, pid
    assert store.cosines(unit(1, 0, 0, 0), []) == {}
