"""What every store backend shares: the point and payload types, the `Store` protocol (the
whole contract the engine, indexer, search and CLI use) and the backend-neutral query plan
that each backend only translates into its own client's objects.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NotRequired, Protocol, TypedDict

import numpy as np
import numpy.typing as npt

SCHEMA_VERSION = 1
DENSE = "dense"
SPARSE = "bm25"
POINT_NAMESPACE = uuid.UUID("5f0e7d1c-6a53-4c38-9d0c-3f2b8f0a9e11")
#: Payload fields the manifest reads back (not the text: it is the bulk of the payload).
MANIFEST_FIELDS = ["path", "chunk_hash", "file_hash", "mtime_ns", "size", "source", "lang"]
#: Payload fields indexed as keywords (filters and deletes by path, reuse by content hash).
KEYWORD_FIELDS = ("path", "chunk_hash", "language")

Mode = Literal["hybrid", "semantic", "keyword"]
Vector = npt.NDArray[np.float32]


class ChunkPayload(TypedDict):
    """The payload of one stored chunk (and, with `chunk_hash` == MARKER_HASH and no text,
    of the marker of a file that has no chunks). The one definition the indexer writes and
    the stores and search read."""

    path: str  # relative to the workspace root, POSIX separators
    chunk_hash: str
    file_hash: str
    mtime_ns: int
    size: int
    source: str  # "disk", or "buffer" for unsaved editor text
    language: str
    #: The natural language of the chunk's text (ISO 639-1, "und": none identified), which
    #: chose its keyword analysis (sparse.py); absent in a store analysed before version 2.
    lang: NotRequired[str]
    start: NotRequired[int]  # first line (0-based)
    end: NotRequired[int]  # line after the last
    heading: NotRequired[list[str]]
    title: NotRequired[str]
    text: NotRequired[str]
    tokens: NotRequired[int]  # `Chunk.tokens`; absent in a store written before it was kept


@dataclasses.dataclass(frozen=True)
class Fusion:
    """How hybrid mode fuses its dense and BM25 candidate lists, inside the store.

    `rrf`: reciprocal rank fusion, sum of weight / (k + rank) over the two lists; `dbsf`:
    Qdrant's distribution-based score fusion (weights and k unused). Parsed from
    "rrf", "dbsf" or "rrf:k=20,dense=1.5,sparse=1" (benchmarks/quality.py compares them).
    """

    method: Literal["rrf", "dbsf"] = "rrf"
    k: int = 60
    dense_weight: float = 1.0
    sparse_weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Fusion:
        method, _, rest = text.partition(":")
        if method not in ("rrf", "dbsf"):
            raise ValueError(f"unknown fusion {method!r}: rrf or dbsf")
        values = dict(part.split("=", 1) for part in rest.split(",") if part)
        return cls(method, int(values.get("k", 60)),  # type: ignore[arg-type]
                   float(values.get("dense", 1.0)), float(values.get("sparse", 1.0)))

    def __str__(self) -> str:
        if self.method == "dbsf":
            return "dbsf"
        return f"rrf:k={self.k},dense={self.dense_weight:g},sparse={self.sparse_weight:g}"


#: The fusion hybrid search uses. Chosen on SciFact's even-numbered training queries
#: (nDCG@10: dbsf 0.760; rrf k=60 0.736, best weighted rrf 0.744), confirmed on the odd ones:
#: `python benchmarks/quality.py --subset tune|holdout --fusion dbsf rrf`.
HYBRID_FUSION = Fusion("dbsf")


@dataclasses.dataclass
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclasses.dataclass
class ChunkPoint:
    id: str
    dense: Vector | None  # None: keyword pass only, the dense vector comes later
    sparse: SparseVec
    payload: ChunkPayload


@dataclasses.dataclass(frozen=True)
class PendingChunk:
    """A stored chunk still waiting for its dense vector: what the backfill embeds."""

    id: str
    path: str
    text: str  # what the model sees (heading context + chunk text)
    #: Its tokens as the chunker counted them (`Chunk.tokens`); 0 in a store written before.
    tokens: int = 0

    @property
    def length(self) -> int:
        """Its length in tokens, estimated from its characters where it was not counted."""
        return self.tokens or len(self.text) // 4


@dataclasses.dataclass
class FileState:
    """What the store holds for one file."""

    size: int
    mtime_ns: int
    file_hash: str
    source: str  # "disk", or "buffer" for unsaved editor text
    chunk_ids: dict[str, str]  # point id -> chunk hash
    consistent: bool = True  # False: points from two versions (an interrupted write)
    #: Its chunks' natural languages (sparse.detect), each with its chunk count.
    langs: dict[str, int] = dataclasses.field(default_factory=dict)

    def chunk_total(self) -> int:
        """Chunks, not counting the marker of a file that has none."""
        return sum(1 for h in self.chunk_ids.values() if h != MARKER_HASH)


@dataclasses.dataclass(frozen=True)
class StoredHit:
    id: str
    score: float
    payload: ChunkPayload


@dataclasses.dataclass(frozen=True)
class PathFilter:
    """Restrict a query to these paths (None: all), never these, and these languages (None:
    all; the `language` payload is indexed, so the store filters while it searches)."""

    only: Sequence[str] | None = None
    never: Sequence[str] = ()
    languages: Sequence[str] | None = None

    def conditions(self) -> Conditions:
        """The filter as (field, any-of values) conditions. An empty allow-list becomes [""]:
        it must match nothing, where an empty any-of would match everything."""
        must: list[tuple[str, list[str]]] = []
        must_not: list[tuple[str, list[str]]] = []
        if self.only is not None:
            must.append(("path", list(self.only) or [""]))
        if self.never:
            must_not.append(("path", list(self.never)))
        if self.languages is not None:
            must.append(("language", list(self.languages) or [""]))
        return Conditions(must, must_not)


@dataclasses.dataclass(frozen=True)
class Conditions:
    """Backend-neutral filter: every `must` (field, values) matches one of its values, no
    `must_not` one does. Each backend translates it into its own filter type."""

    must: list[tuple[str, list[str]]]
    must_not: list[tuple[str, list[str]]]

    @property
    def empty(self) -> bool:
        return not self.must and not self.must_not


@dataclasses.dataclass(frozen=True)
class QueryPlan:
    """One search, decided once for every backend: either a fusion of a dense and a BM25
    candidate list (`fused`, each `depth` deep), or a single list over `using`."""

    limit: int
    conditions: Conditions
    dense: list[float] | None
    sparse: SparseVec | None
    using: str | None  # DENSE or SPARSE for a single list; None when fused
    fusion: Fusion
    depth: int
    payload: bool = True  # False: ids and scores only (a candidate list fused by the caller)

    @property
    def fused(self) -> bool:
        return self.using is None


def candidate_depth(limit: int) -> int:
    """How deep each of hybrid's two candidate lists goes for `limit` fused hits (the store's
    prefetches, and the lists search fuses itself while the backfill runs)."""
    return max(limit * 5, 50)


def plan_query(dense: Vector | None, sparse: SparseVec | None, mode: Mode, limit: int,
               where: PathFilter, fusion: Fusion = HYBRID_FUSION,
               payload: bool = True) -> QueryPlan | None:
    """What to ask the store for `mode`; None when there is nothing to search with (a
    keyword query whose words are all unknown to BM25, say). `payload=False`: the hits come
    back with ids and scores only (cheaper: search reads the payloads of the few it keeps)."""
    sparse_q = sparse if sparse is not None and sparse.indices else None
    dense_q = dense.tolist() if dense is not None else None
    conditions = where.conditions()
    depth = candidate_depth(limit)
    if mode == "hybrid" and dense_q is not None and sparse_q is not None:
        return QueryPlan(limit, conditions, dense_q, sparse_q, None, fusion, depth, payload)
    if mode != "keyword" and dense_q is not None:
        return QueryPlan(limit, conditions, dense_q, None, DENSE, fusion, depth, payload)
    if sparse_q is None:
        return None
    return QueryPlan(limit, conditions, None, sparse_q, SPARSE, fusion, depth, payload)


@dataclasses.dataclass(frozen=True)
class StoreCounts:
    """Chunks stored (not counting file markers) and how many have their dense vector."""

    chunks: int
    embedded: int

    @property
    def pending(self) -> int:
        return self.chunks - self.embedded


class Store(Protocol):
    """The whole contract of a vector store (Qdrant Edge embedded, or a Qdrant server): the
    engine, the indexer, search and the CLI use nothing else of a backend.

    A chunk may be stored without its dense vector (the keyword pass writes BM25 and payload
    only): whether it has one is the vector's presence itself (Qdrant's `has_vector`), never
    a payload flag that a kill between two writes could leave out of step."""

    kind: str  # "embedded" | "server"
    location: str  # a folder or a URL, for status and messages
    #: `vectors_by_hash` may find vectors this workspace's index does not hold (another
    #: tenant's of the same folder on a server): asked even before this one has any.
    lends_beyond_itself: bool

    def upsert(self, points: Sequence[ChunkPoint]) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def delete_paths(self, paths: Sequence[str]) -> None: ...
    def clear(self) -> None:
        """Delete every point of this workspace (a rebuild starts over)."""
    def set_payload(self, ids: Sequence[str], values: dict[str, Any]) -> None: ...
    def manifest(self) -> dict[str, FileState]: ...
    def vectors(self, ids: Sequence[str]) -> dict[str, Vector]: ...
    def cosines(self, dense: Vector, ids: Sequence[str]) -> dict[str, float]:
        """The cosine similarity of these chunks' dense vectors to `dense` (a chunk without
        one, or not stored, is left out), scored by the store: hybrid's cosines (its fused
        score is not one) without moving 60 vectors of 384 floats into Python (0.12 ms
        against ~0.6 ms a search on SciFact at limit 30; equal to numpy's to 6e-8)."""
    def sparse_vectors(self, ids: Sequence[str]) -> dict[str, SparseVec]:
        """The stored BM25 vectors of these chunks (ids not stored are left out): the terms
        their text was analysed into, which hybrid's keyword evidence reads."""
    def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, Vector]:
        """Stored dense vectors by chunk content hash (see `lends_beyond_itself`)."""
    def query(self, dense: Vector | None, sparse: SparseVec | None, mode: Mode, limit: int,
              where: PathFilter, fusion: Fusion = HYBRID_FUSION,
              payload: bool = True) -> list[StoredHit]:
        """`plan_query`'s search; `payload=False`: hits with an empty payload (ids and scores
        only), for a candidate list the caller fuses itself."""
    def payloads(self, ids: Sequence[str],
                 fields: Sequence[str] | None = None) -> dict[str, ChunkPayload]:
        """The payloads of these stored chunks (ids not stored are left out); `fields`: those
        fields only (cheaper: hybrid reads every candidate's language)."""
    def pending(self, paths: Sequence[str] | None, limit: int) -> list[PendingChunk]:
        """Chunks that still lack their dense vector (of `paths` only, unless None)."""
    def add_dense(self, vectors: dict[str, Vector]) -> None:
        """Give stored chunks their dense vector (their sparse vector and payload stay)."""
    def counts(self) -> StoreCounts: ...
    def count(self) -> int: ...
    def maybe_vacuum(self) -> bool: ...
    def has_room(self) -> bool: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def point_id(rel_path: str, chunk_hash: str, occurrence: int) -> str:
    """Stable id: the same chunk text at the same place keeps its id (and so its vector)."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{rel_path}\0{chunk_hash}\0{occurrence}"))


#: chunk_hash of a file's marker point: a file with no chunks (empty, blank) is recorded by
#: one point with no dense vector, an empty sparse one and no text, which no search returns.
MARKER_HASH = ""


def file_marker_id(rel_path: str) -> str:
    return point_id(rel_path, MARKER_HASH, 0)


def embedding_text(payload: ChunkPayload) -> str:
    """What the model sees for a stored chunk, rebuilt from its payload as
    `chunking.Chunk.embedding_text` builds it (heading path, else the title, then the text)."""
    heading = payload.get("heading") or []
    context = " > ".join(heading) if heading else payload.get("title", "")
    text = payload.get("text", "")
    return f"{context}\n\n{text}" if context else text


def chunk_tokens(payload: ChunkPayload) -> int:
    """A stored chunk's token count (`Chunk.tokens`), 0 where the store does not hold one."""
    tokens = payload.get("tokens", 0)
    return tokens if isinstance(tokens, int) else 0


def vectors_by_chunk_hash(records: Iterable[Any]) -> dict[str, Vector]:
    """Dense vectors of scrolled records (either backend's), keyed by their chunk hash."""
    out: dict[str, Vector] = {}
    for r in records:
        vector = dense_of(r.vector)
        if vector is not None and r.payload:
            out[str(r.payload["chunk_hash"])] = vector
    return out


def dense_of(vector: Any) -> Vector | None:
    if isinstance(vector, dict) and DENSE in vector:
        values = vector[DENSE]
        if isinstance(values, list):
            # The floats packed straight into the array: 2.5x faster than np.asarray on a
            # list of Python floats (hybrid reads 60 vectors a search at limit 30), the same
            # float32 values.
            out = np.empty(len(values), dtype=np.float32)
            _floats(len(values)).pack_into(out.data, 0, *values)
            return out
        return np.asarray(values, dtype=np.float32)
    return None


@functools.lru_cache(maxsize=8)
def _floats(n: int) -> struct.Struct:
    """The native float32 layout of `n` floats (a vector of the model's dimension)."""
    return struct.Struct(f"{n}f")


def sparse_of(vector: Any) -> SparseVec | None:
    """A retrieved record's BM25 vector (either backend's sparse vector type has `indices`
    and `values`), None when it has none."""
    if isinstance(vector, dict) and SPARSE in vector:
        found = vector[SPARSE]
        return SparseVec(list(found.indices), list(found.values))
    return None


def add_to_manifest(files: dict[str, FileState], pid: str, payload: dict[str, Any]) -> None:
    """Fold one point's payload into the per-file manifest."""
    path = payload.get("path")
    if not isinstance(path, str):
        return
    state = files.get(path)
    if state is None:
        files[path] = FileState(
            size=int(payload.get("size", -1)), mtime_ns=int(payload.get("mtime_ns", -1)),
            file_hash=str(payload.get("file_hash", "")), source=str(payload.get("source", "disk")),
            chunk_ids={pid: str(payload.get("chunk_hash", ""))})
        _count_lang(files[path], payload)
        return
    state.chunk_ids[pid] = str(payload.get("chunk_hash", ""))
    _count_lang(state, payload)
    if (state.file_hash != payload.get("file_hash") or state.mtime_ns != payload.get("mtime_ns")
            or state.source != payload.get("source", "disk")):
        state.consistent = False


def _count_lang(state: FileState, payload: dict[str, Any]) -> None:
    lang = payload.get("lang")
    if isinstance(lang, str) and payload.get("chunk_hash") != MARKER_HASH:
        state.langs[lang] = state.langs.get(lang, 0) + 1


def as_payload(raw: dict[str, Any] | None) -> ChunkPayload:
    """A payload read back from a store, typed (the store returns plain JSON objects)."""
    return raw or {}  # type: ignore[return-value]


def estimated_bytes(points: Sequence[ChunkPoint]) -> int:
    """A generous size of these points as written: payload text, vectors, sparse terms."""
    return sum(2 * len(p.payload.get("text", "")) + 1024
               + (4 * p.dense.size if p.dense is not None else 0)
               + 8 * len(p.sparse.indices) for p in points)


def iter_batches(items: Sequence[ChunkPoint], size: int) -> Iterable[Sequence[ChunkPoint]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
