"""Sentence embeddings behind one protocol, `Embedder`, so that the indexer, the search and
the benchmarks never depend on how a model runs (a new runtime is one new class here).

`OnnxEmbedder` is the real one: ONNX Runtime + Hugging Face `tokenizers`. Texts are tokenised
with truncation at the model's limit, sorted by length and run in batches padded only to the
longest member (padding is wasted work: see benchmarks/embed.py), pooled by the model's pooling
strategy (`POOLINGS`, as fastembed picks one per model) and L2-normalised. Identical texts in
one call are embedded once; repeated queries come from an LRU cache. On a CPU the model runs on
OpenVINO where it is installed and passes its probe (`openvino_runtime`: the shipped graph,
~1.8x the ONNX Runtime path below on rust-book chunks, vectors within 0.9999 cosine), its runs
padded to a multiple of 16 tokens; otherwise on ONNX Runtime, as the graph rebuilt for speed
(`models.optimise`: fused, then int8-quantised; cached, and only used when its vectors stay
within 0.995 cosine of the shipped graph's on probe texts). Either way `threads` single-threaded
streams run batches side by side, fed from one queue (small BERTs scale badly with intra-op
threads: benchmarks/embed.py). Inference runs on the model's own
thread (`ModelWorker`, through `submit`) so that neither the asyncio loop nor pygls's own pool
(which reads stdin) blocks; urgent work (an edited or opened file) goes before background work
(the backfill) and interrupts it between batches.

`HashingEmbedder` is a deterministic test double (hashed unit vectors, no model) for
benchmarks and fast tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from . import openvino_runtime
from .config import Runtime
from .errors import CancelledError, DeviceUnavailableError, ModelUnavailableError
from .models import OPTIMISE_PROBES, ModelFiles, Pooling, covered_languages, optimise
from .token_count import model_token_count

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]
#: A pooling strategy: token states [n, tokens, dim] and the attention mask [n, tokens] to
#: one vector per text [n, dim] (not yet normalised).
PoolingFn = Callable[[Matrix, npt.NDArray[np.int64]], Matrix]


@runtime_checkable
class Embedder(Protocol):
    """What the engine needs from an embedding model. Vectors are float32 and unit length."""

    @property
    def model_id(self) -> str:
        """Stable name of the vectors: a store is per model id and never mixes two."""

    @property
    def fingerprint(self) -> str:
        """Identity of the exact vectors (the id plus what changes them, e.g. the graph)."""

    @property
    def dimension(self) -> int: ...

    @property
    def languages(self) -> frozenset[str] | None:
        """The languages (ISO 639-1) its vectors cover; None: every language."""

    @property
    def device(self) -> str:
        """Where inference runs ("cpu", "cuda"; a test double says so here)."""

    @property
    def max_tokens(self) -> int:
        """The longest passage the model reads whole, in tokens without special tokens:
        the chunker's ceiling."""

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` as the model counts them, without truncation (the chunker's
        budget: a truncating count would hide an oversized chunk)."""

    @property
    def tokenizer_file(self) -> str | None:
        """A tokenizer.json that, loaded untruncated, counts as `count_tokens` does: other
        processes (the keyword pass's chunking workers) count with it. None: only this
        object can count."""

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed passages (blocking): an [n, dimension] matrix."""

    def embed_query(self, text: str) -> Vector:
        """Embed one search query (blocking): a [dimension] vector."""

    def submit(self, texts: Sequence[str], urgent: bool = False) -> Future[Matrix]:
        """Embed passages on the model's own worker, so the caller can prepare the next
        group meanwhile. `urgent` work (what the user is looking at: an edit, an opened
        file) runs before background work (the backfill), which yields to it between
        batches."""

    def close(self) -> None:
        """Stop: work in progress ends at its next batch with CancelledError."""


def onnxruntime() -> Any:
    """ONNX Runtime with its telemetry off. Since 1.32 its Linux build carries Microsoft's 1DS
    client, which records events (a device id, the Python path, error messages) under
    ~/.cache/Microsoft/DeveloperTools and uploads them: nothing about the user may leave the
    machine, so both switches are thrown before any session exists."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as ort

    ort.disable_telemetry_events()
    return ort


def mean_pooling(hidden: Matrix, mask: npt.NDArray[np.int64]) -> Matrix:
    """The mean of the token states the attention mask keeps (sentence-transformers' default)."""
    weights = mask[:, :, None].astype(np.float32)
    pooled: Matrix = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled


def cls_pooling(hidden: Matrix, mask: npt.NDArray[np.int64]) -> Matrix:
    """The first token's state (BGE-style models)."""
    pooled: Matrix = hidden[:, 0, :]
    return pooled


#: Pooling strategies by the name a model's sentence-transformers config gives (models.py).
POOLINGS: dict[Pooling, PoolingFn] = {"mean": mean_pooling, "cls": cls_pooling}


def normalise(vectors: Matrix) -> Matrix:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: Matrix = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalised


JobT = TypeVar("JobT")


class ModelWorker(Generic[JobT]):
    """The one thread that runs a model (ONNX Runtime already uses every core inside a run),
    fed by two queues: urgent jobs go before background ones, and a background job in progress
    runs the urgent jobs that arrive meanwhile at its next batch (`yield_to_urgent`), so an
    opened file waits for one text of the backfill's group, not for the group (or the one
    queued behind it). Hand-rolled because `concurrent.futures` has neither priorities nor a
    way for a running job to let another one in."""

    def __init__(self, run: Callable[[JobT], Matrix], name: str) -> None:
        self._run = run
        self._ready = threading.Condition()
        self._urgent: deque[tuple[JobT, Future[Matrix]]] = deque()
        self._background: deque[tuple[JobT, Future[Matrix]]] = deque()
        self._closed = False
        self._in_background = False  # read and written on the worker thread only
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: JobT, urgent: bool = False) -> Future[Matrix]:
        future: Future[Matrix] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the model was closed: it takes no more work")
            (self._urgent if urgent else self._background).append((job, future))
            self._ready.notify()
        return future

    def yield_to_urgent(self) -> None:
        """Between two batches of a job: if it is background work on this worker, run the
        urgent jobs waiting first (a no-op on any other thread, and inside urgent work)."""
        if not self._in_background or threading.current_thread() is not self._thread:
            return
        while True:
            with self._ready:
                if not self._urgent or self._closed:
                    return
                job = self._urgent.popleft()
            self._in_background = False
            try:
                self._execute(job)
            finally:
                self._in_background = True

    def close(self) -> None:
        """Take no more work; what is queued is cancelled (the job running ends at its next
        batch, when the model's own close flag is seen)."""
        with self._ready:
            self._closed = True
            queued = [*self._urgent, *self._background]
            self._urgent.clear()
            self._background.clear()
            self._ready.notify_all()
        for _job, future in queued:
            future.cancel()

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not (self._urgent or self._background or self._closed):
                    self._ready.wait()
                if self._closed:
                    return
                urgent = bool(self._urgent)
                job = (self._urgent if urgent else self._background).popleft()
            self._in_background = not urgent
            try:
                self._execute(job)
            finally:
                self._in_background = False

    def _execute(self, queued: tuple[JobT, Future[Matrix]]) -> None:
        job, future = queued
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(self._run(job))
        except BaseException as err:  # delivered to whoever waits on the future
            future.set_exception(err)


@dataclasses.dataclass(frozen=True)
class _Encoded:
    """Texts as the model reads them: the token ids of each distinct text, and which of
    them each text given is."""

    ids: list[list[int]]
    where: list[int]


class OnnxEmbedder:
    """The `Embedder` for an ONNX model on disk (thread-safe)."""

    def __init__(self, files: ModelFiles, device: str = "cpu", threads: int = 0,
                 batch_size: int = 0, cache_size: int = 2048, *,
                 optimised: bool = True, runtime: Runtime = "auto") -> None:
        """`threads`: on a CPU, how many single-threaded sessions run side by side (0: one
        per core); `batch_size`: texts per run (0: 1 on a CPU, where padding costs more than
        batching saves, 32 on a GPU); `runtime` on a CPU: "openvino" runs the shipped graph
        on OpenVINO where it is installed and passes its probe (`openvino_runtime`), "auto"
        the same (ONNX Runtime otherwise), "onnxruntime" never; `optimised`: on ONNX Runtime,
        run the rebuilt graph (`models.optimise`) where it exists or can be built, else the
        file as shipped."""
        from tokenizers import Tokenizer

        self.files = files
        self.shipped_files = files
        self.optimise_note: str | None = "not asked for"
        self.runtime = "onnxruntime"
        self.runtime_note: str | None = "not asked for"
        self._pad_to = 1  # a run's texts are padded to a multiple of this many tokens
        # 0: one text per run on CPU (no padding is fastest there), 32 on a GPU.
        self.batch_size = batch_size or (32 if device == "cuda" else 1)
        try:
            self._tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
            # The chunker's counter is its own instance: this one truncates.
            self._counter = Tokenizer.from_file(str(files.tokenizer_path))
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON
            raise ModelUnavailableError(
                f"Cannot load tokenizer {files.tokenizer_path}: {err}"
            ) from err
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=files.max_length)
        self._counter.no_truncation()
        self._counter.no_padding()
        self._count = model_token_count(self._counter)
        cores = os.cpu_count() or 1
        self._providers: list[str] = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in onnxruntime().get_available_providers():
                raise DeviceUnavailableError(
                    "device 'cuda' asked for, but this ONNX Runtime has no CUDA execution "
                    "provider: `pip uninstall onnxruntime && pip install onnxruntime-gpu`, or "
                    "set device to 'cpu'."
                )
            self._providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self._closed = threading.Event()  # a group being embedded stops at its next batch
        streams = max(1, threads or cores)
        self._shipped: Any = None  # ONNX Runtime on the graph as shipped, opened when needed
        self._sessions: list[Any] = []
        self.device = device
        if runtime != "onnxruntime" and device == "cpu":
            # A cached verdict compiles at once: ONNX Runtime is not opened at all (it is
            # only the probe's reference), ~150 ms off a cold start's first search.
            on_openvino, named, self.runtime_note = openvino_runtime.load(
                files, streams, self._probe_ids(), self._openvino_cosine)
            if on_openvino is not None:
                self.files, self.runtime = named, "openvino"
                self._pad_to = openvino_runtime.PAD_TO
                self._configure(on_openvino.input_names, on_openvino.output_rank, files)
                self._sessions = [on_openvino] * streams  # it hands each run its own request
                self._shipped = None  # a probe's reference (first start only): not kept
            elif runtime == "openvino":
                log.warning("model %s runs on ONNX Runtime, not OpenVINO: %s",
                            files.model_id, self.runtime_note)
        if self.runtime == "onnxruntime":
            self._sessions = [self._shipped_session()]
            self.device = ("cuda" if self._sessions[0].get_providers()[0].startswith("CUDA")
                           else "cpu")
            if optimised and self.device == "cpu":
                built, self.optimise_note = optimise(files, self._probe_cosine)
                if built is not files:
                    self.files = built
                    self._sessions = [self._open_session(built, 1)]
                    self._configure_session(self._sessions[0], built)
            if self.device == "cpu":  # one single-threaded session per stream
                self._sessions += [self._open_session(self.files, 1)
                                   for _ in range(streams - 1)]
        self._pool = ThreadPoolExecutor(max_workers=len(self._sessions),
                                        thread_name_prefix="zl-infer")
        self._free: deque[Any] = deque(self._sessions)
        self._free_lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._worker: ModelWorker[_Encoded] = ModelWorker(self._embed_encoded, "zl-embed")
        self.dimension = 0
        try:
            self.dimension = int(self.embed(["dimension probe"]).shape[1])
        except BaseException:
            self._worker.close()
            self._pool.shutdown(wait=False)
            raise

    def _open_session(self, files: ModelFiles, threads: int) -> Any:
        """An ONNX Runtime session on `files` (`threads` intra-op threads; 0: ORT's own
        choice, for a GPU)."""
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(str(files.onnx_path), sess_options=options,
                                        providers=self._providers)
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelUnavailableError(
                f"Cannot load ONNX model {files.onnx_path}: {str(err).splitlines()[0]}. "
                "The file may be corrupt: delete it and download it again."
            ) from err

    def _shipped_session(self) -> Any:
        """ONNX Runtime on the graph as shipped (all of a GPU's threads, one on a CPU), opened
        and configured on first use: what runs the model, or the reference its rebuilt graph
        and OpenVINO are checked against."""
        if self._shipped is None:
            self._shipped = self._open_session(self.shipped_files,
                                               0 if self.device == "cuda" else 1)
            self._configure_session(self._shipped, self.shipped_files)
        return self._shipped

    def _configure_session(self, session: Any, files: ModelFiles) -> None:
        output = session.get_outputs()[0]
        self._configure({i.name for i in session.get_inputs()}, len(output.shape), files,
                        output.name)

    def _configure(self, input_names: set[str], output_rank: int, files: ModelFiles,
                   output_name: str = "") -> None:
        self._input_names = input_names
        self._output_name = output_name
        # A graph that already pools has a 2-D output: nothing left to pool.
        self._pooling: PoolingFn | None = (
            None if output_rank == 2 else POOLINGS[files.pooling])

    def _probe_ids(self) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(list(OPTIMISE_PROBES))]

    def _openvino_cosine(self, outputs: list[Matrix]) -> float:
        """`_lowest_cosine` of the vectors of OpenVINO's outputs for the probes."""
        self._shipped_session()  # configures the model's pooling
        return self._lowest_cosine([
            normalise(hidden if self._pooling is None
                      else self._pooling(hidden, np.ones(hidden.shape[:2], dtype=np.int64)))[0]
            for hidden in outputs])

    def _probe_cosine(self, candidate: ModelFiles) -> float:
        """`_lowest_cosine` of `candidate`'s vectors (a rebuilt graph on ONNX Runtime)."""
        self._shipped_session()  # configures the model's pooling
        trial = self._open_session(candidate, 1)
        return self._lowest_cosine([self._run_on(trial, [ids])[0] for ids in self._probe_ids()])

    def _lowest_cosine(self, theirs: Sequence[Vector]) -> float:
        """The lowest cosine between `theirs` (a vector per text of models.OPTIMISE_PROBES, in
        order) and the shipped graph's on ONNX Runtime: how far a rebuilt graph or another
        runtime moves the model's vectors."""
        shipped = self._shipped_session()
        return min(float(np.dot(self._run_on(shipped, [ids])[0], vector))
                   for ids, vector in zip(self._probe_ids(), theirs, strict=True))

    @property
    def model_id(self) -> str:
        return self.files.model_id

    @property
    def fingerprint(self) -> str:
        return self.files.fingerprint()

    @property
    def languages(self) -> frozenset[str] | None:
        return self.files.languages

    @property
    def max_tokens(self) -> int:
        return self.files.max_length - 2  # [CLS] and [SEP] take two of the model's positions

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    @property
    def tokenizer_file(self) -> str | None:
        return str(self.files.tokenizer_path)

    def embed(self, texts: Sequence[str]) -> Matrix:
        return self._embed_encoded(self._encode(texts))

    def _encode(self, texts: Sequence[str]) -> _Encoded:
        """`texts` as the model reads them, each distinct one (boilerplate, a repeated notice)
        tokenised and embedded once."""
        slot: dict[str, int] = {}
        where = [slot.setdefault(t, len(slot)) for t in texts]
        encodings = self._tokenizer.encode_batch(
            [self.files.passage_prefix + t for t in slot]) if slot else []
        return _Encoded([e.ids for e in encodings], where)

    def _embed_encoded(self, job: _Encoded) -> Matrix:
        if not job.where:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = job.ids
        # Longest first: the streams finish together (the short ones fill in at the end).
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: Matrix | None = None
        in_flight: deque[tuple[list[int], Future[Matrix]]] = deque()
        streams = len(self._sessions)

        def collect() -> None:
            nonlocal out
            idx, future = in_flight.popleft()
            vectors = future.result()
            if out is None:
                out = np.empty((len(ids), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors

        try:
            for start in range(0, len(order), self.batch_size):
                if self._closed.is_set():
                    raise CancelledError("the model was closed")
                self._worker.yield_to_urgent()
                while len(in_flight) >= streams:
                    collect()
                idx = order[start : start + self.batch_size]
                in_flight.append((idx, self._pool.submit(
                    self._run, [ids[i] for i in idx])))
            while in_flight:
                collect()
        finally:
            for _idx, future in in_flight:
                future.cancel()
        assert out is not None
        return out if len(ids) == len(job.where) else out[job.where]

    def embed_query(self, text: str) -> Vector:
        """One query vector, from the LRU cache when the same text was asked before."""
        hit: Vector | None
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        ids = self._tokenizer.encode(self.files.query_prefix + text).ids
        vector: Vector = self._run([ids])[0]
        with self._cache_lock:
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    def submit(self, texts: Sequence[str], urgent: bool = False) -> Future[Matrix]:
        """Tokenised here, on the caller's thread: the worker then keeps the model busy
        from one group to the next, instead of leaving it idle while it tokenises the next
        (~25 ms of each 128-chunk group of a backfill)."""
        try:
            job = self._encode(texts)
        except Exception as err:  # a text the tokenizer refuses: told as the model's would be
            future: Future[Matrix] = Future()
            future.set_exception(err)
            return future
        return self._worker.submit(job, urgent)

    def close(self) -> None:
        self._closed.set()
        self._worker.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, batch_ids: list[list[int]]) -> Matrix:
        """One batch on a free session (one per stream; a query may share a busy one)."""
        with self._free_lock:
            session = self._free.popleft() if self._free else None
        if session is None:
            return self._run_on(self._sessions[0], batch_ids)
        try:
            return self._run_on(session, batch_ids)
        finally:
            with self._free_lock:
                self._free.append(session)

    def _run_on(self, session: Any, batch_ids: list[list[int]]) -> Matrix:
        width = max(len(ids) for ids in batch_ids)
        width = -(-width // self._pad_to) * self._pad_to
        input_ids = np.zeros((len(batch_ids), width), dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.int64)
        for row, ids in enumerate(batch_ids):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = np.asarray(session.run([self._output_name], feeds)[0], dtype=np.float32)
        return normalise(hidden if self._pooling is None else self._pooling(hidden, mask))


class HashingEmbedder:
    """A TEST DOUBLE, not a model: deterministic pseudo-random unit vectors seeded by a hash
    of each text, so that similar texts are NOT near each other. For benchmarks whose timing
    does not depend on what vectors say (store scans, indexing throughput) and for fast tests
    of the plumbing; its id says so (``test-double:hashing-<dimension>``), and so does its
    `device` ("test-double"). Tokens are counted as words unless a real counter is given.
    """

    is_test_double = True

    def __init__(self, dimension: int = 384, *, model_id: str | None = None,
                 fingerprint: str | None = None,
                 count_tokens: Callable[[str], int] | None = None,
                 max_tokens: int = 254) -> None:
        self.dimension = dimension
        self.model_id = model_id or f"test-double:hashing-{dimension}"
        self.fingerprint = fingerprint or self.model_id
        self.device = "test-double"
        self.languages: frozenset[str] | None = covered_languages(self.model_id)
        self.max_tokens = max_tokens
        self._count = count_tokens or (lambda text: len(text.split()))
        self._closed = threading.Event()

    @classmethod
    def standing_in_for(cls, real: Embedder) -> HashingEmbedder:
        """A double that borrows a real model's id, fingerprint and token counter, so that a
        store it fills (benchmarks/scale.py) is opened by that model as its own; only the
        passage vectors are fake. Never use this where the vectors are searched for meaning."""
        log.warning("embedding with a hashing test double standing in for %s", real.model_id)
        return cls(real.dimension, model_id=real.model_id, fingerprint=real.fingerprint,
                   count_tokens=real.count_tokens, max_tokens=real.max_tokens)

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    @property
    def tokenizer_file(self) -> str | None:
        return None  # its counter may be any function: chunk in this process

    def embed(self, texts: Sequence[str]) -> Matrix:
        if self._closed.is_set():
            raise CancelledError("the model was closed")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())
            out[row] = np.random.default_rng(seed).standard_normal(self.dimension)
        return normalise(out)

    def embed_query(self, text: str) -> Vector:
        vector: Vector = self.embed([text])[0]
        return vector

    def submit(self, texts: Sequence[str], urgent: bool = False) -> Future[Matrix]:
        """Embeds at once (hashing is cheap): the returned future is already done."""
        future: Future[Matrix] = Future()
        try:
            future.set_result(self.embed(texts))
        except Exception as err:  # delivered through the future, as a worker would
            future.set_exception(err)
        return future

    def close(self) -> None:
        self._closed.set()
