"""Local sentence embeddings: ONNX Runtime + Hugging Face `tokenizers`.

Texts are tokenised with truncation at the model's limit, sorted by length and run in batches
padded only to the longest member (padding is wasted work: see benchmarks/embed.py), pooled
with the attention mask (mean, or CLS where the model says so) and L2-normalised. Repeated
texts (queries, mostly) come from an LRU cache. Inference runs in a dedicated thread-pool
executor so that neither the asyncio loop nor pygls's own pool (which reads stdin) blocks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import CancelledError, DeviceUnavailableError, ModelUnavailableError
from .models import ModelFiles

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]


def onnxruntime() -> Any:
    """ONNX Runtime with its telemetry off. Since 1.32 its Linux build carries Microsoft's 1DS
    client, which records events (a device id, the Python path, error messages) under
    ~/.cache/Microsoft/DeveloperTools and uploads them: nothing about the user may leave the
    machine, so both switches are thrown before any session exists."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as ort

    ort.disable_telemetry_events()
    return ort


def available_devices() -> list[str]:
    ort = onnxruntime()
    providers = ort.get_available_providers()
    return ["cpu"] + (["cuda"] if "CUDAExecutionProvider" in providers else [])


class Embedder:
    """Thread-safe embedder for one model. `embed` blocks; `embed_async` uses its executor."""

    def __init__(self, files: ModelFiles, device: str = "cpu", threads: int = 0,
                 batch_size: int = 0, cache_size: int = 2048) -> None:
        from tokenizers import Tokenizer

        ort = onnxruntime()
        self.files = files
        # 0: one text per run on CPU (no padding is fastest there), 32 on a GPU.
        self.batch_size = batch_size or (32 if device == "cuda" else 1)
        try:
            self._tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON
            raise ModelUnavailableError(
                f"Cannot load tokenizer {files.tokenizer_path}: {err}"
            ) from err
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=files.max_length)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers: list[str] = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DeviceUnavailableError(
                    "device 'cuda' asked for, but this ONNX Runtime has no CUDA execution "
                    "provider: `pip uninstall onnxruntime && pip install onnxruntime-gpu`, or "
                    "set device to 'cpu'."
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(
                str(files.onnx_path), sess_options=options, providers=providers
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelUnavailableError(
                f"Cannot load ONNX model {files.onnx_path}: {str(err).splitlines()[0]}. "
                "The file may be corrupt: delete it and download it again."
            ) from err
        self.device = "cuda" if self._session.get_providers()[0].startswith("CUDA") else "cpu"
        self._closed = threading.Event()  # a group being embedded stops at its next batch
        self._input_names = {i.name for i in self._session.get_inputs()}
        output = self._session.get_outputs()[0]
        self._output_name = output.name
        self._pre_pooled = len(output.shape) == 2  # the graph already pools
        self.dimension = int(self.embed(["dimension probe"]).shape[1])
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        # One worker per executor: ORT already uses every core inside a run. Queries get their
        # own, so a search is not queued behind a batch of indexing work.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zl-embed")
        self._query_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zl-query")

    @property
    def model_id(self) -> str:
        return self.files.model_id

    def token_counter(self) -> TokenCounter:
        """A counter for the chunker: the model's tokens, without truncation."""
        return TokenCounter(self.files.tokenizer_path)

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed passages: an [n, dim] float32 matrix of unit vectors."""
        if not texts:
            return np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)
        prefixed = [self.files.passage_prefix + t for t in texts]
        encodings = self._tokenizer.encode_batch(prefixed)
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out: Matrix | None = None
        for start in range(0, len(order), self.batch_size):
            if self._closed.is_set():
                raise CancelledError("the model was closed")
            idx = order[start : start + self.batch_size]
            vectors = self._run([encodings[i].ids for i in idx])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
        assert out is not None
        return out

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
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

    async def embed_async(self, texts: Sequence[str]) -> Matrix:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.embed, texts)

    async def embed_query_async(self, text: str) -> npt.NDArray[np.float32]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._query_executor, self.embed_query, text)

    @property
    def executor(self) -> ThreadPoolExecutor:
        return self._executor

    def close(self) -> None:
        self._closed.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._query_executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, batch_ids: list[list[int]]) -> Matrix:
        width = max(len(ids) for ids in batch_ids)
        input_ids = np.zeros((len(batch_ids), width), dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.int64)
        for row, ids in enumerate(batch_ids):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = np.asarray(self._session.run([self._output_name], feeds)[0], dtype=np.float32)
        if self._pre_pooled:
            pooled = hidden
        elif self.files.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised: Matrix = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised


class TokenCounter:
    """Counts tokens the way the model will, for the chunker's budget (its own tokenizer
    instance: the embedder's truncates, which would hide an oversized chunk)."""

    def __init__(self, tokenizer_path: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
