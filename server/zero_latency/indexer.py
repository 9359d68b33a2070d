"""Keeps one workspace's store in step with its files (and the editor's unsaved buffers).

Incremental by design: a file whose size and mtime are unchanged is not read; one whose
content hash is unchanged is not chunked; a changed file re-embeds only chunks whose text is
new (a chunk keeps its point id, and so its vector, while its text is unchanged; a chunk moved
from another file reuses that vector by content hash). New points are written before stale
ones are deleted, so a crash leaves at worst a file with points from two versions, which the
manifest flags and the next run repairs.

Reading and chunking the next files overlaps with inference on the previous group: the
embedder runs in its own executor while this thread prepares work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from . import chunking
from .chunk_pool import ChunkPool, ChunkSettings, ReadResult, approx_tokens
from .chunking import Chunk, chunk_document, document_title, language_for, normalise_newlines
from .config import Settings
from .embedder import Embedder, Matrix
from .errors import CancelledError, ZeroLatencyError
from .files import (
    Document,
    FileEntry,
    SkipFile,
    WorkspaceFilter,
    canonical_path,
    hash_bytes,
    read_document,
    without_lone_surrogates,
)
from .sparse import ANALYSIS_VERSION, SparseEncoder
from .stores import (
    MARKER_HASH,
    ChunkPayload,
    ChunkPoint,
    FileState,
    PendingChunk,
    SparseVec,
    Store,
    StoreCounts,
    Vector,
    file_marker_id,
    point_id,
)

log = logging.getLogger(__name__)

#: Texts sent to the embedder at a time: small enough that an edit or a cancel waits little.
EMBED_GROUP = 32
#: Files written at a time when they need little embedding (unchanged chunks, empty files):
#: bounds one store write, and how long an edit waits behind a run.
WRITE_GROUP_FILES = 64
#: Chunks the keyword pass writes at a time: what a kill loses at most, and how soon the
#: first files become searchable.
KEYWORD_GROUP = 64
#: A keyword pass over at least this many files reads and chunks them in worker processes
#: (chunk_pool.py); fewer are done here (starting the workers costs about a second).
POOL_MIN_FILES = 256
#: Files handed to the workers ahead of the one being written (bounds memory and what a
#: cancel leaves running), in tasks of READ_BATCH files (one message each way per task: each
#: costs the indexer's process a wake-up and its share of the interpreter lock).
READ_AHEAD = 256
READ_BATCH = 32
#: The first files that need reading are read here: a warm run with a few changed files
#: starts no worker.
READ_HERE = 64
ProgressFn = Callable[[int, int, str], None]
#: Chunks the keyword pass of a small workspace (read here, not by workers) has with the model
#: at most while it reads on: reading runs on one core and leaves the other to the model. About
#: a second of its work, so it never waits for the next group; chunks written while it is busy
#: are left to the backfill (the model is ~10x slower than reading: most of the pass's are).
EMBED_AHEAD = 128
#: Chunks the backfill embeds at a time: what a kill loses at most (~1 s of work here), and
#: the grain of its progress. An opened file or an edit does not wait for the group (its
#: embedding is urgent: the model runs it at the group's next text). Each group ends with a
#: stream idle while the other finishes its last text: on rust-book, groups of 8 ran at 83% of
#: one call's rate, 32 at 90%, 128 at 99.5% (OpenVINO, 2 streams). A rate cap
#: (`backfillChunksPerSecond`) takes groups of at most that many, so the count rises smoothly.
BACKFILL_GROUP = 128
#: The backfill's first group: its first vectors (and a rate to show) come within a fraction of
#: a second; each group after it is twice the last, up to BACKFILL_GROUP.
BACKFILL_FIRST_GROUP = 8
#: Files whose pending chunks one store read of the backfill asks for (in priority order).
BACKFILL_WINDOW = 256
#: Pending chunks the backfill reads at a time (in priority order, windows of files) and cuts
#: into groups by length, longest first. A group of chunks of like length runs at one or two
#: padded widths, where a group in file order sweeps them all, and OpenVINO pays ~2 ms for
#: each change of width of a stream: cold on tldr-pages, 2,550 such changes were ~5 % of the
#: model's time.
BACKFILL_SORTED = 1024
#: Chunks of opened files embedded at a time, ahead of the backfill's own groups.
OPENED_GROUP = 32
#: How often the backfill, while a group embeds, looks for edits and opened files to serve.
ATTEND_EVERY_S = 0.02
#: Recently opened files remembered for the backfill's priority.
RECENT_FILES = 256
#: How long a count of stored / embedded chunks is reused (status is asked ~2/s).
COUNTS_TTL_S = 0.5


@dataclasses.dataclass
class IndexReport:
    files: int = 0
    indexedFiles: int = 0
    unchangedFiles: int = 0
    removedFiles: int = 0
    skippedFiles: int = 0
    chunks: int = 0
    embeddedChunks: int = 0
    #: Chunks written by the keyword pass without their dense vector (the backfill's work).
    pendingChunks: int = 0
    elapsedMs: float = 0.0
    errors: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def add(self, other: IndexReport) -> None:
        for field in dataclasses.fields(self):
            if field.name in {"elapsedMs", "errors"}:
                continue
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        self.errors += other.errors

    def after(self, earlier: IndexReport) -> IndexReport:
        """This run's report merged with the run it waited for: the files that run indexed
        are counted as indexed (not as unchanged here), and its embedding is added."""
        merged = dataclasses.replace(self, errors=[*earlier.errors, *self.errors])
        merged.indexedFiles += earlier.indexedFiles
        merged.unchangedFiles = max(0, self.unchangedFiles - earlier.indexedFiles)
        merged.removedFiles += earlier.removedFiles
        merged.embeddedChunks += earlier.embeddedChunks
        merged.elapsedMs += earlier.elapsedMs
        return merged

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise CancelledError("indexing cancelled")


@dataclasses.dataclass
class _Prepared:
    rel: str
    state: FileState
    chunks: list[Chunk]
    ids: list[str]
    hashes: list[str]
    title: str
    language: str
    vectors: list[Vector | None]  # reused vectors; None where embedding is needed
    stale_ids: list[str]
    generation: int
    #: Each chunk's BM25 analysis, when a chunking worker made it (None: made at the write).
    analysed: list[tuple[SparseVec, str]] | None = None


class EmbedAhead:
    """Chunks the keyword pass has written, embedded while it reads on: at most `most` chunks
    with the model at once; chunks offered while it has them all are not taken (the backfill
    embeds them). Groups grow as the backfill's do (8, doubling), so the first vectors and a
    rate come as soon. Submitted as the backfill's work is (not urgent: an edit goes first).
    A group the model fails is dropped here: the backfill retries its chunks one by one."""

    def __init__(self, embedder: Embedder, most: int) -> None:
        self.embedder = embedder
        self.most = most
        self.in_flight: list[tuple[list[PendingChunk], Future[Matrix]]] = []
        self.next_size = BACKFILL_FIRST_GROUP

    def offer(self, chunks: list[PendingChunk]) -> None:
        busy = sum(len(group) for group, _ in self.in_flight)
        while chunks and busy < self.most:
            group, chunks = chunks[:self.next_size], chunks[self.next_size:]
            self.in_flight.append((group, self.embedder.submit([c.text for c in group])))
            busy += len(group)
            self.next_size = min(self.next_size * 2, BACKFILL_GROUP)

    def finished(self) -> list[tuple[list[PendingChunk], Matrix]]:
        """The groups embedded by now, each once."""
        done: list[tuple[list[PendingChunk], Matrix]] = []
        for group, future in list(self.in_flight):
            if not future.done():
                continue
            self.in_flight.remove((group, future))
            try:
                done.append((group, future.result()))
            except Exception as err:  # any chunk's text can break a batch
                log.debug("embedding %d chunks ahead failed (%r): left to the backfill",
                          len(group), err)
        return done


class WorkspaceIndex:
    """The index of one workspace folder: its filter, store, manifest and open buffers."""

    def __init__(self, root: Path, settings: Settings, store: Store,
                 embedder: Embedder | None, sparse: SparseEncoder,
                 borrow: Callable[[list[str]], dict[str, Vector]] | None = None) -> None:
        """`borrow`: vectors by chunk content hash from the other indexes of this workspace
        that the process holds for the same model build (another client's settings): what
        they have is copied, not embedded again."""
        self.root = canonical_path(root) or root  # what every stored path is relative to
        self.borrow = borrow
        self.settings = settings
        self.filter = WorkspaceFilter(self.root, settings)
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.count_tokens = embedder.count_tokens if embedder else approx_tokens
        self.max_tokens = min(settings.chunkTokens, embedder.max_tokens if embedder else 10_000)
        # What the store holds per file, read from the payloads on first use (on the index
        # worker's first sync): at 100k chunks that read takes seconds, and search need not
        # wait for it.
        self._files: dict[str, FileState] | None = None
        self._files_lock = threading.Lock()
        # The chunks by language, and in all, summed over `files` once, then kept as files are
        # written and removed (`_record`, `_forget`): every search asks for the first and every
        # docs/status (~2/s a client, on the event loop) for the second; summing them anew was
        # O(files) and O(chunks): 15 ms a search and 14 ms a count at 45k files.
        self._languages: Counter[str] | None = None
        self._chunks: int | None = None
        self._totals_lock = threading.Lock()
        self.overlays: dict[str, str] = {}
        # Bumped by every edit/event for a file: a version prepared before the bump is stale.
        self.generations: dict[str, int] = {}
        self.lock = threading.RLock()  # one writer at a time per workspace
        # Guards overlays and generations only, never held across work: the event loop
        # updates them on every edit, and when they shared the writer's lock each didChange
        # waited for the sync in progress (embedding included), stalling every search
        # behind it (p95 26 s in an edit storm).
        self._edits_lock = threading.Lock()
        self._cancel: CancelToken | None = None  # of the run in progress
        # Files the editor opened or showed, newest last: embedded first by the backfill.
        self._recent: dict[str, None] = {}
        # Opened since the backfill last looked: it embeds them at once, even mid-group.
        self._just_opened: list[str] = []
        self._counts: tuple[float, StoreCounts] | None = None
        # Whether the store holds any dense vector (one to reuse by content hash), known
        # for the sync in progress: asked once per sync, not once per file.
        self._has_vectors: bool | None = None
        # The model's work ahead of the backfill, started by a small keyword pass (sync); the
        # next backfill takes it over (after a pass that failed, too: each vector is written
        # only for a chunk still stored).
        self._ahead: EmbedAhead | None = None

    def read_manifest(self) -> dict[str, FileState]:
        """What the store holds per file: read from the payloads once, then kept up to date."""
        if self._files is None:
            with self._files_lock:
                if self._files is None:
                    self._files = self.store.manifest()
        return self._files

    @property
    def files(self) -> dict[str, FileState]:
        return self.read_manifest()

    @property
    def manifest_loaded(self) -> bool:
        return self._files is not None

    # --- public API (blocking; call from the index worker thread) -------------------------

    def uri_to_rel(self, path: Path) -> str | None:
        """The one name a file has in this workspace, however `path` is spelled (symlinks,
        `.`/`..`, /proc/self/root): relative to the root, resolved; None when outside."""
        resolved = canonical_path(path)
        if resolved is None:
            return None
        try:
            rel = resolved.relative_to(self.root)
        except ValueError:
            return None
        return rel.as_posix() if str(rel) != "." else ""

    def sync(self, targets: Sequence[Path] | None = None, force: bool = False,
             progress: ProgressFn | None = None, cancel: CancelToken | None = None,
             between_groups: Callable[[], None] | None = None,
             embed: bool = True, embed_ahead: bool = False) -> IndexReport:
        """Make the store reflect `targets` (folders or files; default: the whole workspace).

        `embed=False` is the keyword pass of a full run: chunks are written with their BM25
        vector and payload only (dense vectors reused where the store has them), so the whole
        workspace is keyword-searchable at reading speed; the backfill adds the rest. With
        `embed_ahead`, a pass that reads its files here (too few for the workers) has the
        model embed what it writes while it reads on (`EmbedAhead`): the backfill starts with
        those chunks done or in hand, not after the last file is read."""
        started = time.perf_counter()
        report = IndexReport()
        with self.lock, self._cancelled_by(cancel):
            self._has_vectors = None  # the backfill may have written some since the last
            pool: list[ChunkPool] = []  # the keyword pass's workers, once it needs them

            def many_to_read() -> None:
                """The walk found POOL_MIN_FILES files to read: the workers start now, while
                it goes on (their start costs about a second of their own)."""
                if not embed and not pool and (workers := self._chunk_pool()) is not None:
                    workers.start()
                    pool.append(workers)

            with contextlib.ExitStack() as stopping:  # the workers stop however this ends
                stopping.callback(lambda: pool[0].close() if pool else None)
                entries, gone = self._plan(targets, report, force, many_to_read)
                if not embed:  # a keyword pass: the model ahead of it or not (none left over)
                    self._ahead = (EmbedAhead(self.embedder, EMBED_AHEAD)
                                   if embed_ahead and self.embedder is not None and not pool
                                   and len(entries) < POOL_MIN_FILES else None)
                total = len(entries) + len(gone)
                done = 0
                group: list[_Prepared] = []
                to_embed = 0  # texts in `group` that need the model (a running count:
                # rescanning the group per file was quadratic when files add nothing to embed)
                in_flight: tuple[list[_Prepared], Future[Matrix]] | None = None
                per_write = EMBED_GROUP if embed else KEYWORD_GROUP
                # The model waiting on this pass (`EmbedAhead`) starts at its first few
                # chunks, not once a whole group is read.
                write_at = (BACKFILL_FIRST_GROUP if not embed and self._ahead is not None
                            else per_write)
                files = stopping.enter_context(contextlib.closing(self._prepare_all(
                    entries, force, report, cancel, not embed, pool[0] if pool else None)))
                for entry, prepared in files:
                    done += 1
                    if progress and (done % 10 == 0 or done == total):
                        progress(done, total, entry.rel)
                    if prepared is None:
                        continue
                    group.append(prepared)
                    to_embed += sum(v is None for v in prepared.vectors)
                    if to_embed >= write_at or len(group) >= WRITE_GROUP_FILES:
                        in_flight = self._rotate(in_flight, group, report, embed)
                        group, to_embed, write_at = [], 0, per_write
                        if between_groups:
                            between_groups()
            in_flight = self._rotate(in_flight, group, report, embed)
            self._rotate(in_flight, [], report, embed)
            if gone:  # last, so that a moved file could reuse their vectors by content hash
                self.store.delete_paths(gone)
                self._counts = None  # counts read from now on include this write
                for rel in gone:
                    self._forget(rel)
                report.removedFiles += len(gone)
                if progress:
                    progress(total, total, "removed files")
            report.files = len(entries)
            report.chunks = sum(self.files[e.rel].chunk_total() for e in entries
                                if e.rel in self.files)
        report.elapsedMs = round((time.perf_counter() - started) * 1000, 1)
        return report

    def _prepare_all(self, entries: list[FileEntry], force: bool, report: IndexReport,
                     cancel: CancelToken | None, parallel: bool, started: ChunkPool | None
                     ) -> Generator[tuple[FileEntry, _Prepared | None]]:
        """Each entry with what `_prepare_or_report` makes of it, in the walk's order. With
        `parallel` (the keyword pass) and enough files, worker processes read and chunk the
        files ahead of the one being prepared (`started`: already started by the walk); the
        rest of the work stays here."""
        pool = (started or self._chunk_pool()) if parallel and len(entries) >= POOL_MIN_FILES \
            else None
        ahead: deque[tuple[FileEntry, Future[ReadResult | None] | None]] = deque()
        unsent: list[tuple[Path, str]] = []  # the task being filled, and its files' futures
        unsent_results: list[Future[ReadResult | None]] = []
        reads = 0  # files found to need reading (the first READ_HERE are read here)

        def send(needed: Future[ReadResult | None] | None = None) -> None:
            """Send the task being filled (only if it holds `needed`, when given)."""
            if needed is not None and not any(f is needed for f in unsent_results):
                return
            if unsent and pool is not None:
                pool.submit(unsent.copy(), unsent_results.copy())
                unsent.clear()
                unsent_results.clear()

        try:
            for entry in entries:
                reading: Future[ReadResult | None] | None = None
                if pool is None:
                    if cancel:
                        cancel.check()
                    yield entry, self._prepare_or_report(entry, force, report)
                    continue
                if self._reads_from_disk(entry, force) and (reads := reads + 1) > READ_HERE:
                    reading = Future()
                    unsent.append((entry.path, language_for(entry.rel) or "plaintext"))
                    unsent_results.append(reading)
                    if len(unsent) >= READ_BATCH:
                        send()
                ahead.append((entry, reading))
                if len(ahead) >= READ_AHEAD:
                    yield self._prepare_next(ahead, force, report, cancel, send)
            while ahead:
                yield self._prepare_next(ahead, force, report, cancel, send)
        finally:
            if pool is not None:
                pool.close()

    def _prepare_next(self, ahead: deque[tuple[FileEntry, Future[ReadResult | None] | None]],
                      force: bool, report: IndexReport, cancel: CancelToken | None,
                      send: Callable[[Future[ReadResult | None]], None]
                      ) -> tuple[FileEntry, _Prepared | None]:
        """The oldest file read ahead, prepared (its task sent first, if it is still being
        filled)."""
        if cancel:
            cancel.check()
        entry, reading = ahead.popleft()
        if reading is not None:
            send(reading)
        return entry, self._prepare_or_report(entry, force, report, reading)

    def _chunk_pool(self) -> ChunkPool | None:
        """Workers that chunk as this index does (None: the model's counter cannot be
        loaded elsewhere, as a test double's)."""
        tokenizer = self.embedder.tokenizer_file if self.embedder is not None else None
        if self.embedder is not None and tokenizer is None:
            return None
        return ChunkPool(ChunkSettings(tokenizer, self.max_tokens, self.settings.chunkOverlap,
                                       self.settings.maxFileBytes, self.sparse.params))

    def _reads_from_disk(self, entry: FileEntry, force: bool) -> bool:
        """`_prepare` will read `entry` from disk (no editor buffer stands for it, and the
        store does not hold it as it is)."""
        with self._edits_lock:
            buffered = entry.rel in self.overlays
        return not buffered and (force or not self._unchanged_on_disk(entry))

    def note_opened(self, rel: str) -> None:
        """The editor opened or showed `rel`: the backfill embeds its chunks next."""
        with self._edits_lock:
            self._recent.pop(rel, None)
            self._recent[rel] = None
            while len(self._recent) > RECENT_FILES:
                del self._recent[next(iter(self._recent))]
            if rel not in self._just_opened:  # bounded: no backfill may be running to take it
                self._just_opened = [*self._just_opened[-(RECENT_FILES - 1):], rel]

    def counts(self) -> StoreCounts:
        """Chunks stored and how many have their dense vector (briefly cached)."""
        cached = self._counts
        now = time.monotonic()
        if cached is None or now - cached[0] > COUNTS_TTL_S:
            cached = self._counts = (now, self.store.counts())
        return cached[1]

    def touch(self, rel: str) -> None:
        with self._edits_lock:
            self.generations[rel] = self.generations.get(rel, 0) + 1

    def set_overlay(self, rel: str, text: str | None) -> None:
        """Unsaved editor text for a file (None: the buffer closed, the disk wins again)."""
        with self._edits_lock:
            if text is None:
                self.overlays.pop(rel, None)
            else:
                self.overlays[rel] = text

    def remove_under(self, rel_prefix: str) -> int:
        with self.lock:
            doomed = [r for r in self.files if r == rel_prefix or r.startswith(rel_prefix + "/")]
            self.store.delete_paths(doomed)
            self._counts = None  # counts read from now on include this write
            for rel in doomed:
                self._forget(rel)
            return len(doomed)

    def chunk_count(self) -> int:
        """The chunks the store holds (file markers not counted)."""
        with self._totals_lock:
            if self._chunks is None:
                self._chunks = sum(s.chunk_total() for s in list(self.files.values()))
            return self._chunks

    def languages(self) -> dict[str, int]:
        """The natural languages of the workspace's chunks (sparse.detect), with chunk counts:
        a query is analysed for each (search.py). Summed once, then kept up to date."""
        with self._totals_lock:
            if self._languages is None:
                self._languages = Counter()
                for state in list(self.files.values()):
                    self._languages.update(state.langs)
            return {lang: n for lang, n in self._languages.items() if n > 0}

    def _record(self, rel: str, state: FileState) -> None:
        """`state` is what the store now holds for `rel` (its chunk and language counts with
        it)."""
        with self._totals_lock:
            old = self.files.get(rel)
            self.files[rel] = state
            if self._languages is not None:
                if old is not None:
                    self._languages.subtract(old.langs)
                self._languages.update(state.langs)
            if self._chunks is not None:
                self._chunks += state.chunk_total() - (old.chunk_total() if old else 0)

    def _forget(self, rel: str) -> None:
        """`rel` is no longer in the store."""
        with self._totals_lock:
            old = self.files.pop(rel, None)
            if old is not None and self._languages is not None:
                self._languages.subtract(old.langs)
            if old is not None and self._chunks is not None:
                self._chunks -= old.chunk_total()

    # --- planning ----------------------------------------------------------------------------

    def _plan(self, targets: Sequence[Path] | None, report: IndexReport, force: bool = False,
              many_to_read: Callable[[], None] | None = None
              ) -> tuple[list[FileEntry], list[str]]:
        """Entries to look at, and manifest paths that no longer exist (or are now excluded).
        `many_to_read` is called once the walk has found POOL_MIN_FILES files to read."""
        entries: dict[str, FileEntry] = {}
        to_read = 0
        scopes: list[str] = []
        for target in targets or [self.root]:
            rel = self.uri_to_rel(target)
            if rel is None:
                report.errors.append({"uri": target.as_uri(),
                                      "message": "outside the workspace folders: not indexed"})
                continue
            # Walk the canonical path, never the spelling: a symlinked folder (`latest -> book`)
            # or /proc/self/root/… would otherwise store every file under a second name.
            target = self.root / rel
            if target.is_dir():
                scopes.append(rel)
                for entry in self.filter.walk(target):
                    entries[entry.rel] = entry
                    if (many_to_read is not None and to_read < POOL_MIN_FILES
                            and self._reads_from_disk(entry, force)):
                        to_read += 1
                        if to_read == POOL_MIN_FILES:
                            many_to_read()
            else:
                scopes.append(rel)
                found = self._entry(rel)
                if found is not None:
                    entries[rel] = found
        with self._edits_lock:
            open_buffers = list(self.overlays)
        for rel in open_buffers:  # open buffers of files not yet on disk
            if rel not in entries and any(_under(rel, s) for s in scopes):
                entries[rel] = FileEntry(self.root / rel, rel, -1, -1)
        gone = [rel for rel in self.files
                if rel not in entries and any(_under(rel, s) for s in scopes)]
        return list(entries.values()), gone

    def _entry(self, rel: str) -> FileEntry | None:
        path = self.root / rel
        if self.filter.is_ignored(rel):
            return None
        if path.is_symlink() and (not self.settings.followSymlinks
                                  or not self.filter.contains(path)):
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        return FileEntry(path, rel, st.st_size, st.st_mtime_ns) if path.is_file() else None

    # --- per file ----------------------------------------------------------------------------

    def _prepare_or_report(self, entry: FileEntry, force: bool, report: IndexReport,
                           reading: Future[ReadResult | None] | None = None
                           ) -> _Prepared | None:
        """One file that cannot be handled (an odd name, a parser that gives up) is reported
        and skipped: it never costs the rest of the workspace its index. Store failures and
        cancellation are not about the file and go up."""
        try:
            entry.rel.encode("utf-8")
        except UnicodeEncodeError:
            report.skippedFiles += 1
            report.errors.append({"uri": entry.path.as_uri(), "message": (
                "file name is not valid UTF-8: not indexed (rename it to index it)")})
            return None
        try:
            return self._prepare(entry, force, report, reading)
        except (ZeroLatencyError, KeyboardInterrupt):
            raise
        except Exception as err:  # a bug or a limit hit by this one file's content
            log.warning("cannot index %s: %r", entry.rel, err, exc_info=True)
            report.skippedFiles += 1
            report.errors.append({"uri": entry.path.as_uri(),
                                  "message": f"cannot be indexed ({type(err).__name__}: "
                                             f"{str(err)[:200]}): skipped"})
            return None

    def _unchanged_on_disk(self, entry: FileEntry) -> bool:
        """The store holds this file as it is on disk (same stat, same chunker): not read."""
        old = self.files.get(entry.rel)
        return (old is not None and old.consistent and old.source == "disk"
                and old.size == entry.size and old.mtime_ns == entry.mtime_ns
                and old.file_hash.endswith(_chunked_by(self.settings)))

    def _prepare(self, entry: FileEntry, force: bool, report: IndexReport,
                 reading: Future[ReadResult | None] | None = None) -> _Prepared | None:
        """What to write for one file, or None (unchanged, skipped). `reading`: the file as a
        chunking worker read it, when one did (used unless an editor buffer now stands for
        it)."""
        rel = entry.rel
        old = self.files.get(rel)
        with self._edits_lock:  # the text and its generation, read together
            overlay = self.overlays.get(rel)
            generation = self.generations.get(rel, 0)
        chunks: list[Chunk] | None = None  # made by a worker, when one read the file
        analysed: list[tuple[SparseVec, str]] | None = None  # and their BM25 analysis,
        analysed_title: str | None = None  # of their texts under this title
        if overlay is not None:
            try:
                doc = _buffer_document(entry.path, overlay, self.settings.maxFileBytes)
            except SkipFile as skip:
                self._skip(entry, str(skip), report)
                return None
            source, size, mtime = "buffer", len(overlay), -1
        else:
            if not force and self._unchanged_on_disk(entry):
                report.unchangedFiles += 1
                return None
            read = _worker_read(reading)
            try:
                if read is None:
                    doc = read_document(entry.path, self.settings.maxFileBytes)
                elif read.document is None:
                    raise SkipFile(read.skipped or "not read")
                else:
                    doc, chunks = read.document, read.chunks
                    if read.analysed is not None and len(read.analysed) == len(chunks):
                        analysed, analysed_title = read.analysed, read.title
            except SkipFile as skip:
                self._skip(entry, str(skip), report)
                return None
            if doc.warning:
                report.errors.append({"uri": entry.path.as_uri(), "message": doc.warning})
            # The stat taken before reading, not the walk's: never one for unread content.
            source, size, mtime = "disk", doc.size, doc.mtime_ns
        # The file hash names the chunker too: the same bytes chunked by another version are
        # re-chunked (chunk vectors are still reused by content hash below).
        state = FileState(size, mtime, doc.content_hash + _chunked_by(self.settings), source, {})
        if (not force and old is not None and old.consistent and old.source == source
                and old.file_hash == state.file_hash):
            # Same content, new mtime (a touch, a checkout): remember the stat, embed nothing.
            self._set_stat(rel, old, state)
            report.unchangedFiles += 1
            return None
        language = language_for(rel) or "plaintext"
        if chunks is None:
            chunks = chunk_document(doc.text, language, self.count_tokens, self.max_tokens,
                                    self.settings.chunkOverlap)
        title = document_title(rel, chunks)
        if title != analysed_title:
            analysed = None  # analysed under another title: analysed again at the write
        hashes = [c.content_hash(title) for c in chunks]
        seen: dict[str, int] = {}
        ids = []
        for h in hashes:
            ids.append(point_id(rel, h, seen.get(h, 0)))
            seen[h] = seen.get(h, 0) + 1
        vectors: list[Vector | None] = [None] * len(chunks)
        if self.embedder is not None and not force:
            kept = self.store.vectors([i for i in ids if old and i in old.chunk_ids])
            missing = [h for i, h in zip(ids, hashes, strict=True) if i not in kept]
            # A store with no vectors yet (a first run) has none to reuse: a read per file
            # saved.
            by_hash = (self.store.vectors_by_hash(sorted(set(missing)))
                       if missing and (self._store_has_vectors()
                                       or self.store.lends_beyond_itself) else {})
            if self.borrow is not None and (wanted := sorted(set(missing) - set(by_hash))):
                by_hash.update(self.borrow(wanted))
            vectors = [kept.get(i, by_hash.get(h)) for i, h in zip(ids, hashes, strict=True)]
        state.chunk_ids = dict(zip(ids, hashes, strict=True))
        if not chunks:  # empty (or blank) file: a marker records its stat, so that warm
            # runs do not read it again (an `__init__.py` per package adds up)
            state.chunk_ids = {file_marker_id(rel): MARKER_HASH}
        stale = [i for i in (old.chunk_ids if old else {}) if i not in state.chunk_ids]
        report.indexedFiles += 1
        return _Prepared(rel, state, chunks, ids, hashes, title, language, vectors, stale,
                         generation, analysed)

    def _store_has_vectors(self) -> bool:
        """The store holds a dense vector (asked once per sync: while the sync holds the
        writer's lock only its own writes add any, and `_write` notes those)."""
        if self._has_vectors is None:
            self._has_vectors = self.counts().embedded > 0
        return self._has_vectors

    def _skip(self, entry: FileEntry, message: str, report: IndexReport) -> None:
        report.skippedFiles += 1
        report.errors.append({"uri": entry.path.as_uri(), "message": message})
        if entry.rel in self.files:  # it was indexed before: its old text is no longer true
            self.store.delete_paths([entry.rel])
            self._counts = None  # counts read from now on include this write
            self._forget(entry.rel)

    def _set_stat(self, rel: str, old: FileState, new: FileState) -> None:
        if (old.size, old.mtime_ns) == (new.size, new.mtime_ns):
            return
        self.store.set_payload(list(old.chunk_ids), {"size": new.size, "mtime_ns": new.mtime_ns})
        old.size, old.mtime_ns = new.size, new.mtime_ns

    # --- embedding and writing ---------------------------------------------------------------

    def _rotate(self, in_flight: tuple[list[_Prepared], Future[Matrix]] | None,
                group: list[_Prepared], report: IndexReport,
                embed: bool) -> tuple[list[_Prepared], Future[Matrix]] | None:
        """Submit `group` for embedding, then finish the group that was in flight; `group`
        too when it has nothing to wait for (returned: what is still in flight)."""
        submitted: tuple[list[_Prepared], Future[Matrix]] | None = None
        if group:
            texts = [p.chunks[k].embedding_text(p.title) for p in group
                     for k, v in enumerate(p.vectors) if v is None] if embed else []
            if self.embedder is not None and texts:
                # Only edits and file events embed in a sync (a full run's sync is the
                # keyword pass): they go before, and interrupt, the backfill's work.
                future = self.embedder.submit(texts, urgent=True)
            else:
                future = Future()
                future.set_result(np.zeros((len(texts), 0), dtype=np.float32))
            submitted = (group, future)
        if in_flight is not None:
            self._finish(in_flight, report, embed)
        if submitted is not None and submitted[1].done():
            # Nothing for the model (the keyword pass): written now, not after the next group
            # is read (its files searchable, and its chunks with the model, that much sooner).
            self._finish(submitted, report, embed)
            return None
        return submitted

    def _finish(self, embedding: tuple[list[_Prepared], Future[Matrix]], report: IndexReport,
                embed: bool) -> None:
        """Write a group once its texts are embedded."""
        try:
            matrix = self._embedded(embedding[1])
        except CancelledError:
            raise
        except Exception as err:  # any file's text can break a batch
            log.warning("embedding a batch of %d files failed (%r): retrying file by file",
                        len(embedding[0]), err)
            self._write_each(embedding[0], report)
        else:
            self._write(embedding[0], matrix, report, embed)

    def _write_each(self, group: list[_Prepared], report: IndexReport) -> None:
        """A batch failed: embed and write its files one at a time, so that a file the model
        cannot take costs no other file its update. A file that fails alone is reported and
        keeps its stored state (which no longer matches it, so the next sync tries again)."""
        assert self.embedder is not None  # without a model nothing is embedded, nothing fails
        for p in group:
            texts = [p.chunks[k].embedding_text(p.title)
                     for k, v in enumerate(p.vectors) if v is None]
            try:
                matrix = self.embedder.submit(texts, urgent=True).result() \
                    if texts else np.zeros((0, 0), dtype=np.float32)
            except Exception as err:  # reported; the other files go on
                report.indexedFiles -= 1
                report.skippedFiles += 1
                report.errors.append({"uri": (self.root / p.rel).as_uri(),
                                      "message": f"cannot embed this file's text: {err!r}"})
                continue
            self._write([p], matrix, report, True)

    @contextlib.contextmanager
    def _cancelled_by(self, cancel: CancelToken | None) -> Iterator[None]:
        """The token of the outermost run (syncs of edits nested in it bring none)."""
        outer = self._cancel
        self._cancel = cancel or outer
        try:
            yield
        finally:
            self._cancel = outer

    def _embedded(self, future: Future[Matrix],
                  attend: Callable[[], None] | None = None) -> Matrix:
        """A group's vectors; a cancelled run stops waiting for them (the group is not
        written, so the next run embeds it: nothing half-done is recorded). `attend` runs
        while waiting (the backfill serves edits and opened files there)."""
        while True:
            try:
                return future.result(timeout=ATTEND_EVERY_S if attend else 0.1)
            except TimeoutError:
                if self._cancel is not None:
                    self._cancel.check()
                if attend is not None:
                    attend()

    def _write(self, group: list[_Prepared], matrix: Matrix, report: IndexReport,
               embed: bool) -> None:
        embedding = embed and self.embedder is not None  # else: pending chunks stay pending
        row = 0
        # One store write for the group's new points, then one for its stale ones (a point id
        # names its file, so no file's stale id is another's new one): a write per file was
        # an eighth of the keyword pass on tldr-pages.
        points: list[ChunkPoint] = []
        stale: list[str] = []
        written: list[_Prepared] = []
        for p in group:
            if self.generations.get(p.rel, 0) != p.generation:
                # Edited while this version was being embedded: the newer sync wins.
                row += sum(v is None for v in p.vectors) if embedding else 0
                continue
            if not p.chunks:
                marker: ChunkPayload = {
                    "path": p.rel, "chunk_hash": MARKER_HASH, "file_hash": p.state.file_hash,
                    "mtime_ns": p.state.mtime_ns, "size": p.state.size,
                    "source": p.state.source, "language": p.language}
                points.append(ChunkPoint(id=file_marker_id(p.rel), dense=None,
                                         sparse=SparseVec([], []), payload=marker))
            for k, chunk in enumerate(p.chunks):
                vector = p.vectors[k]
                if vector is None and embedding:
                    vector = matrix[row]
                    row += 1
                    report.embeddedChunks += 1
                elif vector is None and self.embedder is not None:
                    report.pendingChunks += 1
                if vector is not None:
                    self._has_vectors = True
                sparse, lang = (p.analysed[k] if p.analysed is not None
                                else self.sparse.analyse(chunk.embedding_text(p.title)))
                p.state.langs[lang] = p.state.langs.get(lang, 0) + 1
                points.append(ChunkPoint(
                    id=p.ids[k], dense=vector, sparse=sparse,
                    payload={
                        "path": p.rel, "start": chunk.start_line, "end": chunk.end_line,
                        "heading": list(chunk.heading_path), "title": p.title,
                        "text": chunk.text, "tokens": chunk.tokens,
                        "language": p.language, "lang": lang,
                        "chunk_hash": p.hashes[k], "file_hash": p.state.file_hash,
                        "mtime_ns": p.state.mtime_ns, "size": p.state.size,
                        "source": p.state.source,
                    }))
            stale += p.stale_ids
            written.append(p)
        self.store.upsert(points)
        self.store.delete(stale)
        self._counts = None  # counts read from now on include this write
        for p in written:
            self._record(p.rel, p.state)
        if self._ahead is not None and not embedding:  # a keyword pass, the model ahead
            report.embeddedChunks += self._add_vectors_ahead(self._ahead.finished())
            self._ahead.offer([PendingChunk(id=p.ids[k], path=p.rel,
                                            text=p.chunks[k].embedding_text(p.title))
                               for p in written for k, v in enumerate(p.vectors) if v is None])

    def _add_vectors_ahead(self, groups: list[tuple[list[PendingChunk], Matrix]]) -> int:
        """Write the vectors the model embedded ahead of the backfill (the groups still in
        flight when the keyword pass ends are the backfill's: it waits for them)."""
        # Not marked in `_has_vectors`: a file read after this would look its chunks up by
        # content hash in the store, a query per file for the rest of the pass.
        return sum(self._add_vectors(group, matrix) for group, matrix in groups)


    # --- pass 2: the dense backfill -----------------------------------------------------------

    def backfill(self, progress: BackfillProgress | None = None,
                 cancel: CancelToken | None = None,
                 between_groups: Callable[[], None] | None = None,
                 chunks_per_second: int = 0, report: IndexReport | None = None) -> int:
        """Give every stored chunk without a dense vector its vector, in priority order: files
        the editor opened (newest first) and open buffers, then by modification time (newest
        first), then anything left. Returns the chunks embedded.

        A group the model rejects is retried chunk by chunk; a file with a chunk that fails
        alone is reported in `report` (skipped, not indexed) and keeps its keyword index, with
        a file hash that no longer matches it so that the next run reads it again.

        Resumable by construction: what lacks a vector is read from the store each group
        (Qdrant's `has_vector`), and a group's vectors are written in one update, so after a
        restart or a kill nothing that has a vector is embedded again. The group being
        embedded overlaps with reading the next one. Edits (`between_groups`) and files the
        editor opens are served while a group embeds, not after it: their embedding is
        urgent work, which the model runs before the rest of the group (`ModelWorker`)."""
        if self.embedder is None:
            return 0
        started = time.perf_counter()
        done = 0
        failed: set[str] = set()  # chunk ids the model refused: not asked again this run
        with self.lock, self._cancelled_by(cancel):
            # Groups with the model, oldest first: those the keyword pass started
            # (`EmbedAhead`), then one of this loop's ahead of the one it waits for.
            queued: deque[tuple[list[PendingChunk], Future[Matrix]]] = deque()
            largest = min(BACKFILL_GROUP, chunks_per_second or BACKFILL_GROUP)
            group_size = min(BACKFILL_FIRST_GROUP, largest)
            if self._ahead is not None:
                done += self._add_vectors_ahead(self._ahead.finished())
                queued.extend(self._ahead.in_flight)
                group_size = min(self._ahead.next_size, largest)
                self._ahead = None
            total = self.store.counts().pending + done
            order = self._backfill_order()
            cursor = 0
            ready: list[PendingChunk] = []  # read ahead of the groups, shortest first
            opened_done: set[str] = set()  # embedded by `_embed_opened` meanwhile

            def attend() -> None:
                nonlocal done
                if between_groups is not None:
                    between_groups()
                busy = {c.id for group, _ in queued for c in group}
                done += self._embed_opened(busy | failed, failed, report, opened_done)

            while True:
                if self._cancel is not None:
                    self._cancel.check()
                if between_groups is not None:
                    between_groups()
                skip = failed | opened_done | {c.id for group, _ in queued for c in group}
                group, cursor = self._next_pending(order, cursor, skip, group_size, ready)
                if group:
                    group_size = min(group_size * 2, largest)
                    queued.append((group, self.embedder.submit([c.text for c in group])))
                    if len(queued) < 2:
                        continue  # the model gets the next group before this one is awaited
                if not queued:
                    return done
                for _ in range(max(1, len(queued) - 1)):  # one left with the model, if any
                    if self._cancel is not None:
                        self._cancel.check()
                    done += self._finish_group(*queued.popleft(), failed, report, attend)
                    total = max(total, done)
                    self._counts = None
                    if progress is not None:
                        progress(done, total, time.perf_counter() - started)
                    if chunks_per_second:
                        self._hold_rate(started, done, chunks_per_second, attend)

    def _backfill_order(self) -> list[str]:
        """Every file with chunks, newest modification first (buffers count as newest)."""
        ranked = sorted(self.files.items(), key=lambda item: item[1].mtime_ns
                        if item[1].source == "disk" else 1 << 62, reverse=True)
        return [rel for rel, state in ranked if state.chunk_total()]

    def _next_pending(self, order: list[str], cursor: int, skip: set[str], size: int,
                      ready: list[PendingChunk]) -> tuple[list[PendingChunk], int]:
        """The next group to embed (at most `size` chunks, none in `skip`), and where the
        walk over `order` has got to. Recently opened files and open buffers first, as the
        store gives their chunks; then the rest from `ready`, longest first: up to
        BACKFILL_SORTED chunks read ahead in `order` and sorted by length (`ready` is the
        caller's, kept from one group to the next)."""
        with self._edits_lock:
            urgent = [*reversed(self._recent), *self.overlays][:BACKFILL_WINDOW]
        if urgent:
            found = [c for c in self.store.pending(urgent, size + len(skip))
                     if c.id not in skip]
            if found:
                taken = {c.id for c in found[:size]}
                ready[:] = [c for c in ready if c.id not in taken]
                return found[:size], cursor
        ready[:] = [c for c in ready if c.id not in skip]  # taken meanwhile
        if not ready:
            found, cursor = self._read_pending(order, cursor, skip, BACKFILL_SORTED)
            ready.extend(sorted(found, key=lambda c: c.length))
        group = ready[-size:]
        del ready[-size:]
        return group, cursor

    def _read_pending(self, order: list[str], cursor: int, skip: set[str],
                      most: int) -> tuple[list[PendingChunk], int]:
        """Up to `most` pending chunks (none in `skip`) of the files of `order` from
        `cursor` on, window by window, and where the walk has got to: past each window
        read to its end."""
        found: list[PendingChunk] = []
        while cursor < len(order) and len(found) < most:
            window = order[cursor : cursor + BACKFILL_WINDOW]
            limit = most - len(found) + len(skip)
            read = self.store.pending(window, limit)
            found += [c for c in read if c.id not in skip]
            if len(read) == limit:
                return found, cursor  # the window may have more
            cursor += len(window)
        if not found:  # files that came in after the walk began (or that the order missed)
            found = [c for c in self.store.pending(None, most + len(skip))
                     if c.id not in skip]
        return found[:most], cursor

    def _embed_opened(self, skip: set[str], failed: set[str],
                      report: IndexReport | None, taken: set[str]) -> int:
        """Embed now the pending chunks of the files opened since the last look (not those in
        `skip`: already queued), as urgent work: the user is looking at them. Their ids go
        into `taken` (the backfill may hold some read ahead)."""
        with self._edits_lock:
            opened, self._just_opened = self._just_opened, []
        done = 0
        tried = set(skip)  # a chunk gone meanwhile stays pending in no file: asked once
        while opened:
            group = [c for c in self.store.pending(opened, OPENED_GROUP + len(tried))
                     if c.id not in tried][:OPENED_GROUP]
            if not group:
                break
            tried.update(c.id for c in group)
            taken.update(c.id for c in group)
            assert self.embedder is not None  # the backfill runs only with a model
            future = self.embedder.submit([c.text for c in group], urgent=True)
            done += self._finish_group(group, future, failed, report, urgent=True)
        return done

    def _finish_group(self, group: list[PendingChunk], future: Future[Matrix],
                      failed: set[str], report: IndexReport | None,
                      attend: Callable[[], None] | None = None, urgent: bool = False) -> int:
        """Write a group's vectors once embedded (running `attend` while waiting); a group the
        model rejects, chunk by chunk (a store that fails the write is not the model's fault:
        its error goes up)."""
        try:
            matrix = self._embedded(future, attend)
        except CancelledError:
            raise
        except Exception as err:  # any chunk's text can break a batch
            log.warning("embedding %d chunks failed (%r): retrying one at a time",
                        len(group), err)
        else:
            return self._add_vectors(group, matrix)
        assert self.embedder is not None
        done = 0
        refused: dict[str, str] = {}  # path -> why
        for chunk in group:
            try:
                matrix = self.embedder.submit([chunk.text], urgent).result()
            except Exception as err:  # reported; the other chunks go on
                failed.add(chunk.id)
                refused.setdefault(chunk.path, f"cannot embed this file's text: {err!r}")
                continue
            done += self._add_vectors([chunk], matrix)
        for rel, message in refused.items():
            self._embedding_refused(rel, message, report)
        return done

    def _embedding_refused(self, rel: str, message: str, report: IndexReport | None) -> None:
        """The model refused a chunk of `rel`: say so, and make the next run read it again
        (its points keep their keyword index; their file hash no longer matches the file)."""
        state = self.files.get(rel)
        if state is not None:
            self.store.set_payload(list(state.chunk_ids), {"file_hash": ""})
            state.file_hash = ""
        if report is not None:
            if report.indexedFiles:  # counted as indexed by this run's keyword pass
                report.indexedFiles -= 1
            report.skippedFiles += 1
            report.errors.append({"uri": (self.root / rel).as_uri(), "message": message})

    def _add_vectors(self, group: list[PendingChunk], matrix: Matrix) -> int:
        """Write a group's vectors, for the chunks that are still stored: an edit meanwhile
        replaced some (a point id names its text, so a surviving id's vector is right)."""
        vectors = {}
        for chunk, vector in zip(group, matrix, strict=True):
            state = self.files.get(chunk.path)
            if state is not None and chunk.id in state.chunk_ids:
                vectors[chunk.id] = vector
        self.store.add_dense(vectors)
        self._counts = None  # counts read from now on include this write
        return len(vectors)

    def _hold_rate(self, started: float, done: int, chunks_per_second: int,
                   attend: Callable[[], None]) -> None:
        """Stay under `chunks_per_second`, still taking edits, opened files and cancels while
        waiting."""
        while time.perf_counter() - started < done / chunks_per_second:
            if self._cancel is not None:
                self._cancel.check()
            attend()
            time.sleep(ATTEND_EVERY_S)


#: The backfill's progress: (chunks embedded, chunks to embed, seconds since it began).
BackfillProgress = Callable[[int, int, float], None]


def _buffer_document(path: Path, text: str, max_bytes: int) -> Document:
    """An editor buffer as a document, held to the limits a file on disk is held to."""
    too_big = len(text) > max_bytes  # a character is at least one byte: nothing encoded
    if not too_big:
        text = without_lone_surrogates(text)
        data = text.encode("utf-8")
        too_big = len(data) > max_bytes
    if too_big:
        raise SkipFile(f"unsaved buffer is over the maxFileBytes limit of {max_bytes:,} "
                       "bytes: not indexed")
    try:
        special = not stat.S_ISREG(path.stat().st_mode)
    except OSError:  # not on disk (yet): a new, unsaved file
        special = False
    if special:
        raise SkipFile("not a regular file (a FIFO, socket or device): not indexed")
    return Document(normalise_newlines(text), hash_bytes(data))


def _worker_read(reading: Future[ReadResult | None] | None) -> ReadResult | None:
    """A chunking worker's result; None when there is none, or it failed, or its process died
    (the file is then read here, and a failure of its own comes up as it would in process)."""
    if reading is None:
        return None
    try:
        return reading.result()
    except Exception:  # the pool's failure (said once, by ChunkPool), not the file's
        return None


def _under(rel: str, scope: str) -> bool:
    return scope == "" or rel == scope or rel.startswith(scope + "/")


def _chunked_by(settings: Settings) -> str:
    """The suffix of a file hash that names the chunker version that made its chunks, the
    keyword analysis version that analysed them and the chunk size and overlap where they are
    not the defaults (any of them changed: the file is read again, its chunks' vectors reused
    by content hash, their sparse vectors made anew; the size and overlap used to be left out,
    so a changed `chunkTokens` cut only the files edited afterwards anew)."""
    made = f"+chunker{chunking.CHUNKER_VERSION}+bm25v{ANALYSIS_VERSION}"
    cut = (settings.chunkTokens, settings.chunkOverlap)
    # The defaults as the class holds them: no Settings made for each file a run walks.
    return made if cut == (Settings.chunkTokens, Settings.chunkOverlap) else (
        f"{made}+tokens{cut[0]}-{cut[1]}")


def chunk_languages(indexes: Iterable[WorkspaceIndex]) -> dict[str, int]:
    """The chunks of `indexes` by natural language (`WorkspaceIndex.languages` summed), most
    first: what a search analyses its query for and what status reports."""
    total: Counter[str] = Counter()
    for index in indexes:
        total.update(index.languages())
    return dict(total.most_common())
