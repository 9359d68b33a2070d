"""Vector store: Qdrant Edge (the Qdrant engine in-process) holds each chunk's dense vector,
its BM25 sparse vector and its payload, one shard per workspace and model.

The store is the single source of truth for what is indexed: the per-file state the indexer
diffs against (size, mtime, content hash, chunk hashes) lives in the chunks' payloads, so there
is no second manifest that a crash could leave out of step with the vectors.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from ..errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIncompatibleError,
    StoreLockedError,
)
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
    estimated_bytes,
    plan_query,
    sparse_of,
    vectors_by_chunk_hash,
)

log = logging.getLogger(__name__)

META_FILE = "zl-store.json"
#: In every store opened since indexes have had variants (`Settings.index_variant`): a store
#: without it was made before, by whichever settings, and may be taken over (`adopt`); one
#: with it at the default settings' place is theirs, and stays.
VARIANTS_MARK = "zl-variants"
VACUUM_SHARE = 0.2  # as Qdrant's own deleted_threshold
VACUUM_MIN_DELETED = 1000
#: Free space every write leaves on the store's disk. Qdrant Edge writes through memory maps
#: of sparse files: a page the filesystem cannot allocate is a SIGBUS that kills the process
#: (`zl index` died with "Bus error"), not an error, so a write is never started without room
#: for it (its estimated size, several times over: WAL, payload, vector and index pages).
MIN_FREE_BYTES = 16 * 1024 * 1024
WRITE_AMPLIFICATION = 4
#: The filter of stored chunks, file markers left out.
_NOT_MARKER = qe.FieldCondition("chunk_hash", match=qe.MatchValue(MARKER_HASH))
_PENDING_FIELDS = ["path", "text", "heading", "title", "tokens"]


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


class EdgeStore:
    """A Qdrant Edge shard plus a small metadata file naming the model and schema."""

    kind = "embedded"
    lends_beyond_itself = False  # a folder per index (other settings' lend through the engine)

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
        with contextlib.suppress(OSError):  # when it was last opened (`last_opened`)
            os.utime(self._lock_fd)
            (path / VARIANTS_MARK).touch()  # no longer a store from before variants (`adopt`)

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
                differ = [k for k, v in expected.items() if found.get(k) != v]
                diff = ", ".join(f"{k}: store has {found.get(k)!r}, wanted {expected[k]!r}"
                                 for k in differ)
                # A fingerprint is "<model id>#<graph size>[+<build>]" (ModelFiles).
                same_model = differ == ["model"] and (
                    str(found.get("model")).split("#")[0] == expected["model"].split("#")[0])
                raise StoreIncompatibleError(
                    f"store {path} was built differently ({diff}); vectors of two models are "
                    "never mixed. Rebuild it with `zl index --rebuild`, or reindex with force "
                    "from the editor.", same_model=same_model)
        elif has_shard:
            raise StoreCorruptError(
                f"store {path} has no metadata file: it is corrupt or from an unknown version. "
                "Rebuild it with `zl index --rebuild`, or reindex with force from the editor."
            )
        self._config = config = qe.EdgeConfig(
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
                    self._require_room("open", loaded_holes(shard_dir / "segments"))
                self._shard = qe.EdgeShard.load(str(shard_dir), config)
            else:
                self._require_room("create")
                # The metadata first (atomically): a store interrupted while being created
                # is then one with metadata and an empty shard, which is simply made again.
                partial = meta_path.with_name(META_FILE + ".tmp")
                partial.write_text(json.dumps(expected), encoding="utf-8")
                os.chmod(partial, 0o600)
                os.replace(partial, meta_path)
                self._shard = self._create_shard(shard_dir)
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

    def _create_shard(self, shard_dir: Path) -> Any:
        shard = qe.EdgeShard.create(str(shard_dir), self._config)
        for field in KEYWORD_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        return shard

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the lock
            self._lock_fd = None

    @staticmethod
    def adopt(source: Path, target: Path, model_fingerprint: str) -> bool:
        """Move the store at `source` to `target` (which does not exist) where it holds this
        model build's vectors and no process has it open: True when it moved. How a store
        made before indexes had variants (`Settings.index_variant`) becomes the index of the
        settings that open it first; the indexer then brings its files in line with them."""
        if (source / VARIANTS_MARK).exists():  # the default settings' own index
            return False
        moved = EdgeStore._from_closed(source, target, model_fingerprint,
                                       lambda: os.rename(source, target))
        if moved:
            with contextlib.suppress(OSError):  # the lock of a folder that is gone
                source.with_name(source.name + ".lock").unlink()
        return moved

    @staticmethod
    def seed(source: Path, target: Path, model_fingerprint: str) -> bool:
        """Make the store at `target` (which does not exist) a copy of the one at `source`
        where that holds this model build's vectors and no process has it open: True when
        it did. How an index of other settings starts from one made already (its vectors
        copied with it; the indexer then brings its files in line with its settings)
        instead of embedding the workspace again."""
        partial = target.with_name(f".{target.name}.seeding")  # never taken for an index

        def copy() -> None:
            shutil.rmtree(partial, ignore_errors=True)  # a copy a kill interrupted
            try:
                shutil.copytree(source, partial, symlinks=True)
                os.rename(partial, target)  # whole, or not there at all
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)
                raise

        return EdgeStore._from_closed(source, target, model_fingerprint, copy)

    @staticmethod
    def _from_closed(source: Path, target: Path, model_fingerprint: str,
                     make: Callable[[], None]) -> bool:
        """`make` `target` from the store at `source`, under its lock (so that no writer
        changes it meanwhile), where `target` does not exist, `source` holds this model
        build's vectors and no process has it open: True when it was made."""
        if target.exists() or not (source / META_FILE).is_file():
            return False
        try:
            fd = lock_store(source)
        except StoreError:  # open elsewhere: left to its process
            return False
        try:
            meta = json.loads((source / META_FILE).read_text(encoding="utf-8"))
            if meta.get("model") != model_fingerprint or target.exists():
                return False
            make()
        except (OSError, ValueError) as err:
            log.warning("could not make the index %s from %s: %s", target, source, err)
            return False
        finally:
            os.close(fd)
        return True

    @staticmethod
    def last_opened(path: Path) -> float:
        """When a process last opened the store at `path` (its lock file's time; the folder's
        for a store that has none), as a Unix time."""
        try:
            return path.with_name(path.name + ".lock").stat().st_mtime
        except OSError:
            return path.stat().st_mtime

    @staticmethod
    def destroy(path: Path, lock_file_too: bool = False) -> bool:
        """Delete a store folder, unless a process has it open (StoreLockedError then: a
        store in use is never deleted). True when there was one to delete. `lock_file_too`:
        its lock file goes as well, while held (a store that is not made again)."""
        if not path.exists():
            return False
        fd = lock_store(path)
        try:
            shutil.rmtree(path)
            if lock_file_too:
                path.with_name(path.name + ".lock").unlink(missing_ok=True)
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
            converted.append(qe.Point(p.id, vector, dict(p.payload)))
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

    def clear(self) -> None:
        """Start over with an empty shard (the lock and the metadata stay): dropping the
        segment files leaves no tombstones to vacuum, unlike deleting every point."""
        with self._lock, self._failing("clear"):
            shard_dir = self.path / "shard"
            self._shard.close()
            shutil.rmtree(shard_dir)
            self._shard = self._create_shard(shard_dir)
            self._deleted_since_vacuum = 0

    def add_dense(self, vectors: dict[str, Vector]) -> None:
        if vectors:
            operation = qe.UpdateOperation.update_vectors(
                [qe.PointVectors(pid, {DENSE: v.tolist()}) for pid, v in vectors.items()])
            self._update(operation, 4 * sum(v.size for v in vectors.values()))

    def has_room(self, extra: int = 0) -> bool:
        return free_bytes(self.path) >= MIN_FREE_BYTES + extra

    def _require_room(self, action: str, extra: int = 0) -> None:
        free = free_bytes(self.path)
        needed = MIN_FREE_BYTES + extra
        if free >= needed:
            return
        if action == "open":  # nothing of it is searchable: say so, not "searches answer"
            raise StoreFullError(
                f"cannot open the store at {self.path}: its disk is full ({_size(free)} free, "
                f"{_size(needed)} needed to open it). Free disk space there or set `storePath` "
                "to another disk: this workspace is not searchable until then, and its store "
                "opens by itself once there is room.")
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
                add_to_manifest(files, str(record.id), record.payload or {})
            if offset is None:
                return files

    def vectors(self, ids: Sequence[str]) -> dict[str, Vector]:
        if not ids:
            return {}
        records = self._shard.retrieve(list(ids), with_payload=False, with_vector=[DENSE])
        return {str(r.id): v for r in records if (v := dense_of(r.vector)) is not None}

    def sparse_vectors(self, ids: Sequence[str]) -> dict[str, SparseVec]:
        if not ids:
            return {}
        records = self._shard.retrieve(list(ids), with_payload=False, with_vector=[SPARSE])
        return {str(r.id): v for r in records if (v := sparse_of(r.vector)) is not None}

    def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, Vector]:
        if not hashes:
            return {}
        flt = qe.Filter(must=[qe.FieldCondition("chunk_hash", match=qe.MatchAny(list(hashes)))])
        records, _ = self._shard.scroll(qe.ScrollRequest(
            limit=len(hashes) * 4, filter=flt,
            with_payload=qe.PayloadSelector.Include(["chunk_hash"]), with_vector=[DENSE]))
        return vectors_by_chunk_hash(records)

    def payloads(self, ids: Sequence[str],
                 fields: Sequence[str] | None = None) -> dict[str, ChunkPayload]:
        if not ids:
            return {}
        records = self._shard.retrieve(list(ids), with_payload=True if fields is None
                                       else list(fields), with_vector=False)
        return {str(r.id): as_payload(r.payload) for r in records}

    def query(self, dense: Vector | None, sparse: SparseVec | None, mode: Mode, limit: int,
              where: PathFilter, fusion: Fusion = HYBRID_FUSION,
              payload: bool = True) -> list[StoredHit]:
        plan = plan_query(dense, sparse, mode, limit, where, fusion, payload)
        if plan is None:
            return []
        flt = _filter(plan.conditions)
        dense_q = qe.Query.Nearest(plan.dense, using=DENSE) if plan.dense is not None else None
        sparse_q = (qe.Query.Nearest(qe.SparseVector(plan.sparse.indices, plan.sparse.values),
                                     using=SPARSE) if plan.sparse is not None else None)
        request: qe.QueryRequest
        if plan.fused:
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[qe.Prefetch(limit=plan.depth, query=dense_q, filter=flt),
                            qe.Prefetch(limit=plan.depth, query=sparse_q, filter=flt)],
                query=(qe.Fusion.Rrf(k=fusion.k,  # type: ignore[arg-type]
                                     weights=[fusion.dense_weight, fusion.sparse_weight])
                       if fusion.method == "rrf" else qe.Fusion.Dbsf()),
                filter=flt, with_payload=plan.payload, with_vector=False)
        else:
            request = qe.QueryRequest(limit=limit, query=dense_q if plan.using == DENSE
                                      else sparse_q, filter=flt, with_payload=plan.payload,
                                      with_vector=False)
        return [StoredHit(str(p.id), float(p.score),
                          as_payload(p.payload if plan.payload else None))
                for p in self._shard.query(request)]

    def cosines(self, dense: Vector, ids: Sequence[str]) -> dict[str, float]:
        if not ids:
            return {}
        found = self._shard.query(qe.QueryRequest(
            limit=len(ids), query=qe.Query.Nearest(dense.tolist(), using=DENSE),
            filter=qe.Filter(must=[qe.HasIdCondition(set(ids))]), with_payload=False,
            with_vector=False))
        return {str(p.id): float(p.score) for p in found}

    def pending(self, paths: Sequence[str] | None, limit: int) -> list[PendingChunk]:
        must: list[Any] | None = ([qe.FieldCondition("path", match=qe.MatchAny(list(paths)))]
                                  if paths is not None else None)
        flt = qe.Filter(must=must, must_not=[_NOT_MARKER, qe.HasVectorCondition(DENSE)])
        records, _ = self._shard.scroll(qe.ScrollRequest(
            limit=limit, filter=flt, with_payload=qe.PayloadSelector.Include(_PENDING_FIELDS),
            with_vector=False))
        return [PendingChunk(str(r.id), str(payload.get("path", "")), embedding_text(payload),
                             chunk_tokens(payload))
                for r in records if (payload := as_payload(r.payload))]

    def counts(self) -> StoreCounts:
        chunks = self._shard.count(qe.CountRequest(
            filter=qe.Filter(must_not=[_NOT_MARKER]), exact=True))
        missing = self._shard.count(qe.CountRequest(
            filter=qe.Filter(must_not=[_NOT_MARKER, qe.HasVectorCondition(DENSE)]), exact=True))
        return StoreCounts(int(chunks), int(chunks) - int(missing))

    def count(self) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True)))


def _filter(conditions: Conditions) -> qe.Filter | None:
    """The plan's conditions as a Qdrant Edge filter."""
    if conditions.empty:
        return None
    must: list[Any] = [qe.FieldCondition(f, match=qe.MatchAny(v)) for f, v in conditions.must]
    must_not: list[Any] = [qe.FieldCondition(f, match=qe.MatchAny(v))
                           for f, v in conditions.must_not]
    return qe.Filter(must=must or None, must_not=must_not or None)


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


def loaded_holes(segments: Path) -> int:
    """The holes that loading a shard fills: what opening it allocates on a memory
    filesystem. Measured on tmpfs (a 30-chunk store: 49 MB of its 187 MB of holes): Qdrant
    Edge populates the maps of its payload indexes and the chunk files of the dense vectors
    when it loads a shard; payload and BM25 storage and the WAL stay sparse until written."""
    total = 0
    for folder, _dirs, names in os.walk(segments):
        parts = Path(folder).parts
        for name in names:
            if "payload_index" in parts or (name.startswith("chunk_") and name.endswith(".mmap")):
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(folder, name))
                    total += max(0, st.st_size - st.st_blocks * 512)
    return total


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"
