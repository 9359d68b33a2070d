"""Reading and chunking files in worker processes, for the keyword pass of a big workspace.

The keyword pass is bound by chunking (Markdown parsing and token counting, in Python): four
fifths of its time on the tldr pages. One process uses one core; these workers use the others,
while the indexer's own thread writes what they return to the store in the walk's order.

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

import dataclasses
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from .chunking import Chunk, chunk_document
from .files import Document, SkipFile, read_document

log = logging.getLogger(__name__)

#: How often a worker checks that the process that started it is still there.
PARENT_CHECK_S = 1.0

_count_tokens: Callable[[str], int] | None = None  # the worker's counter, set at start


@dataclasses.dataclass(frozen=True)
class ChunkSettings:
    """What chunking a file needs besides the file (picklable: sent to every worker once)."""

    tokenizer_file: str | None  # None: count tokens as words (no model)
    max_tokens: int
    overlap_tokens: int
    max_bytes: int


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """A file read and chunked, or why it is not indexed (`skipped`)."""

    document: Document | None
    chunks: list[Chunk]
    skipped: str | None = None


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
        out.append(ReadResult(document, chunks))
    return out


class ChunkPool:
    """Worker processes that read and chunk files (`submit`), started when first used."""

    def __init__(self, settings: ChunkSettings, workers: int = 0) -> None:
        self.settings = settings
        self.workers = workers or max(1, os.cpu_count() or 1)
        self._executor: ProcessPoolExecutor | None = None
        self.failed = False  # the workers could not start, or died: the indexer reads itself

    def submit(self, files: list[tuple[Path, str]],
               results: list[Future[ReadResult | None]]) -> None:
        """Read and chunk (path, language) pairs in one worker task (one message each way
        for the lot), each result delivered to its future in `results`; a worker that died
        fails them with BrokenProcessPool."""
        batch: Future[list[ReadResult | None]]
        try:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker, initargs=(self.settings, os.getpid()))
            batch = self._executor.submit(read_and_chunk, [(str(p), lang) for p, lang in files],
                                          self.settings)
        except Exception as err:  # BrokenProcessPool, or the pool could not start
            batch = Future()
            batch.set_exception(err)

        def deliver(done: Future[list[ReadResult | None]]) -> None:
            try:
                read = done.result()
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


def _start_worker(settings: ChunkSettings, parent: int) -> None:
    global _count_tokens
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stdout is the protocol's
    if settings.tokenizer_file is None:
        _count_tokens = approx_tokens
    else:
        from tokenizers import Tokenizer

        counter = Tokenizer.from_file(settings.tokenizer_file)
        counter.no_truncation()
        counter.no_padding()

        def count_with_model(text: str) -> int:
            return len(counter.encode(text, add_special_tokens=False).ids)

        _count_tokens = count_with_model
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker once the process that started it is gone (re-parented)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)
