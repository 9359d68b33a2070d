"""Vector store on a Qdrant server or cluster (`storeUrl`), through qdrant-client.

Layout: ONE collection per model (`zl_<model slug>_<dimension>`), shared by every workspace
that uses that model, with the workspace as tenant:

- named vectors `dense` (cosine) and sparse `bm25` (IDF modifier), as in the embedded store;
- payload field `workspace` = a hash of the workspace's resolved path (and of the settings
  that shape its index, where they are not the defaults: `Settings.index_variant`, as the
  embedded store's folder), indexed as a keyword with `is_tenant=True`, plus keyword indexes
  on `path`, `chunk_hash` and `language`;
- HNSW built per tenant (`m=0`, `payload_m=16`): every query is filtered to one workspace,
  so a global graph would never be used;
- the collection's `metadata` (Qdrant collection metadata, kept since the 1.16 servers)
  names the schema, model fingerprint and dimension; a collection built otherwise is refused
  (`StoreIncompatibleError`): vectors of two models are never mixed.

Point ids: the indexer's ids (`stores.point_id`) depend only on the relative path and chunk
text, so two clones of one repository would collide in a shared collection. The server id is
therefore uuid5(workspace key, indexer id), and the indexer's id travels in the payload field
`zl_id`, from which reads map back. Every read and write is scoped to the workspace: by
filter (`workspace == key`) or by these namespaced ids.

Transient failures (connection errors, timeouts, 429/5xx) are retried with exponential
back-off; every write is idempotent (upsert/delete by id or filter), so a retry is safe.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ..errors import StoreError, StoreIncompatibleError
from .base import (
    DENSE,
    HYBRID_FUSION,
    KEYWORD_FIELDS,
    MANIFEST_FIELDS,
    MARKER_HASH,
    SCHEMA_VERSION,
    SPARSE,
    ChunkPayload,
    ChunkPoint,
    Conditions,
    FileState,
    Fusion,
    Mode,
    PathFilter,
    PendingChunk,
    SparseVec,
    StoreCounts,
    StoredHit,
    Vector,
    add_to_manifest,
    as_payload,
    chunk_tokens,
    dense_of,
    embedding_text,
    iter_batches,
    plan_query,
    sparse_of,
    vectors_by_chunk_hash,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

WORKSPACE = "workspace"  # tenant payload field
ID_FIELD = "zl_id"  # the indexer's point id (the server id is namespaced by workspace)
INTERNAL_FIELDS = (WORKSPACE, ID_FIELD)
SERVER_NAMESPACE = uuid.UUID("0b6c9a52-2f0e-4f1e-9d7e-6c1d3a8e5b47")
UPSERT_BATCH = 256
SCROLL_PAGE = 1024
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: A file's marker point (no chunks), left out of chunk counts and of the backfill.
_NOT_MARKER = models.FieldCondition(key="chunk_hash", match=models.MatchValue(value=MARKER_HASH))


def collection_name(model_fingerprint: str, dimension: int) -> str:
    """`zl_<slug>_<dim>`: one collection per model. Names that slug alike are told apart by
    the fingerprint in the collection metadata (the second is refused, not mixed in)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", model_fingerprint).strip("_")[:120] or "model"
    return f"zl_{slug}_{dimension}"


def workspace_key(workspace: Path, variant: str = "") -> str:
    """The tenant key: stable for a folder (and index-shaping settings) across runs, opaque
    (the path is not sent). The default settings' key is the folder's alone, as before
    indexes had variants."""
    named = str(workspace.resolve()) + (f"~{variant}" if variant else "")
    return hashlib.sha256(named.encode()).hexdigest()[:32]


class ServerStore:
    """The `Store` protocol against a Qdrant server: one tenant of a per-model collection."""

    kind = "server"

    def __init__(self, url: str, api_key: str | None, workspace: Path, model_fingerprint: str,
                 dimension: int, *, variant: str = "", client: QdrantClient | None = None,
                 timeout: float = 10.0, retries: int = 4, backoff: float = 0.25,
                 max_backoff: float = 4.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self.location = url
        self.workspace = workspace
        self.key = workspace_key(workspace, variant)
        # Where vectors are looked up by chunk hash: this tenant, and for other settings the
        # default settings' tenant of the folder too (same collection, so the same model): a
        # client with its own `exclude` copies the vectors instead of embedding them again.
        self._lenders = sorted({self.key, workspace_key(workspace)})
        self.lends_beyond_itself = len(self._lenders) > 1
        self.collection = collection_name(model_fingerprint, dimension)
        self._retries = max(1, retries)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._owns_client = client is None
        self._closed = False
        if client is None:
            try:
                # check_compatibility off: it would make its own request (and only warn);
                # opening the collection below tells reachability and version problems.
                client = QdrantClient(url=url, api_key=api_key or None,
                                      timeout=max(1, round(timeout)), check_compatibility=False)
            except Exception as err:  # bad URL and the like, raised by the client itself
                raise StoreError(f"storeUrl {url!r} cannot be used: {err}. Fix storeUrl, or "
                                 "remove it to use the embedded store") from err
        self.client = client
        self._tenant = models.FieldCondition(key=WORKSPACE,
                                             match=models.MatchValue(value=self.key))
        self._open(model_fingerprint, dimension)

    # --- opening -----------------------------------------------------------------------------

    def _open(self, fingerprint: str, dimension: int) -> None:
        expected: dict[str, Any] = {"zl_schema": SCHEMA_VERSION, "model": fingerprint,
                                    "dimension": dimension, "sparse": SPARSE}
        name = self.collection
        created = False
        if not self._call("check the collection", lambda: self.client.collection_exists(name)):
            created = self._create(expected, dimension)
        info = self._call("read the collection", lambda: self.client.get_collection(name))
        found = info.config.metadata or {}
        if {k: found.get(k) for k in expected} != expected:
            if created and not found:
                raise StoreError(
                    f"Qdrant at {self.url} did not keep the metadata of collection {name!r}: "
                    "the server is too old (collection metadata needs Qdrant 1.16 or newer). "
                    "Upgrade it, or remove storeUrl to use the embedded store")
            if not found:
                raise StoreIncompatibleError(
                    f"collection {name!r} on {self.url} has no Zero-Latency metadata: it was "
                    "made by something else. Delete or rename it, or point storeUrl elsewhere.")
            diff = ", ".join(f"{k}: collection has {found.get(k)!r}, wanted {v!r}"
                             for k, v in expected.items() if found.get(k) != v)
            raise StoreIncompatibleError(
                f"collection {name!r} on {self.url} was built differently ({diff}); vectors of "
                "two models are never mixed. Delete that collection to rebuild it.")
        self._check_vectors(info.config.params, dimension)
        # Indexes are created with the collection; a creator that died half way, or a
        # collection made by an older version, gets the missing ones now.
        have = set(info.payload_schema or {})
        for field, schema in self._indexes():
            if field not in have:
                self._create_index(field, schema)

    def _create(self, metadata: dict[str, Any], dimension: int) -> bool:
        """Create the collection; False when another process created it first."""
        name = self.collection
        try:
            self._call("create the collection", lambda: self.client.create_collection(
                name,
                vectors_config={DENSE: models.VectorParams(size=dimension,
                                                           distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(
                    modifier=models.Modifier.IDF)},
                hnsw_config=models.HnswConfigDiff(m=0, payload_m=16),
                metadata=metadata))
        except StoreError as err:
            if isinstance(err.__cause__, UnexpectedResponse) and err.__cause__.status_code == 409:
                return False
            raise
        except ValueError as err:  # local mode (tests): "Collection ... already exists"
            if "already exists" in str(err):
                return False
            raise
        log.info("created collection %s on %s", name, self.url)
        return True

    def _indexes(self) -> list[tuple[str, models.KeywordIndexParams]]:
        keyword = models.KeywordIndexType.KEYWORD
        return ([(WORKSPACE, models.KeywordIndexParams(type=keyword, is_tenant=True))]
                + [(f, models.KeywordIndexParams(type=keyword)) for f in KEYWORD_FIELDS])

    def _create_index(self, field: str, schema: models.KeywordIndexParams) -> None:
        with warnings.catch_warnings():
            # qdrant-client's local mode (the tests' stand-in for a server) has no payload
            # indexes and warns so on every call; a real server builds them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            self._call(f"index {field!r}", lambda: self.client.create_payload_index(
                self.collection, field, field_schema=schema, wait=True))

    def _check_vectors(self, params: models.CollectionParams, dimension: int) -> None:
        dense = params.vectors.get(DENSE) if isinstance(params.vectors, dict) else None
        sparse = (params.sparse_vectors or {}).get(SPARSE)
        problems = []
        if dense is None or dense.size != dimension or dense.distance != models.Distance.COSINE:
            problems.append(f"dense vector {DENSE!r} is not cosine of size {dimension}")
        if sparse is None or sparse.modifier != models.Modifier.IDF:
            problems.append(f"sparse vector {SPARSE!r} has no IDF modifier")
        if problems:
            raise StoreIncompatibleError(
                f"collection {self.collection!r} on {self.url}: {'; '.join(problems)}. Delete "
                "that collection to rebuild it.")

    # --- the retry wrapper -------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one request, retrying transient failures with capped exponential back-off."""
        for attempt in range(self._retries):
            try:
                return fn()
            except Exception as err:
                transient = _transient(err)
                if transient is None:
                    if isinstance(err, UnexpectedResponse):
                        raise StoreError(_rejected(self.url, what, err)) from err
                    raise
                if attempt + 1 >= self._retries:
                    if transient == "connection":
                        raise StoreError(
                            f"Qdrant at {self.url} is unreachable ({_reason(err)}): start it, "
                            "check storeUrl/storeApiKey, or remove storeUrl to use the "
                            "embedded store") from err
                    raise StoreError(f"Qdrant at {self.url} failed to {what} after "
                                     f"{self._retries} tries ({_reason(err)})") from err
                delay = min(self._max_backoff, self._backoff * 2 ** attempt)
                log.warning("Qdrant at %s: %s failed (%s); retrying in %.2fs",
                            self.url, what, _reason(err), delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    # --- ids and filters ---------------------------------------------------------------------

    def _sid(self, pid: str) -> str:
        return str(uuid.uuid5(SERVER_NAMESPACE, f"{self.key}\0{pid}"))

    def _scope(self, *must: models.Condition) -> models.Filter:
        return models.Filter(must=[self._tenant, *must])

    def _where(self, conditions: Conditions) -> models.Filter:
        """The plan's conditions as a qdrant-client filter, scoped to this workspace."""
        must: list[models.Condition] = [self._tenant]
        must += [models.FieldCondition(key=f, match=models.MatchAny(any=v))
                 for f, v in conditions.must]
        must_not: list[models.Condition] = [
            models.FieldCondition(key=f, match=models.MatchAny(any=v))
            for f, v in conditions.must_not]
        return models.Filter(must=must, must_not=must_not or None)

    def _pending_filter(self, paths: Sequence[str] | None) -> models.Filter:
        """Chunks of this workspace (file markers left out) without a dense vector."""
        must: list[models.Condition] = [self._tenant]
        if paths is not None:
            must.append(models.FieldCondition(key="path",
                                              match=models.MatchAny(any=list(paths))))
        return models.Filter(must=must, must_not=[_NOT_MARKER,
                                                  models.HasVectorCondition(has_vector=DENSE)])

    # --- writes ------------------------------------------------------------------------------

    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        for batch in iter_batches(points, UPSERT_BATCH):
            structs = []
            for p in batch:
                vector: dict[str, Any] = {SPARSE: models.SparseVector(
                    indices=list(p.sparse.indices), values=list(p.sparse.values))}
                if p.dense is not None:
                    vector[DENSE] = p.dense.tolist()
                payload = {**p.payload, WORKSPACE: self.key, ID_FIELD: p.id}
                structs.append(models.PointStruct(id=self._sid(p.id), vector=vector,
                                                  payload=payload))
            self._call("upsert points", partial(self.client.upsert, self.collection,
                                                points=structs, wait=True))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            selector = models.PointIdsList(points=[self._sid(i) for i in ids])
            self._call("delete points", lambda: self.client.delete(
                self.collection, points_selector=selector, wait=True))

    def delete_paths(self, paths: Sequence[str]) -> None:
        if paths:
            selector = models.FilterSelector(filter=self._scope(
                models.FieldCondition(key="path", match=models.MatchAny(any=list(paths)))))
            self._call("delete paths", lambda: self.client.delete(
                self.collection, points_selector=selector, wait=True))

    def clear(self) -> None:
        """Delete every point of this workspace (its tenant); other workspaces keep theirs."""
        selector = models.FilterSelector(filter=self._scope())
        self._call("delete the workspace's points", lambda: self.client.delete(
            self.collection, points_selector=selector, wait=True))

    def add_dense(self, vectors: dict[str, Vector]) -> None:
        if vectors:
            updates = [models.PointVectors(id=self._sid(pid), vector={DENSE: v.tolist()})
                       for pid, v in vectors.items()]
            self._call("add dense vectors", lambda: self.client.update_vectors(
                self.collection, points=updates, wait=True))

    def set_payload(self, ids: Sequence[str], values: dict[str, Any]) -> None:
        if ids:
            sids: list[models.ExtendedPointId] = [self._sid(i) for i in ids]
            self._call("set payload", lambda: self.client.set_payload(
                self.collection, payload=values, points=sids, wait=True))

    def maybe_vacuum(self) -> bool:
        return False  # the server's own optimizers vacuum its segments

    def flush(self) -> None:
        """Nothing to do: writes wait for the server to apply them (`wait=True`)."""

    def has_room(self) -> bool:
        """The server manages its own disk: a full one is reported by its writes."""
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owns_client:  # a client handed in may serve other stores
                self.client.close()

    # --- reads -------------------------------------------------------------------------------

    def manifest(self) -> dict[str, FileState]:
        files: dict[str, FileState] = {}
        offset: models.ExtendedPointId | None = None
        fields = [*MANIFEST_FIELDS, ID_FIELD]
        while True:
            records, offset = self._call("read the manifest", partial(
                self.client.scroll, self.collection, scroll_filter=self._scope(),
                limit=SCROLL_PAGE, offset=offset, with_payload=fields, with_vectors=False))
            for record in records:
                payload = record.payload or {}
                add_to_manifest(files, str(payload.get(ID_FIELD, record.id)), payload)
            if offset is None:
                return files

    def vectors(self, ids: Sequence[str]) -> dict[str, Vector]:
        if not ids:
            return {}
        by_sid = {self._sid(i): i for i in ids}
        records = self._call("read vectors", lambda: self.client.retrieve(
            self.collection, ids=list(by_sid), with_payload=False, with_vectors=[DENSE]))
        return {by_sid[str(r.id)]: v for r in records
                if str(r.id) in by_sid and (v := dense_of(r.vector)) is not None}

    def sparse_vectors(self, ids: Sequence[str]) -> dict[str, SparseVec]:
        if not ids:
            return {}
        by_sid = {self._sid(i): i for i in ids}
        records = self._call("read vectors", lambda: self.client.retrieve(
            self.collection, ids=list(by_sid), with_payload=False, with_vectors=[SPARSE]))
        return {by_sid[str(r.id)]: v for r in records
                if str(r.id) in by_sid and (v := sparse_of(r.vector)) is not None}

    def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, Vector]:
        if not hashes:
            return {}
        flt = models.Filter(must=[
            models.FieldCondition(key=WORKSPACE, match=models.MatchAny(any=self._lenders)),
            models.FieldCondition(key="chunk_hash", match=models.MatchAny(any=list(hashes)))])
        records, _ = self._call("read vectors by hash", lambda: self.client.scroll(
            self.collection, scroll_filter=flt, limit=len(hashes) * 4,
            with_payload=["chunk_hash"], with_vectors=[DENSE]))
        return vectors_by_chunk_hash(records)

    def payloads(self, ids: Sequence[str],
                 fields: Sequence[str] | None = None) -> dict[str, ChunkPayload]:
        if not ids:
            return {}
        by_sid = {self._sid(i): i for i in ids}
        wanted: bool | list[str] = True if fields is None else list(fields)
        records = self._call("read chunks", lambda: self.client.retrieve(
            self.collection, ids=list(by_sid), with_payload=wanted, with_vectors=False))
        out: dict[str, ChunkPayload] = {}
        for r in records:
            if str(r.id) in by_sid:
                out[by_sid[str(r.id)]] = _chunk_fields(r.payload)
        return out

    def query(self, dense: Vector | None, sparse: SparseVec | None, mode: Mode, limit: int,
              where: PathFilter, fusion: Fusion = HYBRID_FUSION,
              payload: bool = True) -> list[StoredHit]:
        plan = plan_query(dense, sparse, mode, limit, where, fusion, payload)
        if plan is None:
            return []
        flt = self._where(plan.conditions)
        sparse_q = (models.SparseVector(indices=list(plan.sparse.indices),
                                        values=list(plan.sparse.values))
                    if plan.sparse is not None else None)
        name = self.collection
        # Without the payload, still the chunk's own id (the point id is derived from it).
        wanted: bool | list[str] = True if plan.payload else [ID_FIELD]
        if plan.fused:
            fused: models.Query = (
                models.RrfQuery(rrf=models.Rrf(
                    k=fusion.k, weights=[fusion.dense_weight, fusion.sparse_weight]))
                if fusion.method == "rrf" else models.FusionQuery(fusion=models.Fusion.DBSF))
            prefetch = [models.Prefetch(query=plan.dense, using=DENSE, limit=plan.depth,
                                        filter=flt),
                        models.Prefetch(query=sparse_q, using=SPARSE, limit=plan.depth,
                                        filter=flt)]
            response = self._call("search", lambda: self.client.query_points(
                name, prefetch=prefetch, query=fused, query_filter=flt, limit=limit,
                with_payload=wanted, with_vectors=False))
        else:
            single = plan.dense if plan.using == DENSE else sparse_q
            response = self._call("search", lambda: self.client.query_points(
                name, query=single, using=plan.using, query_filter=flt, limit=limit,
                with_payload=wanted, with_vectors=False))
        hits = []
        for p in response.points:
            pid = str((p.payload or {}).get(ID_FIELD, p.id))
            hits.append(StoredHit(pid, float(p.score), _chunk_fields(p.payload)))
        return hits

    def cosines(self, dense: Vector, ids: Sequence[str]) -> dict[str, float]:
        if not ids:
            return {}
        by_sid = {self._sid(i): i for i in ids}
        response = self._call("score chunks", lambda: self.client.query_points(
            self.collection, query=dense.tolist(), using=DENSE, limit=len(by_sid),
            query_filter=models.Filter(must=[models.HasIdCondition(has_id=list(by_sid))]),
            with_payload=False, with_vectors=False))
        return {by_sid[str(p.id)]: float(p.score) for p in response.points
                if str(p.id) in by_sid}

    def pending(self, paths: Sequence[str] | None, limit: int) -> list[PendingChunk]:
        records, _ = self._call("read chunks to embed", lambda: self.client.scroll(
            self.collection, scroll_filter=self._pending_filter(paths), limit=limit,
            with_payload=[ID_FIELD, "path", "text", "heading", "title", "tokens"],
            with_vectors=False))
        out = []
        for r in records:
            payload = as_payload(r.payload)
            out.append(PendingChunk(str((r.payload or {}).get(ID_FIELD, r.id)),
                                    payload.get("path", ""), embedding_text(payload),
                                    chunk_tokens(payload)))
        return out

    def counts(self) -> StoreCounts:
        chunks = self._call("count chunks", lambda: self.client.count(
            self.collection, count_filter=models.Filter(must=[self._tenant],
                                                        must_not=[_NOT_MARKER]), exact=True))
        missing = self._call("count chunks to embed", lambda: self.client.count(
            self.collection, count_filter=self._pending_filter(None), exact=True))
        return StoreCounts(chunks.count, chunks.count - missing.count)

    def count(self) -> int:
        result = self._call("count points", lambda: self.client.count(
            self.collection, count_filter=self._scope(), exact=True))
        return int(result.count)

    @classmethod
    def holds_workspace(cls, url: str, api_key: str | None, workspace: Path,
                        model_fingerprint: str, dimension: int, *, variant: str = "",
                        client: QdrantClient | None = None) -> bool:
        """Whether the server has points of `workspace` for this model, without creating
        anything (what `zl search` run inside a workspace asks of each folder above it)."""
        own = client is None
        if client is None:
            try:
                client = QdrantClient(url=url, api_key=api_key or None, timeout=5,
                                      check_compatibility=False)
            except Exception as err:
                raise StoreError(f"storeUrl {url!r} cannot be used: {err}. Fix storeUrl, or "
                                 "remove it to use the embedded store") from err
        try:
            name = collection_name(model_fingerprint, dimension)
            if not client.collection_exists(name):
                return False
            tenant = models.FieldCondition(key=WORKSPACE,
                                           match=models.MatchValue(
                                               value=workspace_key(workspace, variant)))
            found = client.count(name, count_filter=models.Filter(must=[tenant]), exact=False)
            return int(found.count) > 0
        except StoreError:
            raise
        except Exception as err:
            raise StoreError(f"Qdrant at {url} is unreachable ({_reason(err)}): start it, "
                             "check storeUrl/storeApiKey, or remove storeUrl to use the "
                             "embedded store") from err
        finally:
            if own:
                client.close()


def _transient(err: BaseException) -> str | None:
    """"connection", "server" (worth a retry), or None (retrying will not help)."""
    if isinstance(err, ResponseHandlingException):  # the client wraps httpx's errors
        err = err.source
    if isinstance(err, httpx.TransportError | ConnectionError | TimeoutError):
        return "connection"
    if isinstance(err, UnexpectedResponse) and err.status_code in TRANSIENT_STATUS:
        return "server"
    return None


def _reason(err: BaseException) -> str:
    source = err.source if isinstance(err, ResponseHandlingException) else err
    if isinstance(source, UnexpectedResponse):
        return f"HTTP {source.status_code} {source.reason_phrase}".strip()
    text = str(source).strip().splitlines()
    return f"{type(source).__name__}: {text[0]}" if text else type(source).__name__


def _rejected(url: str, what: str, err: UnexpectedResponse) -> str:
    if err.status_code in (401, 403):
        return (f"Qdrant at {url} refused to {what} (HTTP {err.status_code}): check "
                "storeApiKey")
    try:
        detail = str(err.structured().get("status", {}).get("error", ""))
    except Exception:  # not JSON
        detail = err.content[:200].decode("utf-8", "replace")
    return f"Qdrant at {url} rejected the request to {what} (HTTP {err.status_code}): {detail}"


def _chunk_fields(raw: dict[str, Any] | None) -> ChunkPayload:
    """A stored point's payload as the indexer wrote it (the tenant and id fields this
    backend adds are left out)."""
    fields = dict(raw or {})
    for field in INTERNAL_FIELDS:
        fields.pop(field, None)
    return as_payload(fields)
