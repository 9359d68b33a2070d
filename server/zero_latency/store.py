"""Vector store: Qdrant Edge (the Qdrant engine in-process) holds each chunk's dense vector,
its BM25 sparse vector and its payload, one shard per workspace and model.

The store is the single source of truth for what is indexed: the per-file state the indexer
diffs against (size, mtime, content hash, chunk hashes) lives in the chunks' payloads, so there
is no second manifest that a crash could leave out of step with the vectors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe

from .errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIncompatibleError,
    StoreLockedError,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DENSE = "dense"
SPARSE = "bm25"
META_FILE = "zl-store.json"
VACUUM_SHARE = 0.2  # as Qdrant's own deleted_threshold
VACUUM_MIN_DELETED = 1000
#: Free space every write leaves on the store's disk. Qdrant Edge writes through memory maps
#: of sparse files: a page the filesystem cannot allocate is a SIGBUS that kills the process
#: (`zl index` died with "Bus error"), not an error, so a write is never started without room
#: for it (its estimated size, several times over: WAL, payload, vector and index pages).
MIN_FREE_BYTES = 16 * 1024 * 1024
WRITE_AMPLIFICATION = 4
POINT_NAMESPACE = uuid.UUID("5f0e7d1c-6a53-4c38-9d0c-3f2b8f0a9e11")
# Payload fields the manifest reads back (not the text: it is the bulk of the payload).
MANIFEST_FIELDS = ["path", "chunk_hash", "file_hash", "mtime_ns", "size", "source"]

Mode = Literal["hybrid", "semantic", "keyword"]
Vector = npt.NDArray[np.float32]


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
    dense: Vector | None
    sparse: SparseVec
    payload: dict[str, Any]


@dataclasses.dataclass
class FileState:
    """What the store holds for one file."""

    size: int
    mtime_ns: int
    file_hash: str
    source: str  # "disk", or "buffer" for unsaved editor text
    chunk_ids: dict[str, str]  # point id -> chunk hash
    consistent: bool = True  # False: points from two versions (an interrupted write)

    def chunk_total(self) -> int:
        """Chunks, not counting the marker of a file that has none."""
        return sum(1 for h in self.chunk_ids.values() if h != MARKER_HASH)


@dataclasses.dataclass(frozen=True)
class StoredHit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PathFilter:
    """Restrict a query to these paths (None: all), never these, and these languages (None:
    all; the `language` payload is indexed, so the store filters while it searches)."""

    only: Sequence[str] | None = None
    never: Sequence[str] = ()
    languages: Sequence[str] | None = None


def point_id(rel_path: str, chunk_hash: str, occurrence: int) -> str:
    """Stable id: the same chunk text at the same place keeps its id (and so its vector)."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{rel_path}\0{chunk_hash}\0{occurrence}"))


#: chunk_hash of a file's marker point: a file with no chunks (empty, blank) is recorded by
#: one point with no dense vector, an empty sparse one and no text, which no search returns.
MARKER_HASH = ""


def file_marker_id(rel_path: str) -> str:
    return point_id(rel_path, MARKER_HASH, 0)


def lock_store(path: Path) -> int:
    """Take the store's lock (a file beside its folder, so a rebuild can hold it while the
    folder goes) without waiting; StoreLockedError when another process holds it."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise StoreError(f"cannot create the store lock {lock_path}: {err.strerror or err}. "
                         "Set `storePath` to a writable folder.") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        raise StoreLockedError(
            f"the store {path} is locked by another Zero-Latency process (the shared "
            "daemon, or a command run with --no-daemon): it is in use, not damaged. Leave out "
            "--no-daemon to use the daemon's index, or end the other process "
            "(`zl daemon stop`)."
        ) from err
    return fd


def store_dir(data_dir: Path, workspace: Path, model_id: str) -> Path:
    """<data>/stores/<workspace name>-<hash of its path>/<model slug>."""
    digest = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", workspace.resolve().name)[:40] or "root"
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[:80]
    return data_dir / "stores" / f"{name}-{digest}" / model


class Store(Protocol):
    """What the engine needs from a vector store (Edge embedded, or a Qdrant server)."""

    kind: str
    location: str

    def upsert(self, points: Sequence[ChunkPoint]) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def delete_paths(self, paths: Sequence[str]) -> None: ...
    def set_payload(self, ids: Sequence[str], values: dict[str, Any]) -> None: ...
    def manifest(self) -> dict[str, FileState]: ...
    def vectors(self, ids: Sequence[str]) -> dict[str, Vector]: ...
    def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, Vector]: ...
    def query(self, dense: Vector | None, sparse: SparseVec | None, mode: Mode, limit: int,
              where: PathFilter, fusion: Fusion = HYBRID_FUSION) -> list[StoredHit]: ...
    def count(self) -> int: ...
    def maybe_vacuum(self) -> bool: ...
    def has_room(self) -> bool: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class EdgeStore:
    """A Qdrant Edge shard plus a small metadata file naming the model and schema."""

    kind = "embedded"

    def __init__(self, path: Path, model_fingerprint: str, dimension: int) -> None:
        self.path = path
        self.location = str(path)
        self._lock = threading.Lock()
        self._closed = False
        shard_dir = path / "shard"
        meta_path = path / META_FILE
        expected = {"schema": SCHEMA_VERSION, "model": model_fingerprint, "dimension": dimension,
                    "sparse": "bm25"}
        try:
            path.mkdir(parents=True, exist_ok=True)
            # User-only: the payloads hold the text of private documents.
            for folder in (path, path.parent, path.parent.parent):
                os.chmod(folder, 0o700)
        except OSError as err:
            raise StoreError(f"cannot create the store folder {path}: {err.strerror or err}. "
                             "Set `storePath` to a writable folder.") from err
        # Every process that opens the store holds this lock for as long as it has it open, so
        # a second writer (or a rebuild) is told "in use" and never sees a half-made store.
        self._lock_fd: int | None = lock_store(path)
        try:
            self._open(path, shard_dir, meta_path, expected, dimension)
        except BaseException:
            self._release()
            raise

    def _open(self, path: Path, shard_dir: Path, meta_path: Path, expected: dict[str, Any],
              dimension: int) -> None:
        has_shard = shard_dir.exists() and any(shard_dir.iterdir())
        if meta_path.exists():
            try:
                found = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise StoreCorruptError(
                    f"store metadata {meta_path} is unreadable ({err}): the store is corrupt. "
                    "Rebuild it with `zl index --rebuild`, or reindex with force from the editor."
                ) from err
            if found != expected:
                diff = ", ".join(f"{k}: store has {found.get(k)!r}, wanted {v!r}"
                                 for k, v in expected.items() if found.get(k) != v)
                raise StoreIncompatibleError(
                    f"store {path} was built differently ({diff}); vectors of two models are "
                    "never mixed. Rebuild it with `zl index --rebuild`, or reindex with force "
                    "from the editor."
                )
        elif has_shard:
            raise StoreCorruptError(
                f"store {path} has no metadata file: it is corrupt or from an unknown version. "
                "Rebuild it with `zl index --rebuild`, or reindex with force from the editor."
            )
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            # No HNSW: exact search answers in ~10 ms at 100k chunks here, while building the
            # graph took ~115 s on 2 cores. optimize() then only vacuums deleted points.
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0),
        )
        self._deleted_since_vacuum = 0
        try:
            if has_shard:
                # Loading maps the segment files and touches their pages: on tmpfs (not on
                # disk filesystems) that allocates their holes, and a hole it cannot allocate
                # is a SIGBUS.
                if filesystem_type(path) in MEMORY_FILESYSTEMS:
                    self._require_room("open", unallocated_bytes(shard_dir / "segments"))
                self._shard = qe.EdgeShard.load(str(shard_dir), config)
            else:
                self._require_room("create")
                # The metadata first (atomically): a store interrupted while being created
                # is then one with metadata and an empty shard, which is simply made again.
                partial = meta_path.with_name(META_FILE + ".tmp")
                partial.write_text(json.dumps(expected), encoding="utf-8")
                os.chmod(partial, 0o600)
                os.replace(partial, meta_path)
                self._shard = qe.EdgeShard.create(str(shard_dir), config)
                for field in ("path", "chunk_hash", "language"):
                    self._shard.update(
                        qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                    )
        except OSError as err:
            raise StoreError(f"cannot write the store at {path}: {err.strerror or err}") from err
        except StoreError:
            raise
        except Exception as err:  # qdrant_edge raises plain Exception
            text = str(err)
            if "WouldBlock" in text or "lock" in text.lower():
                raise StoreLockedError(
                    f"the store {path} is locked by another Zero-Latency process (the shared "
                    "daemon, or a command run with --no-daemon). Leave out --no-daemon to "
                    "use the daemon's index, or end the other process (`zl daemon stop`)."
                ) from err
            raise StoreCorruptError(
                f"cannot open the store {path}: {text.splitlines()[0] if text else err!r}. "
                "It may be corrupt: rebuild it with `zl index --rebuild`, or reindex with force "
                "from the editor."
            ) from err

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the lock
            self._lock_fd = None

    @staticmethod
    def destroy(path: Path) -> bool:
        """Delete a store folder, unless a process has it open (StoreLockedError then: a
        store in use is never deleted). True when there was one to delete."""
        if not path.exists():
            return False
        fd = lock_store(path)
        try:
            shutil.rmtree(path)
        finally:
            os.close(fd)
        return True

    # --- writes ------------------------------------------------------------------------------

    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        converted = []
        for p in points:
            vector: dict[str, Any] = {SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values)}
            if p.dense is not None:
                vector[DENSE] = p.dense.tolist()
            converted.append(qe.Point(p.id, vector, p.payload))
        self._update(qe.UpdateOperation.upsert_points(converted), estimated_bytes(points))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._update(qe.UpdateOperation.delete_points(list(ids)))
            self._deleted_since_vacuum += len(ids)

    def delete_paths(self, paths: Sequence[str]) -> None:
        if paths:
            flt = qe.Filter(must=[qe.FieldCondition("path", match=qe.MatchAny(list(paths)))])
            doomed = int(self._shard.count(qe.CountRequest(filter=flt, exact=True)))
            self._update(qe.UpdateOperation.delete_points_by_filter(flt))
            self._deleted_since_vacuum += doomed

    def has_room(self, extra: int = 0) -> bool:
        return free_bytes(self.path) >= MIN_FREE_BYTES + extra

    def _require_room(self, action: str, extra: int = 0) -> None:
        free = free_bytes(self.path)
        needed = MIN_FREE_BYTES + extra
        if free < needed:
            raise StoreFullError(
                f"cannot {action} the store at {self.path}: its disk is full ({_size(free)} "
                f"free, {_size(needed)} needed to write safely). Free disk space there or set "
                "`storePath` to another disk; searches still answer from what is indexed, and "
                "writing resumes by itself once there is room.")

    def maybe_vacuum(self) -> bool:
        """Deleted points stay in the shard as tombstones (every edit leaves some): once they
        pass VACUUM_SHARE of the live points, rewrite the segment without them (0.5 s at 11k
        points, 4.6 s at 100k, measured here). Call from the index worker, between runs."""
        if self._deleted_since_vacuum < VACUUM_MIN_DELETED:
            return False  # the common case, without counting the live points
        if self._deleted_since_vacuum < VACUUM_SHARE * self.count():
            return False
        if not self.has_room(disk_usage(self.path)):  # vacuuming copies the live points
            log.warning("not vacuuming %s: too little free disk space", self.path)
            return False
        with self._lock, self._failing("vacuum"):
            self._shard.optimize()
        log.info("vacuumed %d deleted points from %s", self._deleted_since_vacuum, self.path)
        self._deleted_since_vacuum = 0
        return True

    def set_payload(self, ids: Sequence[str], values: dict[str, Any]) -> None:
        if ids:
            self._update(qe.UpdateOperation.set_payload(list(ids), values))

    def flush(self) -> None:
        with self._lock, self._failing("flush"):
            if not self._closed:
                self._shard.flush()

    def _update(self, operation: Any, size: int = 0) -> None:
        with self._lock:
            self._require_room("write to", WRITE_AMPLIFICATION * size)
            with self._failing("write to"):
                self._shard.update(operation)

    @contextlib.contextmanager
    def _failing(self, action: str) -> Iterator[None]:
        """A write the engine cannot make (disk full, folder gone read-only) becomes a
        StoreError that says where; the WAL keeps what was written before it consistent."""
        try:
            yield
        except Exception as err:  # qdrant_edge raises plain Exception, with the OS error text
            text = str(err).splitlines()[0] if str(err) else repr(err)
            raise StoreError(
                f"cannot {action} the store at {self.path}: {text}. Free disk space or make "
                "the folder writable (or set `storePath`), then index again: files not "
                "written yet are picked up then."
            ) from err

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                try:
                    self._shard.flush()
                    self._shard.close()
                finally:
                    self._closed = True
                    self._release()

    # --- reads -------------------------------------------------------------------------------

    def manifest(self) -> dict[str, FileState]:
        files: dict[str, FileState] = {}
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(qe.ScrollRequest(
                offset=offset, limit=4096,
                with_payload=qe.PayloadSelector.Include(MANIFEST_FIELDS), with_vector=False))
            for record in records:
                _add_to_manifest(files, str(record.id), record.payload or {})
            if offset is None:
                return files

    def vectors(self, ids: Sequence[str]) -> dict[str, Vector]:
        if not ids:
            return {}
        records = self._shard.retrieve(list(ids), with_payload=False, with_vector=[DENSE])
        return {str(r.id): v for r in records if (v := dense_of(r.vector)) is not None}

    def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, Vector]:
        if not hashes:
            return {}
        flt = qe.Filter(must=[qe.FieldCondition("chunk_hash", match=qe.MatchAny(list(hashes)))])
        records, _ = self._shard.scroll(qe.ScrollRequest(
            limit=len(hashes) * 4, filter=flt,
            with_payload=qe.PayloadSelector.Include(["chunk_hash"]), with_vector=[DENSE]))
        return vectors_by_chunk_hash(records)

    def query(self, dense: Vector | None, sparse: SparseVec | None, mode: Mode, limit: int,
              where: PathFilter, fusion: Fusion = HYBRID_FUSION) -> list[StoredHit]:
        flt = _filter(where)
        dense_q = qe.Query.Nearest(dense.tolist(), using=DENSE) if dense is not None else None
        sparse_q = (qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=SPARSE)
                    if sparse is not None and sparse.indices else None)
        request: qe.QueryRequest
        if mode == "hybrid" and dense_q is not None and sparse_q is not None:
            depth = max(limit * 5, 50)
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[qe.Prefetch(limit=depth, query=dense_q, filter=flt),
                            qe.Prefetch(limit=depth, query=sparse_q, filter=flt)],
                query=(qe.Fusion.Rrf(k=fusion.k,  # type: ignore[arg-type]
                                     weights=[fusion.dense_weight, fusion.sparse_weight])
                       if fusion.method == "rrf" else qe.Fusion.Dbsf()),
                filter=flt, with_payload=True)
        else:
            query = dense_q if mode != "keyword" and dense_q is not None else sparse_q
            if query is None:
                return []
            request = qe.QueryRequest(limit=limit, query=query, filter=flt, with_payload=True)
        return [StoredHit(str(p.id), float(p.score), p.payload or {})
                for p in self._shard.query(request)]

    def count(self) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True)))


def _filter(where: PathFilter) -> qe.Filter | None:
    must: list[Any] = []
    must_not: list[Any] = []
    if where.only is not None:
        must.append(qe.FieldCondition("path", match=qe.MatchAny(list(where.only) or [""])))
    if where.never:
        must_not.append(qe.FieldCondition("path", match=qe.MatchAny(list(where.never))))
    if where.languages is not None:
        must.append(qe.FieldCondition("language",
                                      match=qe.MatchAny(list(where.languages) or [""])))
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


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
        return np.asarray(vector[DENSE], dtype=np.float32)
    return None


def _add_to_manifest(files: dict[str, FileState], pid: str, payload: dict[str, Any]) -> None:
    path = payload.get("path")
    if not isinstance(path, str):
        return
    state = files.get(path)
    if state is None:
        files[path] = FileState(
            size=int(payload.get("size", -1)), mtime_ns=int(payload.get("mtime_ns", -1)),
            file_hash=str(payload.get("file_hash", "")), source=str(payload.get("source", "disk")),
            chunk_ids={pid: str(payload.get("chunk_hash", ""))})
        return
    state.chunk_ids[pid] = str(payload.get("chunk_hash", ""))
    if (state.file_hash != payload.get("file_hash") or state.mtime_ns != payload.get("mtime_ns")
            or state.source != payload.get("source", "disk")):
        state.consistent = False


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def disk_usage(path: Path) -> int:
    """Bytes actually allocated under `path` (its files are sparse: sizes overstate)."""
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


#: Filesystems where touching a hole of a memory-mapped file allocates it.
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "shmem"})


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path`, from /proc/self/mounts ('' if unknown)."""
    try:
        target = os.path.realpath(path)
        best, kind = "", ""
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
        return kind
    except OSError:
        return ""


def unallocated_bytes(path: Path) -> int:
    """The holes of the sparse files under `path`: what touching all their pages allocates."""
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(folder, name))
                total += max(0, st.st_size - st.st_blocks * 512)
    return total


def estimated_bytes(points: Sequence[ChunkPoint]) -> int:
    """A generous size of these points as written: payload text, vectors, sparse terms."""
    return sum(2 * len(str(p.payload.get("text", ""))) + 1024
               + (4 * p.dense.size if p.dense is not None else 0)
               + 8 * len(p.sparse.indices) for p in points)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def iter_batches(items: Sequence[ChunkPoint], size: int) -> Iterable[Sequence[ChunkPoint]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
