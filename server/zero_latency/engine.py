"""The engine: settings, the model, one index per workspace folder, and the single worker
thread that does every write. The CLI calls it directly; the language server wraps it.

All index writes run on one worker thread, so a full index run and the editor's edits never
race. Edits do not wait for a long run to finish: the run drains pending file syncs between
embedding groups, and a generation counter per file keeps an older prepared version from
overwriting a newer one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from .chunking import normalise_newlines
from .config import (
    KEYWORD_ONLY_MODES,
    SEARCH_MODES,
    FileIndexState,
    Settings,
    check_workspace_folder,
)
from .embedder import Embedder, OnnxEmbedder
from .errors import (
    DeviceUnavailableError,
    InvalidParamsError,
    ModelUnavailableError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIncompatibleError,
    StoreLockedError,
    ZeroLatencyError,
)
from .files import FileEntry, canonical_path, probe
from .hub import SESSION_ONLY_SETTINGS
from .indexer import CancelToken, IndexReport, ProgressFn, WorkspaceIndex, chunk_languages
from .models import language_notice, resolve_model, uncovered_languages
from .search import related, search
from .sparse import SparseEncoder, load_detector_ahead
from .stores import (
    HYBRID_FUSION,
    Fusion,
    Mode,
    Store,
    StoreIdentity,
    Vector,
    discard_store,
    edge_path,
    index_exists,
    open_store,
    other_settings_index_exists,
)
from .stores import FileState as StoredFile

log = logging.getLogger(__name__)

T = TypeVar("T")
#: "loading": workspaces are being opened (their stores read), so counts are not known yet;
#: "idle" is the ready state (its name kept for the clients that wait for it).
State = Literal["idle", "indexing", "loading", "loadingModel", "error"]
KEYWORD_ONLY_ID = "keyword-only"
#: The settings a loaded model depends on: engines equal in these share one (`load_model`).
MODEL_KEYS = ("model", "device", "runtime", "threads", "batchSize", "offlineFallback")
#: How often a store whose disk filled up looks for room again.
ROOM_POLL_S = 1.0
#: Edits are flushed to the store at most this often (index runs flush at their end).
FLUSH_INTERVAL_S = 2.0


FileStateName = FileIndexState
#: Files whose read verdict (files.probe) is remembered between `docs/files` pages.
PROBE_CACHE_SIZE = 20_000


@dataclasses.dataclass(frozen=True)
class FileStatus:
    """One line of `docs/files` / `zl status --files`."""

    rel: str  # workspace-relative; a folder left out ends with "/"
    path: Path
    state: FileStateName
    reason: str | None = None
    chunks: int | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"uri": self.path.as_uri(), "path": self.rel, "state": self.state}
        if self.reason is not None:
            wire["reason"] = self.reason
        if self.chunks is not None:
            wire["chunks"] = self.chunks
        return wire


class Engine:
    def __init__(self, settings: Settings,
                 warn: Callable[[str], None] | None = None,
                 model: Embedder | None = None) -> None:
        """`model`: use this embedder instead of loading `settings.model` (a test double)."""
        self.settings = settings
        self.warn = warn or (lambda message: log.warning("%s", message))
        self.sparse = SparseEncoder()
        self.embedder: Embedder | None = model
        #: Whether this engine closes the embedder: not when it shares another's (`load_model`).
        self._owns_embedder = True
        #: What loading the model warned of (the fallback to the bundled model): told again to
        #: the clients of an engine that shares it.
        self.model_warning: str | None = None
        self.model_error: ModelUnavailableError | None = None
        self.last_error: str | None = None
        self.indexes: dict[Path, WorkspaceIndex] = {}
        self.store_errors: dict[Path, StoreError] = {}
        self._model_lock = threading.Lock()
        self._model_loaded = model is not None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zl-index")
        self._pending: dict[Path, set[str]] = {}
        self._pending_lock = threading.Lock()
        self._active_runs = 0
        #: When the last index run finished (monotonic) and its report: a docs/index that
        #: arrived while it ran waited for it, and reports what it did too (not "0 indexed,
        #: all unchanged").
        self.last_run: tuple[float, IndexReport] | None = None
        self._runs: set[CancelToken] = set()  # cancelled by close(): stop at a file boundary
        self._loading = False
        # Writes stopped by a full disk: workspaces whose run must be redone, and the thread
        # that waits for room (pending file syncs stay in _pending meanwhile).
        self._rescan_when_room: set[Path] = set()
        self._room_waiter: threading.Thread | None = None
        self._reopening: set[Path] = set()  # stores to open once their disk has room
        self._closing = threading.Event()
        self._dirty: set[Path] = set()  # stores written since their last flush
        self._last_flush = 0.0
        self._last_edit = 0.0
        #: Every engine of this process (the daemon's hub sets it): an index of a workspace
        #: that another one holds for this model build lends its vectors (`_borrow`).
        self.siblings: Callable[[], list[Engine]] = lambda: []
        self._flush_timer: threading.Timer | None = None
        self._probes: OrderedDict[tuple[str, int, int], tuple[bool, str | None]] = OrderedDict()
        self._probe_lock = threading.Lock()

    # --- model ---------------------------------------------------------------------------------

    def load_model(self) -> Embedder | None:
        """Load the model once (blocking). Without one, the engine runs keyword-only."""
        with self._model_lock:
            if self._model_loaded:
                return self.embedder
            shared = self._sibling_model()
            if shared is not None:  # already loaded for another client: shared, not loaded again
                self.embedder, self.model_warning = shared.embedder, shared.model_warning
                self._owns_embedder = False
                if self.model_warning:
                    self.warn(self.model_warning)
                self._model_loaded = True
                return self.embedder
            self._loading = True
            # Beside the model: the keyword pass's language identifier, which loads in
            # the time the model's compile leaves (it releases the GIL).
            load_detector_ahead()
            try:
                files, warning = resolve_model(self.settings.model, self.settings.device,
                                               self.settings.offlineFallback)
                if warning:
                    self.model_warning = warning
                    self.warn(warning)
                try:
                    self.embedder = OnnxEmbedder(files, self.settings.device,
                                                 self.settings.threads, self.settings.batchSize,
                                                 runtime=self.settings.runtime)
                except DeviceUnavailableError as err:  # same vectors, just slower: go on
                    self.warn(f"{err.message} Running the model on the CPU meanwhile.")
                    self.embedder = OnnxEmbedder(files, "cpu", self.settings.threads,
                                                 self.settings.batchSize,
                                                 runtime=self.settings.runtime)
            except ModelUnavailableError as err:
                self.model_error = err
                self.last_error = err.message
                self.warn(f"{err.message} Keyword search still works; semantic search is off.")
            finally:
                self._model_loaded = True
                self._loading = False
            return self.embedder

    def owns_model(self) -> bool:
        """Whether closing this engine closes its model (no other engine's that it shares)."""
        return self._owns_embedder

    def _sibling_model(self) -> Engine | None:
        """Another engine of this process whose model is loaded from the same settings (the
        model, where and how it runs): its clients' settings differ elsewhere (an exclude,
        say), and a second copy of the model would cost its memory and load time again."""
        for engine in self.siblings():
            if (engine is not self and engine._model_loaded and engine.embedder is not None
                    and engine.owns_model()
                    and all(getattr(engine.settings, f) == getattr(self.settings, f)
                            for f in MODEL_KEYS)):
                return engine
        return None

    @property
    def model_id(self) -> str:
        return self.embedder.model_id if self.embedder else KEYWORD_ONLY_ID

    # --- workspaces ----------------------------------------------------------------------------

    def open_workspace(self, root: Path) -> WorkspaceIndex:
        root = root.resolve()
        if root in self.indexes:
            return self.indexes[root]
        check_workspace_folder(root, self.settings)  # `/`, a home folder, another's store
        embedder = self.load_model()
        try:
            store = self._open_store_of_this_build(root)
        except StoreError as err:
            self.store_errors[root] = err
            self.last_error = err.message
            if isinstance(err, StoreFullError):
                self._reopen_when_room(root)
            raise
        index = WorkspaceIndex(root, self.settings, store, embedder, self.sparse,
                               borrow=functools.partial(self._borrow, root))
        self.indexes[root] = index
        # Its failure is forgotten only now that it is open: a search in between (on another
        # thread) would have found neither the folder nor why, and answered "no hits".
        if (failure := self.store_errors.pop(root, None)) is not None:
            if self.last_error == failure.message:
                self.last_error = None
            log.warning("the store of %s opened (there is room for it now)", root)
        self._nest_workspaces()
        for outer in self.indexes.values():  # its files are this folder's now, not theirs
            if outer is not index and outer.root in root.parents:
                outer.remove_under(root.relative_to(outer.root).as_posix())
        return index

    def _reopen_when_room(self, root: Path) -> None:
        """A store that could not be opened for want of disk space opens by itself once there
        is room: tried every ROOM_POLL_S (a statvfs when it is still full), so that searches
        answer again without a restart."""
        if root in self._reopening or self._closing.is_set():
            return
        self._reopening.add(root)

        def retry() -> None:
            try:
                while not self._closing.wait(ROOM_POLL_S):
                    try:
                        self.run(lambda: self.open_workspace(root)).result()
                    except StoreFullError:
                        continue
                    except (ZeroLatencyError, RuntimeError) as err:  # RuntimeError: shut down
                        log.warning("the store of %s still cannot be opened: %s", root, err)
                    return
            finally:
                self._reopening.discard(root)

        threading.Thread(target=retry, name="zl-reopen", daemon=True).start()

    def rebuild_workspace(self, root: Path) -> WorkspaceIndex:
        """Delete a workspace's index (damaged, or built for another model) and start over.
        Other workspaces sharing a server collection are left alone; a store another process
        holds is never deleted (StoreLockedError)."""
        root = root.resolve()
        check_workspace_folder(root, self.settings)  # before anything is deleted
        index = self.indexes.pop(root, None)
        store: Store | None = index.store if index is not None else None
        if store is None:
            try:
                store = self._open_store(root)
            except (StoreCorruptError, StoreIncompatibleError):
                # It cannot be opened to be cleared: remove it whole where the backend can.
                if not discard_store(self.settings, root, self.store_identity()):
                    raise
                log.warning("deleted the index of %s (%s) to rebuild it", root,
                            self.settings.storeUrl or "embedded store")
        if store is not None:
            store.clear()
            store.close()
            log.warning("deleted the index of %s at %s to rebuild it", root, store.location)
        self.store_errors.pop(root, None)
        return self.open_workspace(root)

    def _open_store_of_this_build(self, root: Path) -> Store:
        """The workspace's store; one made by another build of the same model (its rebuilt
        graph, or another runtime: close vectors, not equal ones) is deleted and made again,
        with a warning: the files are the source, and keyword search is back within seconds
        while the backfill embeds them again. A store of another model is refused."""
        try:
            return self._open_store(root)
        except StoreIncompatibleError as err:
            if not err.same_model or not discard_store(self.settings, root,
                                                       self.store_identity()):
                raise
        self.warn(f"The index of {root} was made by another build of {self.model_id} (an "
                  f"update, or the `runtime` setting changed): it is being made again. "
                  "Keyword search is back first, meaning as it is embedded again.")
        return self._open_store(root)

    def _open_store(self, root: Path) -> Store:
        try:
            return open_store(self.settings, root, self.store_identity())
        except StoreLockedError as err:
            held = self._locked_by_a_sibling(root)
            if held is None:
                raise
            raise held from err

    def _locked_by_a_sibling(self, root: Path) -> StoreLockedError | None:
        """Why `root`'s store is locked when another engine of this process holds it: another
        client's settings equal these where they shape the index (so the two share its
        folder) but differ in others, which a store written by one engine cannot serve."""
        path = str(self.store_path(root))
        for engine in self.siblings():
            index = engine.indexes.get(root)
            if engine is self or index is None or index.store.location != path:
                continue
            differ = [f.name for f in dataclasses.fields(Settings)
                      if f.name not in SESSION_ONLY_SETTINGS
                      and getattr(engine.settings, f.name) != getattr(self.settings, f.name)]
            return StoreLockedError(
                f"the index of {root} is open in this daemon for another client whose settings "
                f"differ from these only in {', '.join(differ) or 'nothing'}, and one engine "
                "writes an index: give both clients the same values for those (a workspace's "
                ".zero-latency.toml is read by every client), or close the other one.")
        return None

    def _borrow(self, root: Path, hashes: list[str]) -> dict[str, Vector]:
        """Vectors by chunk content hash from the indexes of `root` that the other engines of
        this process hold for this model build (clients whose settings give them an index of
        their own, `Settings.index_variant`): copied instead of embedded again."""
        found: dict[str, Vector] = {}
        others = [engine for engine in self.siblings() if engine is not self
                  and root in engine.indexes and engine.embedder is not None]
        if not others:  # the common case, asked for each file a keyword pass writes
            return found
        fingerprint = self.model_fingerprint()  # a stat of the model file: only when needed
        for engine in others:
            index = engine.indexes.get(root)
            if index is None or engine.model_fingerprint() != fingerprint:
                continue
            try:
                found.update(index.store.vectors_by_hash([h for h in hashes if h not in found]))
            except Exception as err:  # closed meanwhile, a server gone: embedded instead
                log.debug("borrowing vectors from %s failed: %r", index.store.location, err)
            if len(found) == len(hashes):
                break
        return found

    def store_identity(self) -> StoreIdentity:
        return StoreIdentity(self.model_id, self.model_fingerprint(), self.dimension())

    def has_index(self, root: Path) -> bool:
        """Whether `root` has an index for this model, in whichever store is configured."""
        self.load_model()  # the index is per model
        return index_exists(self.settings, root.resolve(), self.store_identity())

    def indexed_root(self, start: Path, any_settings: bool = False) -> Path | None:
        """The nearest folder at or above `start` with an index for this model (what `zl
        search` run inside a workspace means), or None: then no store is created.
        `any_settings`: an index made with other index-shaping settings counts too (an
        agent started in a subfolder of an editor's workspace works on that workspace, with
        an index of its own settings, not on the subfolder alone)."""
        start = start.resolve()
        self.load_model()  # the index is per model
        identity = self.store_identity()
        for folder in [start, *start.parents]:
            if index_exists(self.settings, folder, identity) or (
                    any_settings and other_settings_index_exists(self.settings, folder, identity)):
                return folder
        return None

    def store_path(self, root: Path) -> Path:
        """The folder an embedded store of `root` has (or would have) for this model."""
        self.load_model()  # the folder is per model
        return edge_path(self.settings, root, self.store_identity())

    def model_fingerprint(self) -> str:
        return self.embedder.fingerprint if self.embedder else KEYWORD_ONLY_ID

    def dimension(self) -> int:
        return self.embedder.dimension if self.embedder else 1

    def close_workspace(self, root: Path) -> None:
        """Close one folder's index. Its files go back to a folder around it, if one is open:
        the caller re-indexes them there (`index([root])`)."""
        index = self.indexes.pop(root.resolve(), None)
        self._nest_workspaces()
        if index is not None:
            self.run(index.store.close).result()

    def _nest_workspaces(self) -> None:
        """A file belongs to the innermost open folder only: each folder's walk skips the
        folders open inside it (else a disk edit updates the inner index and leaves the old
        text under the outer folder's name)."""
        for root, index in self.indexes.items():
            index.filter.nested_roots = frozenset(
                other.relative_to(root).as_posix() for other in self.indexes
                if root in other.parents)

    def index_for(self, path: Path) -> WorkspaceIndex | None:
        """The workspace holding `path` (the innermost when folders nest)."""
        best: WorkspaceIndex | None = None
        resolved = canonical_path(path)
        if resolved is None:
            return None
        for root, index in self.indexes.items():
            if (resolved == root or root in resolved.parents) and (
                    best is None or len(str(root)) > len(str(best.root))):
                best = index
        return best

    # --- work on the index thread ----------------------------------------------------------------

    def run(self, fn: Callable[[], T]) -> Future[T]:
        """Run `fn` on the index worker thread (every write goes through here)."""
        return self._worker.submit(fn)

    def index(self, targets: Sequence[Path] | None = None, force: bool = False,
              progress: ProgressFn | None = None,
              cancel: CancelToken | None = None) -> IndexReport:
        """Blocking: bring the store up to date for `targets` (None: every open workspace)."""
        total = IndexReport()
        started = time.perf_counter()
        cancel = cancel or CancelToken()
        self._runs.add(cancel)
        self._active_runs += 1
        try:
            groups: dict[Path, list[Path]] = {}
            for target in list(self.indexes) if targets is None else targets:
                index = self.index_for(target)
                if index is None:
                    total.errors.append({"uri": target.resolve().as_uri(),
                                         "message": "not inside a workspace folder"})
                    continue
                groups.setdefault(index.root, []).append(target)
            # The model may start on the chunks the keyword pass writes only where the backfill
            # would run now at its own pace (not paused, not held to a rate).
            backfill_now = (not self.settings.backfillPaused
                            and not self.settings.backfillChunksPerSecond)
            for root, paths in groups.items():
                index = self.indexes[root]
                scope = None if paths == [root] or root in paths else paths
                try:
                    # Pass 1: every file keyword-searchable first (the model only takes
                    # what it can meanwhile: `embed_ahead`).
                    report = index.sync(scope, force=force, progress=progress, cancel=cancel,
                                        between_groups=self.drain_pending, embed=False,
                                        embed_ahead=backfill_now)
                except StoreFullError as err:
                    self._wait_for_room(err, rescan=root)
                    raise
                total.add(report)
                index.store.flush()
            if not self.settings.backfillPaused:
                for root in groups:  # pass 2: the dense vectors, by priority
                    total.embeddedChunks += self._backfill(self.indexes[root], progress, cancel,
                                                           total)
            if self.embedder is not None:  # what is left for the backfill (paused, say)
                total.pendingChunks = sum(self.indexes[r].store.counts().pending
                                          for r in groups)
            for store in [i.store for i in self.indexes.values()]:
                store.flush()
                store.maybe_vacuum()
        finally:
            self._active_runs -= 1
            self._runs.discard(cancel)
        total.elapsedMs = round((time.perf_counter() - started) * 1000, 1)
        self.last_run = (time.monotonic(), total)
        return total

    def _backfill(self, index: WorkspaceIndex, progress: ProgressFn | None,
                  cancel: CancelToken, report: IndexReport) -> int:
        rate = RecentRate()

        def progressed(done: int, total: int, seconds: float) -> None:
            if progress is not None:
                progress(done, total, backfill_message(done, total, rate.update(done, seconds)))

        try:
            return index.backfill(progressed, cancel, self.drain_pending,
                                  self.settings.backfillChunksPerSecond, report)
        except StoreFullError as err:
            self._wait_for_room(err, rescan=index.root)
            raise

    def prioritize(self, index: WorkspaceIndex, rel: str) -> None:
        """The editor opened or showed `rel`: embed its chunks before the rest."""
        index.note_opened(rel)

    def schedule_sync(self, index: WorkspaceIndex, rel: str) -> Future[None]:
        """Queue one file for syncing (an edit or a file event); runs soon, even mid-run."""
        index.touch(rel)
        with self._pending_lock:
            self._pending.setdefault(index.root, set()).add(rel)
        return self.run(self.drain_pending)

    def drain_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        for root, rels in pending.items():
            index = self.indexes.get(root)
            if index is None:
                continue
            try:
                report = index.sync([index.root / rel for rel in sorted(rels)])
                self._last_edit = time.monotonic()
                self._flush_soon(index)
            except StoreFullError as err:
                with self._pending_lock:  # kept, and written once there is room again
                    self._pending.setdefault(root, set()).update(rels)
                self._wait_for_room(err)
                continue
            except ZeroLatencyError as err:
                self.last_error = err.message
                log.error("sync failed: %s", err.message)
                continue
            for error in report.errors:
                log.info("%s: %s", error["uri"], error["message"])

    def _flush_soon(self, index: WorkspaceIndex) -> None:
        """Flush after edits at most every FLUSH_INTERVAL_S. A flush holds the GIL for its
        whole length (0.3 s measured on a loaded machine): flushed after every edit, an edit
        storm starved the stdin reader and every search (p95 26 s). The WAL already holds
        each write, so a later flush loses nothing a crash of this process could take."""
        self._dirty.add(index.root)
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_INTERVAL_S:
            self._flush_dirty()
        elif self._flush_timer is None and not self._closing.is_set():
            self._flush_timer = threading.Timer(
                FLUSH_INTERVAL_S, lambda: self._submit_quietly(self._flush_dirty))
            self._flush_timer.daemon = True
            self._flush_timer.start()

    def _submit_quietly(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the worker shut down meanwhile
            self.run(fn)

    def _flush_dirty(self) -> None:
        self._flush_timer = None
        self._last_flush = time.monotonic()
        roots, self._dirty = self._dirty, set()
        for root in roots:
            index = self.indexes.get(root)
            if index is None:
                continue
            try:
                index.store.flush()
                # Vacuuming also holds the GIL (seconds): only once the edits have paused.
                if self._active_runs:
                    continue
                if time.monotonic() - self._last_edit >= FLUSH_INTERVAL_S:
                    index.store.maybe_vacuum()
                else:
                    self._flush_soon(index)  # look again after the next interval
            except ZeroLatencyError as err:
                self.last_error = err.message
                log.error("flush failed: %s", err.message)

    def _wait_for_room(self, err: StoreFullError, rescan: Path | None = None) -> None:
        """A write found the store's disk full: say so once, and watch for room; then redo
        what was not written (pending edits, interrupted runs) with nothing lost."""
        if rescan is not None:
            self._rescan_when_room.add(rescan)
        first = self.last_error != err.message and self._room_waiter is None
        self.last_error = err.message
        if first:
            self.warn(err.message)
        if self._room_waiter is None and not self._closing.is_set():
            self._room_waiter = threading.Thread(target=self._watch_for_room,
                                                 name="zl-room", daemon=True)
            self._room_waiter.start()

    def _watch_for_room(self) -> None:
        while not self._closing.wait(ROOM_POLL_S):
            if all(index.store.has_room() for index in list(self.indexes.values())):
                break
        if self._closing.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the worker shut down meanwhile
            self.run(self._resume_writes)

    def _resume_writes(self) -> None:
        self._room_waiter = None
        full_message = self.last_error
        roots, self._rescan_when_room = self._rescan_when_room, set()
        log.warning("there is disk space for the store again: writing what was held back")
        try:
            if roots:
                self.index([r for r in roots if r in self.indexes])
            self.drain_pending()
        except StoreFullError:
            return  # full again: a new wait has started
        except ZeroLatencyError as err:
            log.error("writing after the disk filled: %s", err.message)
            return
        if self.last_error == full_message and self._room_waiter is None:
            self.last_error = None

    # --- queries -------------------------------------------------------------------------------

    def search(self, query: str, limit: int = 10, mode: Mode = "hybrid",
               include: Sequence[str] = (), exclude: Sequence[str] = (),
               fusion: Fusion = HYBRID_FUSION,
               languages: Sequence[str] | None = None,
               roots: Sequence[Path] | None = None) -> dict[str, Any]:
        """Search the workspaces in `roots` (default: every open one)."""
        if mode == "semantic" and self.embedder is None and self.model_error is not None:
            raise self.model_error
        scoped = self._scoped(roots)
        result = search(scoped, self.embedder, self.sparse, query, limit,
                        mode, include, exclude, fusion, languages)
        result["indexState"] = self.index_state(scoped)
        return result

    def related(self, path: Path, line: int, limit: int = 10, text: str | None = None,
                roots: Sequence[Path] | None = None) -> dict[str, Any]:
        """docs/related: passages from other files (in the workspaces of `roots`, default every
        open one) most like the chunk of `path` at `line`. Its text is `text` (an editor's
        buffer), else the indexed buffer, else the file; its vector is the stored one when the
        index holds that chunk unchanged, else embedded now."""
        from .chunking import chunk_document, document_title, language_for
        from .files import SkipFile, read_document

        started = time.perf_counter()
        embedder = self.load_model()
        if embedder is None:
            raise self.model_error or ModelUnavailableError("no embedding model is loaded")
        index = self.index_for(path)
        rel = index.uri_to_rel(path) if index is not None else None
        if text is None and index is not None and rel:
            text = index.overlays.get(rel)
        if text is None:
            try:
                text = read_document(path, self.settings.maxFileBytes).text
            except SkipFile as skip:
                raise InvalidParamsError(f"uri: {path}: {skip}") from skip
        text = normalise_newlines(text)
        name = rel or path.name
        max_tokens = (index.max_tokens if index is not None else
                      min(self.settings.chunkTokens, embedder.max_tokens))
        chunks = chunk_document(text, language_for(name) or "plaintext",
                                embedder.count_tokens, max_tokens, self.settings.chunkOverlap)
        if not chunks:
            anchor = {"start": {"line": line, "character": 0},
                      "end": {"line": line, "character": 0}}
            return {"hits": [], "elapsedMs": _ms_since(started), "anchor": anchor}
        # The chunk holding the line; between chunks (a blank line), the nearest one.
        chunk = min(chunks, key=lambda c: (0 if c.start_line <= line < c.end_line else 1,
                                           min(abs(line - c.start_line),
                                               abs(line - (c.end_line - 1)))))
        title = document_title(name, chunks)
        wanted = chunk.content_hash(title)
        vector = None
        if index is not None:
            vector = index.store.vectors_by_hash([wanted]).get(wanted)
        if vector is None:
            vector = embedder.embed([chunk.embedding_text(title)])[0]
        own = (index, rel) if index is not None and rel else None
        result = related(self._scoped(roots), vector, own, limit)
        result["elapsedMs"] = _ms_since(started)
        result["anchor"] = {"start": {"line": chunk.start_line, "character": 0},
                            "end": {"line": chunk.end_line, "character": 0}}
        return result

    def _scoped(self, roots: Sequence[Path] | None) -> list[WorkspaceIndex]:
        if roots is None:
            return list(self.indexes.values())
        wanted = {root.resolve() for root in roots}
        return [index for root, index in self.indexes.items() if root in wanted]

    def busy(self) -> bool:
        """An index run or queued edits: work a daemon must not walk out on."""
        with self._pending_lock:
            pending = any(self._pending.values())
        return bool(self._active_runs or pending or self._loading)

    def index_state(self, indexes: Sequence[WorkspaceIndex] | None = None) -> str:
        """`indexes` (default: every open one) as a search over them sees it: "empty" when
        none holds a file, whatever other workspaces this engine serves (a daemon's engine is
        shared by every client with the same settings)."""
        if self.state() in ("indexing", "loading", "loadingModel"):
            return "indexing"
        scoped = self.indexes.values() if indexes is None else indexes
        if not any(index.files for index in scoped):
            return "empty"
        return "ready"

    def state(self) -> State:
        if self._loading:
            return "loadingModel"
        if not all(i.manifest_loaded for i in self.indexes.values()):
            return "loading"
        if self._active_runs:
            return "indexing"
        if self.store_errors:
            return "error"
        return "idle"

    def status(self, read_manifests: bool = False,
               roots: Sequence[Path] | None = None) -> dict[str, Any]:
        """The docs/status shape, for the workspaces in `roots` (default: every open one).
        The server answers it on the event loop, so by default it counts only manifests
        already read (the first sync reads them); the CLI, with nothing else to do, passes
        `read_manifests` to count everything."""
        scoped = self._scoped(roots)
        if read_manifests:
            for index in scoped:
                index.read_manifest()
        with self._pending_lock:
            pending = sum(len(v) for v in self._pending.values())
        loaded = [i for i in scoped if i.manifest_loaded]
        counts = {i.root: i.counts() for i in loaded}
        result: dict[str, Any] = {
            "state": self.state(),
            "files": sum(len(i.files) for i in loaded),
            "chunks": sum(i.chunk_count() for i in loaded),
            "keywordChunks": sum(c.chunks for c in counts.values()),
            "embeddedChunks": sum(c.embedded for c in counts.values()),
            "pendingFiles": pending,
            "model": {
                "id": self.embedder.model_id if self.embedder else (
                    self.settings.model if not self._model_loaded else KEYWORD_ONLY_ID),
                "dimension": self.embedder.dimension if self.embedder else 0,
                "device": self.embedder.device if self.embedder else self.settings.device,
                **({"runtime": runtime} if (runtime := getattr(self.embedder, "runtime", None))
                   else {}),
            },
            "store": {
                "kind": "server" if self.settings.storeUrl else "embedded",
                "location": self.settings.storeUrl or str(self.settings.data_dir()),
            },
            "workspaces": [
                {"uri": i.root.as_uri(), "files": len(i.files) if i in loaded else 0,
                 "chunks": i.chunk_count() if i in loaded else 0,
                 "store": i.store.location,
                 **({"keywordChunks": counts[i.root].chunks,
                     "embeddedChunks": counts[i.root].embedded} if i in loaded else {})}
                for i in scoped
            ],
            "searchModes": list(SEARCH_MODES if self.embedder else KEYWORD_ONLY_MODES),
        }
        languages = chunk_languages(loaded)
        result["languages"] = languages
        if self.embedder is not None:
            covered = self.embedder.languages
            result["model"]["languages"] = sorted(covered) if covered is not None else "all"
            if uncovered := uncovered_languages(languages, covered):
                result["uncoveredLanguages"] = uncovered
                result["languageNotice"] = language_notice(
                    uncovered, languages, self.embedder.model_id)
        if (result["state"] == "idle" and self.embedder is not None
                and result["embeddedChunks"] < result["keywordChunks"]):
            # Keyword-searchable, but meaning is partial: "idle" would tell clients "ready".
            result["state"] = "embedding"
        if self.last_error:
            result["lastError"] = self.last_error
        return result

    def file_states(self, folder: Path) -> list[FileStatus]:
        """Every file under `folder` (a workspace folder or a folder inside one) and what the
        index holds of it, sorted by path: "indexed" (in the store), "pending" (to be indexed),
        "skipped" with the reason (an ignore rule, not a document type, too large, binary,
        unreadable; a folder left out stands for its files). Blocking: it walks the folder and
        reads the files not in the store (as the indexer would) and those stored, for their
        warnings; call it off the event loop. Raises InvalidParamsError outside every
        workspace folder.

        "keywordOnly": stored, but some chunks still wait for their dense vector (the
        store's pending chunks, see `_stored_state`)."""
        index = self.index_for(folder)
        if index is None:
            raise InvalidParamsError(f"{folder} is not inside an open workspace folder")
        manifest = index.read_manifest()
        waiting = index.store.counts().pending
        # Files whose chunks still wait for their dense vector (the backfill): keywordOnly.
        keyword_only = {c.path for c in index.store.pending(None, waiting)} if waiting else set()
        max_bytes = self.settings.maxFileBytes
        start = canonical_path(folder) or folder
        scope = index.uri_to_rel(start) or ""
        found: list[FileStatus] = []
        seen: set[str] = set()
        for item in index.filter.survey(start):
            path = index.root / item.rel
            seen.add(item.rel)
            stored = manifest.get(item.rel)
            if item.reason is not None:
                found.append(FileStatus(item.rel + ("/" if item.is_dir else ""), path,
                                        "skipped", item.reason))
            elif item.entry is not None and item.entry.size > max_bytes and stored is None:
                found.append(FileStatus(item.rel, path, "skipped", (
                    f"file is {item.entry.size:,} bytes, over the maxFileBytes limit of "
                    f"{max_bytes:,}: not indexed")))
            else:
                readable, reason = self._probe(path, item.entry, max_bytes)
                if stored is not None:
                    found.append(self._stored_state(item.rel, path, stored, reason,
                                                        item.rel in keyword_only))
                elif readable:
                    found.append(FileStatus(item.rel, path, "pending", reason))
                else:
                    found.append(FileStatus(item.rel, path, "skipped", reason))
        for rel, stored in list(manifest.items()):  # unsaved buffers of files not on disk
            if rel not in seen and (not scope or rel.startswith(scope + "/")):
                found.append(self._stored_state(rel, index.root / rel, stored, (
                    "unsaved editor buffer" if stored.source == "buffer" else None),
                    rel in keyword_only))
        found.sort(key=lambda status: status.rel)
        return found

    def files_page(self, folders: Sequence[Path], states: Sequence[str] = (), offset: int = 0,
                   limit: int = 100) -> dict[str, Any]:
        """The docs/files result: `file_states` of each folder, only `states` (all when
        empty), the page at `offset`."""
        found = [status for folder in folders for status in self.file_states(folder)
                 if not states or status.state in states]
        result: dict[str, Any] = {
            "files": [status.to_wire() for status in found[offset:offset + limit]],
            "total": len(found)}
        if offset + limit < len(found):
            result["nextOffset"] = offset + limit
        return result

    def _stored_state(self, rel: str, path: Path, stored: StoredFile,
                      reason: str | None, keyword_only: bool = False) -> FileStatus:
        """The state of a file the store holds: "keywordOnly" while some of its chunks wait
        for their dense vector (the backfill), else "indexed"."""
        return FileStatus(rel, path, "keywordOnly" if keyword_only else "indexed", reason,
                          chunks=stored.chunk_total())

    def _probe(self, path: Path, entry: FileEntry | None,
               max_bytes: int) -> tuple[bool, str | None]:
        """files.probe, remembered per (path, size, mtime) so that paging through a large
        folder reads each file once (bounded: an LRU of PROBE_CACHE_SIZE)."""
        key = (str(path), entry.size if entry else -1, entry.mtime_ns if entry else -1)
        with self._probe_lock:
            if key in self._probes:
                self._probes.move_to_end(key)
                return self._probes[key]
        result = probe(path, max_bytes)
        with self._probe_lock:
            self._probes[key] = result
            while len(self._probes) > PROBE_CACHE_SIZE:
                self._probes.popitem(last=False)
        return result

    def close(self) -> None:
        """Flush and close every store: a run in progress stops at its next file (what it
        finished is kept, so the next run resumes there), queued work is dropped."""
        for token in list(self._runs):
            token.cancel()

        def close_all() -> None:
            for index in self.indexes.values():
                try:
                    index.store.close()
                except Exception as err:  # closing must go on for the other stores
                    log.error("closing %s: %s", index.root, err)
            self.indexes.clear()

        self._closing.set()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._worker.submit(close_all).result()
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self.embedder is not None and self._owns_embedder:
            self.embedder.close()


class RecentRate:
    """Chunks a second over the last `window_s` seconds of a backfill's progress reports, for
    its estimate of the time left: the current rate, not the average since the start (which
    lags when the machine gets busier or quieter, and which a group embedded at once makes
    look far faster than a held-back backfill runs: its first group gave "43/s" at a cap of
    1 chunk/s). None until three reports: a held-back backfill's first group may be an opened
    file's (embedded at once, not held), which makes the first interval look twice as fast;
    no rate is better than a wrong one."""

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()
        self._reports = 0

    def update(self, done: int, seconds: float) -> float | None:
        """Record `done` chunks at `seconds` into the backfill; the rate now."""
        self._samples.append((seconds, done))
        self._reports += 1
        # The oldest report kept is the last one at least window_s old: the span stays full.
        while len(self._samples) > 2 and self._samples[1][0] <= seconds - self.window_s:
            self._samples.popleft()
        if self._reports < 3:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None


def backfill_message(done: int, total: int, rate: float | None) -> str:
    """What the backfill has left, for a progress line: "chunks embedded · 57/s · ~7 min
    left" (the caller puts "412/26,100" before it), at `rate` chunks a second (RecentRate)."""
    text = "chunks embedded"
    if rate is not None and rate > 0:
        text += f" · {rate:,.0f}/s" if rate >= 1 else f" · {rate:.1f}/s"
        left = (total - done) / rate
        if done < total:
            text += f" · ~{_duration(left)} left"
    return text


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
