"""ServerStore: the `Store` protocol on a Qdrant server through qdrant-client.

No Qdrant server can run on this machine, so qdrant-client's in-process local mode
(`QdrantClient(location=":memory:")`) stands in for the server, handed in through `client=`:
it speaks the same client API (collections with metadata, named dense + sparse vectors with
IDF, filters, prefetch + RRF/DBSF fusion). What local mode cannot show (payload indexes do
nothing there; HNSW per tenant) is not tested here. Two faults cannot be caused against it:
transient failures, covered by a wrapper client that fails its first calls (a mock, for that
reason only), and an unreachable server, covered by a real connection to a closed port.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from zero_latency.config import Settings
from zero_latency.embedder import OnnxEmbedder
from zero_latency.engine import Engine
from zero_latency.errors import StoreError, StoreIncompatibleError
from zero_latency.indexer import WorkspaceIndex
from zero_latency.models import resolve_bundled
from zero_latency.search import search
from zero_latency.sparse import SparseEncoder
from zero_latency.stores import ChunkPoint, Fusion, PathFilter, SparseVec, point_id
from zero_latency.stores.server import (
    UPSERT_BATCH,
    ServerStore,
    collection_name,
    workspace_key,
)

DIM = 4
FP = "test/model@int8#1234"


@pytest.fixture
def client() -> Iterator[QdrantClient]:
    local = QdrantClient(location=":memory:")
    yield local
    local.close()


def make_store(client: QdrantClient, workspace: Path, fingerprint: str = FP,
               **kwargs: Any) -> ServerStore:
    return ServerStore("http://qdrant.test:6333", None, workspace, fingerprint, DIM,
                       client=client, **kwargs)


def unit(*xs: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    v = np.asarray(xs, dtype=np.float32)
    return cast(np.ndarray[Any, np.dtype[np.float32]], v / np.linalg.norm(v))


def chunk(path: str, text: str, dense: np.ndarray[Any, np.dtype[np.float32]] | None,
          terms: list[int], *, occurrence: int = 0, mtime_ns: int = 1) -> ChunkPoint:
    chunk_hash = f"h-{text}"
    return ChunkPoint(
        id=point_id(path, chunk_hash, occurrence), dense=dense,
        sparse=SparseVec(terms, [1.0] * len(terms)),
        payload={"path": path, "text": text, "language": "markdown", "chunk_hash": chunk_hash,
                 "file_hash": f"f-{path}", "mtime_ns": mtime_ns, "size": 10, "source": "disk",
                 "start": 0, "end": 1, "heading": [], "title": path})


def sample() -> list[ChunkPoint]:
    return [
        chunk("a.md", "alpha", unit(1, 0, 0, 0), [1, 2]),
        chunk("b.md", "beta", unit(0, 1, 0, 0), [3]),
        chunk("c.md", "gamma", unit(0, 0, 1, 0), [4, 5]),
    ]


# --- the protocol ------------------------------------------------------------------------------


def test_query_in_all_three_modes(client: QdrantClient, tmp_path: Path) -> None:
    store = make_store(client, tmp_path)
    points = sample()
    store.upsert(points)
    assert store.kind == "server" and store.location == "http://qdrant.test:6333"
    assert store.count() == 3

    semantic = store.query(unit(0.1, 1, 0, 0), None, "semantic", 3, PathFilter())
    assert semantic[0].payload["path"] == "b.md"
    assert semantic[0].id == points[1].id  # the indexer's id, not the namespaced server id
    assert "workspace" not in semantic[0].payload and "zl_id" not in semantic[0].payload

    keyword = store.query(None, SparseVec([4], [1.0]), "keyword", 3, PathFilter())
    assert [h.payload["path"] for h in keyword] == ["c.md"]  # only c.md has term 4

    # Dense favours a.md, keyword favours c.md; both lists rank c.md high, so fusion does too.
    dense_q, sparse_q = unit(1, 0, 0.9, 0), SparseVec([5], [1.0])
    for fusion in (Fusion("rrf"), Fusion("dbsf"), Fusion.parse("rrf:k=20,dense=1.5")):
        hybrid = store.query(dense_q, sparse_q, "hybrid", 3, PathFilter(), fusion)
        assert hybrid[0].payload["path"] == "c.md", str(fusion)
        assert hybrid[0].score > hybrid[-1].score

    # Hybrid without a usable sparse query falls back to dense, as the embedded store does.
    assert store.query(dense_q, SparseVec([], []), "hybrid", 1, PathFilter())[0].payload[
        "path"] == "a.md"
    assert store.query(None, None, "semantic", 3, PathFilter()) == []

    only = store.query(dense_q, None, "semantic", 3, PathFilter(only=["b.md"]))
    assert [h.payload["path"] for h in only] == ["b.md"]
    assert store.query(dense_q, None, "semantic", 3, PathFilter(only=[])) == []
    never = store.query(dense_q, None, "semantic", 3, PathFilter(never=["a.md", "c.md"]))
    assert [h.payload["path"] for h in never] == ["b.md"]


def test_workspaces_share_a_collection_but_see_only_their_own_points(
        client: QdrantClient, tmp_path: Path) -> None:
    ws_a, ws_b = tmp_path / "a", tmp_path / "b"
    store_a, store_b = make_store(client, ws_a), make_store(client, ws_b)
    assert store_a.collection == store_b.collection == collection_name(FP, DIM)
    assert store_a.key != store_b.key
    # Same relative paths and chunk text, so the same indexer ids (two clones of one repo):
    # neither may overwrite the other.
    store_a.upsert(sample())
    store_b.upsert(sample()[:2])
    assert (store_a.count(), store_b.count()) == (3, 2)
    assert client.count(store_a.collection, exact=True).count == 5

    assert set(store_b.manifest()) == {"a.md", "b.md"}
    hits = store_b.query(unit(0, 0, 1, 0), None, "semantic", 10, PathFilter())
    assert {h.payload["path"] for h in hits} == {"a.md", "b.md"}
    assert store_b.query(None, SparseVec([4], [1.0]), "keyword", 10, PathFilter()) == []

    store_b.delete_paths(["a.md"])
    store_b.delete([sample()[1].id])
    assert store_b.count() == 0
    assert store_a.count() == 3 and set(store_a.manifest()) == {"a.md", "b.md", "c.md"}
    p = sample()[0]
    assert set(store_a.vectors([p.id])) == {p.id}
    assert store_b.vectors([p.id]) == {}
    assert store_b.vectors_by_hash([p.payload["chunk_hash"]]) == {}


def test_manifest_set_payload_and_deletes(client: QdrantClient, tmp_path: Path) -> None:
    store = make_store(client, tmp_path)
    points = [*sample(), chunk("a.md", "alpha two", unit(1, 1, 0, 0), [2])]
    store.upsert(points)
    files = store.manifest()
    assert set(files) == {"a.md", "b.md", "c.md"}
    a = files["a.md"]
    assert a.chunk_ids == {points[0].id: "h-alpha", points[3].id: "h-alpha two"}
    assert (a.size, a.mtime_ns, a.file_hash, a.source, a.consistent) == (
        10, 1, "f-a.md", "disk", True)

    store.set_payload([points[0].id, points[3].id], {"size": 20, "mtime_ns": 7})
    a = store.manifest()["a.md"]
    assert (a.size, a.mtime_ns, a.consistent) == (20, 7, True)
    store.set_payload([points[0].id], {"mtime_ns": 8})  # half a file rewritten: flagged
    assert not store.manifest()["a.md"].consistent

    store.delete_paths(["a.md", "c.md"])
    assert set(store.manifest()) == {"b.md"}
    store.delete([points[1].id])
    assert store.manifest() == {} and store.count() == 0
    store.delete_paths([])  # no-ops, no request
    store.delete([])
    store.flush()


def test_vectors_and_vectors_by_hash(client: QdrantClient, tmp_path: Path) -> None:
    store = make_store(client, tmp_path)
    points = [*sample(), chunk("k.md", "keyword only", None, [9])]
    store.upsert(points)
    got = store.vectors([p.id for p in points] + [str(uuid.uuid4())])
    assert set(got) == {p.id for p in points[:3]}  # no dense vector, no entry
    for p in points[:3]:
        assert p.dense is not None
        np.testing.assert_allclose(got[p.id], p.dense, rtol=1e-6)
    by_hash = store.vectors_by_hash(["h-beta", "h-gamma", "h-absent"])
    assert set(by_hash) == {"h-beta", "h-gamma"}
    assert points[1].dense is not None
    np.testing.assert_allclose(by_hash["h-beta"], points[1].dense, rtol=1e-6)
    assert store.vectors([]) == {} and store.vectors_by_hash([]) == {}


def test_a_collection_of_another_model_is_refused(client: QdrantClient,
                                                  tmp_path: Path) -> None:
    make_store(client, tmp_path).upsert(sample())
    # "test/model" and "test_model" slug alike: same collection name, another model.
    other = FP.replace("/", "_")
    assert collection_name(other, DIM) == collection_name(FP, DIM)
    with pytest.raises(StoreIncompatibleError, match="never mixed"):
        make_store(client, tmp_path, other)
    # A collection of that name made by something else (no metadata) is refused too.
    client.create_collection(collection_name("foreign", DIM), vectors_config={
        "dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)})
    with pytest.raises(StoreIncompatibleError, match="no Zero-Latency metadata"):
        make_store(client, tmp_path, "foreign")
    # The original reopens fine, its points intact.
    assert make_store(client, tmp_path).count() == 3


def test_upserts_are_batched(client: QdrantClient, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(client, tmp_path)
    sizes: list[int] = []
    real_upsert = client.upsert

    def counting_upsert(name: str, points: list[models.PointStruct], **kw: Any) -> Any:
        sizes.append(len(points))
        return real_upsert(name, points=points, **kw)

    monkeypatch.setattr(client, "upsert", counting_upsert)
    rng = np.random.default_rng(0)
    n = UPSERT_BATCH * 2 + 10
    store.upsert([chunk(f"f{i}.md", f"t{i}", rng.random(DIM, dtype=np.float32), [i])
                  for i in range(n)])
    assert sizes == [UPSERT_BATCH, UPSERT_BATCH, 10]
    assert store.count() == n and len(store.manifest()) == n


# --- failures ----------------------------------------------------------------------------------


class FlakyClient:
    """A mock, because a live server cannot be made to fail on cue: the first `failures`
    calls through it raise `error()`, then it passes calls to the real (local) client."""

    def __init__(self, real: QdrantClient, failures: int,
                 error: Callable[[], Exception]) -> None:
        self.real, self.failures, self.error = real, failures, error
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self.failures > 0:
                self.failures -= 1
                raise self.error()
            return target(*args, **kwargs)
        return call


def refused() -> Exception:
    return ResponseHandlingException(httpx.ConnectError("[Errno 111] Connection refused"))


def server_error(status: int) -> Callable[[], Exception]:
    return lambda: UnexpectedResponse(status, "boom", b'{"status": {"error": "boom"}}',
                                      httpx.Headers())


def test_transient_errors_are_retried_with_capped_backoff(client: QdrantClient,
                                                          tmp_path: Path) -> None:
    flaky = FlakyClient(client, 0, refused)
    delays: list[float] = []
    store = make_store(cast(QdrantClient, flaky), tmp_path, retries=5, backoff=0.1,
                       max_backoff=0.3, sleep=delays.append)
    flaky.failures = 4
    store.upsert(sample())
    assert delays == [0.1, 0.2, 0.3, 0.3]  # doubling, capped
    assert flaky.calls.count("upsert") == 5
    assert store.count() == 3

    delays.clear()
    flaky.failures, flaky.error = 2, server_error(503)
    assert set(store.manifest()) == {"a.md", "b.md", "c.md"}
    assert delays == [0.1, 0.2]

    flaky.failures = 5
    with pytest.raises(StoreError, match=r"failed to count points after 5 tries \(HTTP 503"):
        store.count()

    delays.clear()
    flaky.failures, flaky.error = 1, server_error(400)  # not transient: no retry
    with pytest.raises(StoreError, match=r"rejected .* \(HTTP 400\): boom"):
        store.count()
    assert delays == []
    flaky.failures, flaky.error = 1, server_error(401)
    with pytest.raises(StoreError, match="check storeApiKey"):
        store.count()

    flaky.failures, flaky.error = 5, refused
    with pytest.raises(StoreError, match=r"qdrant\.test:6333 is unreachable .*ConnectError"):
        store.delete_paths(["a.md"])
    assert store.count() == 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_a_clear_store_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # bound then released: nothing listens there
    with pytest.raises(StoreError) as info:
        ServerStore(url, None, tmp_path, FP, DIM, timeout=1, retries=2, backoff=0.01)
    assert f"Qdrant at {url} is unreachable" in info.value.message
    assert "remove storeUrl" in info.value.message


def test_the_engine_opens_a_server_store_for_store_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    engine = Engine(Settings(model="bundled", storeUrl=url, storePath=str(tmp_path / "s")))
    try:
        with pytest.raises(StoreError, match=re.escape(f"Qdrant at {url} is unreachable")):
            engine.open_workspace(tmp_path)
        assert url in engine.store_errors[tmp_path.resolve()].message
    finally:
        engine.close()


def test_a_workspace_indexed_on_the_server_is_found_without_creating_anything(
        client: QdrantClient, tmp_path: Path) -> None:
    """What `zl search` inside a workspace configured with storeUrl asks (Engine.indexed_root
    through stores.index_exists): Edge's folder layout is not consulted."""
    ws = tmp_path / "ws"
    name = collection_name(FP, DIM)

    def holds(folder: Path) -> bool:
        return ServerStore.holds_workspace("http://qdrant.test:6333", None, folder, FP, DIM,
                                           client=client)

    assert not holds(ws) and not client.collection_exists(name), "nothing is created"
    store = make_store(client, ws)
    store.upsert(sample())
    assert holds(ws) and not holds(ws / "sub") and not holds(tmp_path)
    store.clear()
    assert not holds(ws)


def test_the_engine_asks_the_server_whether_a_folder_has_an_index(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    engine = Engine(Settings(model="bundled", storeUrl=url, storePath=str(tmp_path / "s")))
    try:  # no Edge folder is looked at: the configured server is asked (and is down here)
        with pytest.raises(StoreError, match=re.escape(f"Qdrant at {url} is unreachable")):
            engine.indexed_root(tmp_path)
    finally:
        engine.close()


# --- end to end --------------------------------------------------------------------------------


DOCS = {
    "cooking.md": "# Baking bread\n\nKnead the dough, let the yeast rise overnight, then bake "
                  "the loaf in a hot oven until the crust is brown.\n",
    "rust.md": "# Ownership\n\nEach value in Rust has an owner. When the owner goes out of "
               "scope the value is dropped, and the borrow checker enforces references.\n",
    "garden.md": "# Tomatoes\n\nWater tomato plants deeply at the roots and stake them as they "
                 "grow; prune the side shoots for bigger fruit.\n",
}


def test_index_and_search_a_workspace_through_the_server_store(client: QdrantClient,
                                                               tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    files = resolve_bundled()
    embedder = OnnxEmbedder(files, threads=2)
    sparse = SparseEncoder()
    settings = Settings(model="bundled", storePath=str(tmp_path / "unused"))
    try:
        def open_index() -> WorkspaceIndex:
            store = ServerStore("http://qdrant.test:6333", None, root, files.fingerprint(),
                                embedder.dimension, client=client)
            return WorkspaceIndex(root, settings, store, embedder, sparse)

        index = open_index()
        report = index.sync()
        assert (report.indexedFiles, report.errors) == (3, [])
        assert report.embeddedChunks == report.chunks >= 3
        for query, mode, expected in (
                ("when is a value dropped by its owner", "semantic", "rust.md"),
                ("yeast dough oven", "keyword", "cooking.md"),
                ("how should I water my tomato plants", "hybrid", "garden.md")):
            result = search([index], embedder, sparse, query, limit=3, mode=mode)  # type: ignore[arg-type]
            assert result["hits"][0]["path"] == expected, (query, result["hits"])
            assert result["hits"][0]["uri"] == (root / expected).as_uri()

        # Reopened (a new process): the manifest read back from the server is complete, so
        # nothing is re-read or re-embedded.
        index.store.close()
        again = open_index()
        assert set(again.files) == set(DOCS)
        report = again.sync()
        assert (report.unchangedFiles, report.embeddedChunks) == (3, 0)

        (root / "garden.md").unlink()
        assert again.sync().removedFiles == 1
        assert set(again.store.manifest()) == {"cooking.md", "rust.md"}
        assert workspace_key(root) == workspace_key(root / ".." / "ws")
    finally:
        embedder.close()


def test_rebuilding_a_workspace_on_the_server_leaves_other_workspaces_alone(
        client: QdrantClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    roots = [tmp_path / "one", tmp_path / "two"]
    for root in roots:
        root.mkdir()
        for name, text in DOCS.items():
            (root / name).write_text(text, encoding="utf-8")
    engine = Engine(Settings(model="bundled", storeUrl="http://qdrant.test:6333",
                             storePath=str(tmp_path / "unused")))
    # The in-process client stands in for the server (the engine would dial the URL).
    monkeypatch.setattr(engine, "_open_store", lambda root: ServerStore(
        "http://qdrant.test:6333", None, root, engine.model_fingerprint(), engine.dimension(),
        client=client))
    try:
        for root in roots:
            engine.open_workspace(root)
        engine.index(roots)
        counts = {r: engine.indexes[r.resolve()].store.count() for r in roots}
        assert all(n >= 3 for n in counts.values())
        rebuilt = engine.rebuild_workspace(roots[0])
        assert rebuilt.store.count() == 0 and rebuilt.files == {}
        assert engine.indexes[roots[1].resolve()].store.count() == counts[roots[1]]
        report = engine.index([roots[0]])
        assert report.indexedFiles == 3 and report.embeddedChunks == report.chunks
        assert rebuilt.store.count() == counts[roots[0]]
    finally:
        engine.close()


class _SharedServer:
    """The in-process client handed to every ServerStore the engines open, as one server is
    to every client of it (the engine would dial storeUrl); `close` leaves it open for the
    next, as closing a connection leaves the server running."""

    def __init__(self, client: QdrantClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def close(self) -> None:
        pass


def test_other_index_settings_get_their_own_tenant_and_copy_vectors_from_the_default(
        client: QdrantClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two clients of one server on one folder, one of them excluding `notes/**` (an
    editor's workspace settings): each has an index of its own settings, as with the
    embedded store (`Settings.index_variant`). They shared one tenant before, and every run
    of one undid the other's: the excluding client's run removed the notes, the next
    default run read and embedded them again. The excluding client's new tenant copies
    the default tenant's vectors (same collection, so the same model) instead of embedding."""
    from zero_latency.stores import server as server_module

    monkeypatch.setattr(server_module, "QdrantClient",
                        lambda *args, **kwargs: _SharedServer(client))
    root = tmp_path / "ws"
    (root / "notes").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "notes" / "n.md").write_text("# Quokka\n\nThe quokka note is a private one.\n")
    url = "http://qdrant.test:6333"
    plain = Engine(Settings(model="bundled", storeUrl=url, storePath=str(tmp_path / "a")))
    excluding = Engine(Settings(model="bundled", storeUrl=url, storePath=str(tmp_path / "b"),
                                exclude=["notes/**"]))
    try:
        plain.open_workspace(root)
        first = plain.index([root])
        assert first.files == 4 and first.embeddedChunks == first.chunks > 0, first

        assert not excluding.has_index(root), "its own tenant, empty until it indexes"
        excluding.open_workspace(root)
        own = excluding.index([root])
        assert own.files == 3 and own.chunks > 0 and own.embeddedChunks == 0, own

        def paths(engine: Engine) -> set[str]:
            return {h["path"] for h in engine.search("quokka note", mode="keyword")["hits"]}

        assert paths(excluding) == set() and paths(plain) == {"notes/n.md"}
        again = plain.index([root])  # the shared tenant had lost the notes here
        assert again.embeddedChunks == 0 and again.removedFiles == 0, again
        assert excluding.has_index(root) and plain.has_index(root)
        key = workspace_key(root)
        assert workspace_key(root, "") == key, "the default settings keep the folder's key"
        assert workspace_key(root, excluding.settings.index_variant()) != key
    finally:
        excluding.close()
        plain.close()
