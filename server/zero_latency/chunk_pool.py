"""Reading and chunking files in worker processes, for the keyword pass of a big workspace.

The keyword pass is bound by chunking (Markdown parsing and token counting, in Python): four
fifths of its time on the tldr pages. One process uses one core; these workers use the others,
while the indexer's own thread writes what they return to the store in the walk's order.

A worker does all of a file's keyword work that needs no store: it reads the file, chunks it
and analyses each chunk for BM25 (language identification and the sparse vector, sparse.py),
so the indexer's thread is left with the store's writes.

Workers are started with "spawn", never "fork": the server has ONNX Runtime's and its own
threads running, which a forked child would inherit half-held. Each loads its token counter
once (the model's tokenizer.json, counted untruncated as `Embedder.count_tokens` counts, or
the word estimate used without a model), points its stdout at stderr (in server mode stdout
carries protocol messages only), and exits when the process that started it is gone (a kill -9
of the server leaves no worker behind).

Hand-rolled on `concurrent.futures.ProcessPoolExecutor`: what is ours is only the worker's
set-up and the one function it runs, `read_and_chunk`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from .chunking import Chunk, chunk_document, document_title
from .files import Document, SkipFile, read_document
from .sparse import SparseEncoder
from .stores.base import SparseVec
from .token_count import model_token_count

log = logging.getLogger(__name__)

#: How often a worker checks that the process that started it is still there.
PARENT_CHECK_S = 1.0

_count_tokens: Callable[[str], int] | None = None  # the worker's counter, set at start
_sparse: SparseEncoder | None = None  # its BM25 analysis (ChunkSettings.bm25)


@dataclasses.dataclass(frozen=True)
class ChunkSettings:
    """What chunking a file needs besides the file (picklable: sent to every worker once)."""

    tokenizer_file: str | None  # None: count tokens as words (no model)
    max_tokens: int
    overlap_tokens: int
    max_bytes: int
    #: The indexer's BM25 parameters (`SparseEncoder.params`): each chunk is analysed in the
    #: worker as the indexer would; None: not analysed there.
    bm25: tuple[float, float, float] | None = None


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """A file read and chunked, or why it is not indexed (`skipped`)."""

    document: Document | None
    chunks: list[Chunk]
    skipped: str | None = None
    #: The document's title (`chunking.document_title`) and each chunk's BM25 analysis of
    #: `chunk.embedding_text(title)` (`SparseEncoder.analyse`); None: not analysed.
    title: str | None = None
    analysed: list[tuple[SparseVec, str]] | None = None


def approx_tokens(text: str) -> int:
    """Without a model, budget chunks by words (about 1.3 tokens each)."""
    return int(len(text.split()) * 1.3) + 1


def read_and_chunk(files: list[tuple[str, str]],
                   settings: ChunkSettings) -> list[ReadResult | None]:
    """Read each (path, language) (`files.read_document`) and chunk it, as the indexer does in
    process. None for a file that failed otherwise: the indexer does that one again itself, so
    that its error is reported exactly as it would be."""
    assert _count_tokens is not None, "runs in a worker started by ChunkPool"
    out: list[ReadResult | None] = []
    for path, language in files:
        try:
            document = read_document(Path(path), settings.max_bytes)
        except SkipFile as skip:
            out.append(ReadResult(None, [], str(skip)))
            continue
        try:
            chunks = chunk_document(document.text, language, _count_tokens,
                                    settings.max_tokens, settings.overlap_tokens)
        except Exception:  # reported by the indexer, which chunks it again
            out.append(None)
            continue
        title: str | None = None
        analysed: list[tuple[SparseVec, str]] | None = None
        if _sparse is not None:
            try:
                # The title by the file's name, as by its workspace path: only the stem counts.
                title = document_title(Path(path).name, chunks)
                analysed = [_sparse.analyse(c.embedding_text(title)) for c in chunks]
            except Exception:  # the indexer analyses it itself, as it would in process
                title, analysed = None, None
        # The text itself stays here: the indexer needs only its chunks (and the pipe is
        # the indexer's process's time).
        out.append(ReadResult(dataclasses.replace(document, text=""), chunks, None, title,
                              analysed))
    return out


def read_and_spool(files: list[tuple[str, str]], settings: ChunkSettings, spool: str) -> str:
    """`read_and_chunk`, its results written to a file in `spool` whose name is returned: the
    message back stays a few bytes. A worker killed while writing a big message to the
    executor's pipe leaves half of it there, and the executor's reader then waits for the
    rest for ever (the indexer with it); killed while writing this file, it leaves a file that
    nobody asks for, and the executor reports the worker's death."""
    results = read_and_chunk(files, settings)
    fd, name = tempfile.mkstemp(dir=spool, suffix=".pickle")
    with os.fdopen(fd, "wb") as out:
        pickle.dump(results, out, protocol=pickle.HIGHEST_PROTOCOL)
    return name


class ChunkPool:
    """Worker processes that read and chunk files (`submit`), started when first used."""

    def __init__(self, settings: ChunkSettings, workers: int = 0) -> None:
        self.settings = settings
        self.workers = workers or max(1, os.cpu_count() or 1)
        self._executor: ProcessPoolExecutor | None = None
        self._spool: str | None = None  # where the workers leave their results (private)
        self.failed = False  # the workers could not start, or died: the indexer reads itself

    def start(self) -> None:
        """Start the workers now (they load their tokenizer and BM25 analysis), not at the
        first task: their start then overlaps with the indexer's walk."""
        try:
            executor, _spool = self._executor_started()
            for _ in range(self.workers):
                executor.submit(_ready)
        except Exception as err:  # the first task says so again, and the indexer reads itself
            log.debug("chunking workers did not start: %r", err)

    def _executor_started(self) -> tuple[ProcessPoolExecutor, str]:
        if self._spool is None:
            _remove_orphaned_spools()
            # User-only (it holds the text of files), named by this process for
            # `_remove_orphaned_spools`.
            self._spool = tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-")
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(self.settings, os.getpid(), self._spool))
        return self._executor, self._spool

    def submit(self, files: list[tuple[Path, str]],
               results: list[Future[ReadResult | None]]) -> None:
        """Read and chunk (path, language) pairs in one worker task (one message each way
        for the lot), each result delivered to its future in `results`; a worker that died
        fails them with BrokenProcessPool."""
        batch: Future[str]
        try:
            executor, spool = self._executor_started()
            batch = executor.submit(read_and_spool, [(str(p), lang) for p, lang in files],
                                    self.settings, spool)
        except Exception as err:  # BrokenProcessPool, or the pool could not start
            batch = Future()
            batch.set_exception(err)

        def deliver(done: Future[str]) -> None:
            try:
                spooled = done.result()
                try:
                    with open(spooled, "rb") as file:
                        read: list[ReadResult | None] = pickle.load(file)
                finally:
                    os.unlink(spooled)
            except BaseException as err:  # the whole task failed: each file says so
                if not self.failed:
                    log.warning("chunking in worker processes failed (%r): chunking in "
                                "process instead", err)
                self.failed = True
                for future in results:
                    future.set_exception(err)
                return
            for future, result in zip(results, read, strict=True):
                future.set_result(result)

        batch.add_done_callback(deliver)

    def close(self) -> None:
        """Stop the workers; files not yet started are dropped (nothing was written for
        them, so the next run reads them)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._spool is not None:  # results nobody took (a cancel, a killed worker)
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None


#: The spools' names: the prefix, then the pid of the process whose workers write there.
SPOOL_PREFIX = "zl-chunks-"


def _remove_orphaned_spools() -> None:
    """Spools of processes that are gone (a server killed while its workers were still
    starting: they remove theirs when the server is killed later than that)."""
    with contextlib.suppress(OSError), os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            if not entry.name.startswith(SPOOL_PREFIX):
                continue
            pid = entry.name[len(SPOOL_PREFIX):].split("-", 1)[0]
            with contextlib.suppress(OSError, ValueError):
                if entry.stat(follow_symlinks=False).st_uid != os.getuid() or not pid.isdigit():
                    continue
                try:
                    os.kill(int(pid), 0)
                except ProcessLookupError:  # gone: its spool is nobody's
                    shutil.rmtree(entry.path, ignore_errors=True)


def _start_worker(settings: ChunkSettings, parent: int, spool: str) -> None:
    global _count_tokens, _sparse
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stdout is the protocol's
    if settings.tokenizer_file is None:
        _count_tokens = approx_tokens
    else:
        from tokenizers import Tokenizer

        counter = Tokenizer.from_file(settings.tokenizer_file)
        counter.no_truncation()
        counter.no_padding()
        _count_tokens = model_token_count(counter)
    if settings.bm25 is not None:
        _sparse = SparseEncoder(*settings.bm25)
        _sparse.analyse("Warm up: the language model loads here.")  # before the first file
    threading.Thread(target=_exit_with, args=(parent, spool), daemon=True).start()


def _ready() -> None:
    """A task that makes the executor start a worker (`ChunkPool.start`)."""


def _exit_with(parent: int, spool: str) -> None:
    """End this worker once the process that started it is gone (re-parented), taking the
    results it left unread with it (the spool holds the text of private files)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    shutil.rmtree(spool, ignore_errors=True)
    os._exit(0)
