"""OpenVINO as the CPU runtime of a model's shipped ONNX graph, where it is installed, runs on
this CPU and gives the model's own vectors.

Why: on the bundled int8 MiniLM, OpenVINO's CPU plugin runs the shipped graph at 2.5-3x a plain
ONNX Runtime loop, and ~1.3-2x the engine's own ORT path (the rebuilt graph in single-threaded
sessions): it has int8 kernels for the graph's dynamic quantisation and, on CPUs that have them,
bf16/AMX for the rest (benchmarks/embed.py). Every rust-book chunk's vector stays within 0.9999
cosine of ONNX Runtime's on the same file.

Why a probe in a child process first: OpenVINO has crashed (SIGFPE) while compiling on one
CPU (Zen 4), which in-process would take the daemon with it. So the first time a model meets
an OpenVINO version on a CPU, a child compiles it and embeds `models.OPTIMISE_PROBES`; the
verdict (it ran, and its vectors are within `OPTIMISE_MIN_COSINE` of ONNX Runtime's) is cached
under the user's cache folder by the graph's content, OpenVINO's version and the CPU's name, so
later starts compile at once (~0.2 s). A child that crashed or gave other vectors leaves the
model on ONNX Runtime for good on that key; one that timed out is tried again next start.

The vectors' fingerprint names the runtime (`ModelFiles.variant`): a store holds one runtime's
vectors, never a mix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .models import OPTIMISE_MIN_COSINE, ModelFiles, model_cache_dir, sha256_file

log = logging.getLogger(__name__)

#: Bump when how the model is compiled changes: every cached verdict is made again.
OPENVINO_RECIPE = "ov-throughput-1"
#: A run's tokens are padded to a multiple of this: OpenVINO compiles its kernels per input
#: shape, and 16 shapes instead of 256 ran 1.3-1.6x faster on rust-book chunks (129 vs 81-106
#: chunks/s, first and fourth pass over 400 chunks; 32: the same as 16).
PAD_TO = 16
#: How long the child may take to compile and embed the probes (a loaded machine is slow).
PROBE_TIMEOUT_S = 300.0

#: Token states of each probe text (one [1, tokens, dim] or [1, dim] array per text).
Outputs = list[npt.NDArray[np.float32]]


def installed() -> str | None:
    """OpenVINO's version, or None where it is not installed (without importing it)."""
    if importlib.util.find_spec("openvino") is None:
        return None
    try:
        return importlib.metadata.version("openvino")
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    """The CPU's model name: a verdict holds for one kind of CPU only."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"
                                                    ).splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def verdict_path(files: ModelFiles, version: str) -> Path:
    """Where the verdict on `files` under OpenVINO `version` on this CPU is kept. As for the
    optimised graph (`models.optimised_path`), one found in the home folder's default cache
    (another environment of this user, e.g. before XDG_CACHE_HOME was set) is the same."""
    key = hashlib.sha256(f"{sha256_file(files.onnx_path)}|{OPENVINO_RECIPE}|{version}|"
                         f"{cpu_name()}".encode()).hexdigest()[:24]
    name = Path(f"openvino-{key}") / "verdict.json"
    for folder in (model_cache_dir(), Path.home() / ".cache" / "zero-latency" / "models"):
        if (folder / name).is_file():
            return folder / name
    return model_cache_dir() / name


class OpenVinoModel:
    """A compiled model that runs like an ONNX Runtime session (`run(names, feeds)`, first
    output only), safe from any thread: each call takes a free infer request (one is made
    when none is free), so a query never shares a request with a batch in progress."""

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        self.input_names = {name for port in compiled.inputs for name in port.get_names()}
        #: 3: token states to pool; 2: a graph that pools itself.
        self.output_rank = compiled.outputs[0].get_partial_shape().rank.get_length()
        self._free: list[Any] = []
        self._lock = threading.Lock()

    def run(self, _output_names: Sequence[str] | None,
            feeds: dict[str, npt.NDArray[np.int64]]) -> list[npt.NDArray[np.float32]]:
        with self._lock:
            request = self._free.pop() if self._free else None
        if request is None:
            request = self._compiled.create_infer_request()
        try:
            # A copy: the request's output tensor is overwritten by its next run.
            return [np.array(request.infer(feeds)[0], dtype=np.float32)]
        finally:
            with self._lock:
                self._free.append(request)


def compile_model(onnx_path: Path, streams: int) -> OpenVinoModel:
    """The model compiled for this CPU: `streams` single-threaded streams (as the ORT path's
    sessions: small BERTs scale badly with threads inside one run), threads not pinned (the
    chunking workers and the editor share the cores)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(onnx_path), "CPU", {
        "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(streams),
        "INFERENCE_NUM_THREADS": str(streams), "ENABLE_CPU_PINNING": False})
    return OpenVinoModel(compiled)


def load(files: ModelFiles, streams: int, probe_ids: list[list[int]],
         check: Callable[[Outputs], float],
         ) -> tuple[OpenVinoModel | None, ModelFiles, str | None]:
    """The model on OpenVINO where it passes its probe (`probe_ids`: the token ids of the probe
    texts; `check(outputs)`: the lowest cosine between the vectors of OpenVINO's outputs for
    them and ONNX Runtime's). Returns (the model, the files named for it, None) or (None,
    `files`, why not)."""
    version = installed()
    if version is None:
        return None, files, "OpenVINO is not installed"
    try:
        verdict_file = verdict_path(files, version)
    except OSError as err:
        return None, files, f"cannot read the model file ({err})"
    verdict = _read_verdict(verdict_file)
    if verdict is None:
        verdict = _probe(files, probe_ids, check)
        if verdict.get("final"):
            with contextlib.suppress(OSError):
                verdict_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = verdict_file.with_name(f"verdict.{os.getpid()}.tmp")  # one per writer
                tmp.write_text(json.dumps(verdict), encoding="utf-8")
                os.replace(tmp, verdict_file)
    if not verdict.get("ok"):
        reason = str(verdict.get("reason", "its probe failed"))
        log.info("model %s runs on ONNX Runtime: %s", files.model_id, reason)
        return None, files, reason
    try:
        model = compile_model(files.onnx_path, streams)
    except Exception as err:  # OpenVINO raises its own untyped errors
        reason = f"OpenVINO could not compile it: {(str(err).splitlines() or [repr(err)])[0]}"
        # Its probe passed: the vectors' build differs from the last start's (the store is
        # made again), so say so where the user looks.
        log.warning("model %s runs on ONNX Runtime this time: %s", files.model_id, reason)
        return None, files, reason
    named = dataclasses.replace(
        files, variant=f"openvino:{verdict_file.parent.name.removeprefix('openvino-')}")
    return model, named, None


def _read_verdict(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _probe(files: ModelFiles, probe_ids: list[list[int]],
           check: Callable[[Outputs], float]) -> dict[str, Any]:
    """Compile and run the probes in a child process; compare with ONNX Runtime's vectors."""
    with tempfile.TemporaryDirectory(prefix="zl-openvino-") as tmp:
        ids_file, out_file = Path(tmp) / "ids.json", Path(tmp) / "out.npz"
        ids_file.write_text(json.dumps(probe_ids), encoding="utf-8")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "zero_latency.openvino_runtime", str(files.onnx_path),
                 str(ids_file), str(out_file)],
                capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False,
                stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return {"ok": False, "final": False,
                    "reason": f"its OpenVINO probe took over {PROBE_TIMEOUT_S:.0f} s"}
        except OSError as err:
            return {"ok": False, "final": False, "reason": f"cannot start the probe: {err}"}
        if done.returncode != 0:
            how = (f"signal {-done.returncode}" if done.returncode < 0
                   else f"exit {done.returncode}")
            last = (done.stderr.strip().splitlines() or [""])[-1][:300]
            log.warning("OpenVINO failed on model %s (%s): %s", files.model_id, how, last)
            return {"ok": False, "final": True,
                    "reason": f"OpenVINO failed compiling or running it here ({how}: {last})"}
        with np.load(out_file) as saved:
            outputs: Outputs = [saved[f"arr_{i}"] for i in range(len(probe_ids))]
    lowest = check(outputs)
    if lowest < OPTIMISE_MIN_COSINE:
        return {"ok": False, "final": True, "minCosine": lowest,
                "reason": f"its OpenVINO vectors drift from the model's (min cosine {lowest:.4f})"}
    return {"ok": True, "final": True, "minCosine": lowest}


def _probe_main(argv: list[str]) -> int:
    """The child: compile the model, run each probe, save the first output of each."""
    onnx_path, ids_file, out_file = argv
    model = compile_model(Path(onnx_path), 1)
    outputs = []
    for ids in json.loads(Path(ids_file).read_text(encoding="utf-8")):
        input_ids = np.array([ids], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids),
                 "token_type_ids": np.zeros_like(input_ids)}
        outputs.append(model.run(None, {k: v for k, v in feeds.items()
                                        if k in model.input_names})[0])
    np.savez(out_file, *outputs)
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
