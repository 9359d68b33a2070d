"""Embedding throughput: the engine's embedder against a plain ONNX Runtime loop (the baseline:
one session on every core, one text per run, the shipped graph) and against fastembed and
OpenVINO, on the same model and the same real chunks, in one run; contenders are interleaved
over `--rounds` rounds (the median rate counts) and the load is printed with the figures.

Contenders: the plain loop on the shipped graph and on the engine's optimised graph
(models.optimise: fused, then int8-quantised); the engine as configured (optimised graph,
`--threads` single-threaded sessions fed from one queue, batch 1); the engine on the shipped
graph; the engine with length-bucketed batches (`--batch-sizes`). Every chunk's vector is
checked against the plain loop's on the shipped graph: min cosine >= 0.99 or the run fails.

The chunks are what the indexer would embed (heading path + text, chunked at `--chunk-tokens`
model tokens) from a real corpus. Every contender gets the same texts, the same thread count,
and the same truncation; vectors are compared so a fast but wrong pipeline cannot win.

fastembed pins an older huggingface_hub than the engine, so it lives in a venv of its own:
`python3 -m venv /tmp/fe && /tmp/fe/bin/pip install fastembed==0.9.1`, then pass
`--fastembed-python /tmp/fe/bin/python`; it loads the same model folder (no download).

OpenVINO (optional, probed in its own process: it has crashed at compile on Zen 4 before):
`python3 -m venv /tmp/ov && /tmp/ov/bin/pip install openvino==2026.4.1 tokenizers numpy`, then
`--openvino-python /tmp/ov/bin/python` (throughput hint, its own infer-request queue).

    python benchmarks/embed.py                      # every chunk of rust-book, 2 rounds
    python benchmarks/embed.py --chunks 512 --rounds 3 --batch-sizes 4 8
    python benchmarks/embed.py --fastembed-python /tmp/fe/bin/python --batch-sizes 1 4 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zero_latency.chunking import chunk_document, document_title, language_for
from zero_latency.config import Runtime
from zero_latency.embedder import Embedder, Matrix, OnnxEmbedder, onnxruntime
from zero_latency.models import ModelFiles, optimise, resolve_model

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora" / "rust-book"


def real_chunks(corpus: Path, embedder: Embedder, limit: int, chunk_tokens: int) -> list[str]:
    """The texts the indexer would embed for the corpus's files, in file order."""
    count = embedder.count_tokens
    texts: list[str] = []
    for path in sorted(corpus.rglob("*")):
        language = language_for(path.name)
        if language is None or not path.is_file():
            continue
        rel = path.relative_to(corpus).as_posix()
        chunks = chunk_document(path.read_text(encoding="utf-8", errors="replace"), language,
                                count, min(chunk_tokens, embedder.max_tokens), 32)
        title = document_title(rel, chunks)
        texts += [c.embedding_text(title) for c in chunks]
        if len(texts) >= limit:
            break
    return texts[:limit]


def plain_loop(files: ModelFiles, texts: list[str], threads: int) -> tuple[float, Matrix]:
    """The ceiling: one text per run (no padding at all), mean pooling, nothing else."""
    from tokenizers import Tokenizer

    ort = onnxruntime()

    tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
    tokenizer.no_padding()  # tokenizer.json may ask for padding; a single text needs none
    tokenizer.enable_truncation(max_length=files.max_length)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(files.onnx_path), options,
                                   providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    out = np.empty((len(texts), 384), dtype=np.float32)
    started = time.perf_counter()
    for row, text in enumerate(texts):
        ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feeds)[0][0]
        vector = hidden.mean(axis=0)
        out[row] = vector / np.linalg.norm(vector)
    return time.perf_counter() - started, out


FASTEMBED_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType
    folder, texts_file, out_file, threads, batch = sys.argv[1:6]
    texts = json.load(open(texts_file))
    TextEmbedding.add_custom_model(
        model="zero-latency/bench", pooling=PoolingType.MEAN, normalization=True,
        sources=ModelSource(hf="zero-latency/bench"), dim=384, model_file="model.onnx")
    model = TextEmbedding("zero-latency/bench", specific_model_path=folder,
                          threads=int(threads), local_files_only=True)
    list(model.embed(texts[:4], batch_size=int(batch)))  # warm-up, as for the others
    started = time.perf_counter()
    vectors = np.array(list(model.embed(texts, batch_size=int(batch))), dtype=np.float32)
    elapsed = time.perf_counter() - started
    np.save(out_file, vectors)
    print(json.dumps({"seconds": elapsed}))
""")


def fastembed_run(python: str, files: ModelFiles, texts: list[str], threads: int,
                  batch: int) -> tuple[float, Matrix]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        os.symlink(files.onnx_path, folder / "model.onnx")
        shutil.copy(files.tokenizer_path, folder / "tokenizer.json")
        (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 512}))
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {"model_max_length": files.max_length, "do_lower_case": True}))
        (folder / "special_tokens_map.json").write_text(json.dumps(
            {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
             "unk_token": "[UNK]", "mask_token": "[MASK]"}))
        texts_file, out_file = Path(tmp) / "texts.json", Path(tmp) / "out.npy"
        texts_file.write_text(json.dumps(texts))
        done = subprocess.run([python, "-c", FASTEMBED_SCRIPT, str(folder), str(texts_file),
                               str(out_file), str(threads), str(batch)],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"fastembed failed:\n{done.stderr[-3000:]}")
        seconds = float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
        return seconds, np.load(out_file)


OPENVINO_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import openvino as ov
    model_path, ids_file, out_file = sys.argv[1:4]
    batches = json.load(open(ids_file))
    compiled = ov.Core().compile_model(model_path, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    requests = ov.AsyncInferQueue(compiled,
                                  compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    out = np.zeros((len(batches), 384), np.float32)
    def done(request, row):
        vector = request.get_output_tensor(0).data[0].mean(axis=0)
        out[row] = vector / np.linalg.norm(vector)
    requests.set_callback(done)
    def run():
        for row, ids in enumerate(batches):
            a = np.array([ids], np.int64)
            requests.start_async({"input_ids": a, "attention_mask": np.ones_like(a),
                                  "token_type_ids": np.zeros_like(a)}, row)
        requests.wait_all()
    run()  # warm-up (compiles the shapes it meets)
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    np.save(out_file, out)
    print(json.dumps({"seconds": elapsed}))
""")


def openvino_run(python: str, files: ModelFiles, texts: list[str]) -> tuple[float, Matrix]:
    """OpenVINO in its own process: a crash there (SIGFPE at compile) is reported, not ours."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=files.max_length)
    with tempfile.TemporaryDirectory() as tmp:
        ids_file, out_file = Path(tmp) / "ids.json", Path(tmp) / "out.npy"
        ids_file.write_text(json.dumps([e.ids for e in tokenizer.encode_batch(texts)]))
        done = subprocess.run([python, "-c", OPENVINO_SCRIPT, str(files.onnx_path),
                               str(ids_file), str(out_file)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"OpenVINO failed (exit {done.returncode}):\n"
                               f"{done.stderr[-2000:]}")
        seconds = float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
        return seconds, np.load(out_file)


def engine_run(files: ModelFiles, texts: list[str], threads: int, batch: int,
               optimised: bool, runtime: Runtime = "onnxruntime") -> tuple[float, Matrix]:
    embedder = OnnxEmbedder(files, threads=threads, batch_size=batch, optimised=optimised,
                            runtime=runtime)
    if embedder.runtime != runtime:
        embedder.close()
        raise RuntimeError(f"not on {runtime}: {embedder.runtime_note}")
    try:
        embedder.embed(texts[:4])
        started = time.perf_counter()
        vectors = embedder.embed(texts)
        return time.perf_counter() - started, vectors
    finally:
        embedder.close()


def load() -> str:
    return os.getloadavg().__repr__()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--chunks", type=int, default=0, help="0: every chunk of the corpus")
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[4],
                        help="length-bucketed batch sizes for the engine (besides 1)")
    parser.add_argument("--fastembed-python", help="a Python with fastembed installed")
    parser.add_argument("--openvino-python", help="a Python with openvino installed")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"corpus {args.corpus} not found: pass --corpus", file=sys.stderr)
        return 2
    files, _ = resolve_model(args.model)
    probe = OnnxEmbedder(files, threads=1, batch_size=1, optimised=False,
                         runtime="onnxruntime")
    texts = real_chunks(args.corpus, probe, args.chunks or 10**9, args.chunk_tokens)
    tokens = sum(min(probe.count_tokens(t) + 2, files.max_length) for t in texts)
    probe.close()
    built, why_not = optimise(files)  # built (and cached) now, outside the timings
    if why_not:
        print(f"no optimised graph: {why_not}", file=sys.stderr)
    print(f"{len(texts)} chunks from {args.corpus.name} ({tokens} tokens, "
          f"{tokens / len(texts):.0f} per chunk), model {files.model_id}, "
          f"{args.threads} threads, {args.rounds} rounds; optimised graph "
          f"{built.onnx_path if not why_not else '-'}", file=sys.stderr)

    contenders: list[tuple[str, Callable[[], tuple[float, Matrix]]]] = [
        ("plain ORT loop, shipped graph", lambda: plain_loop(files, texts, args.threads)),
    ]
    if not why_not:
        contenders.append(("plain ORT loop, optimised graph",
                           lambda: plain_loop(dataclasses.replace(built), texts, args.threads)))
    contenders += [
        (f"engine, shipped graph, {args.threads}x1 thr",
         lambda: engine_run(files, texts, args.threads, 1, False)),
        (f"engine, ORT optimised, {args.threads}x1 thr",
         lambda: engine_run(files, texts, args.threads, 1, True)),
        (f"engine, OpenVINO, {args.threads} streams (default)",
         lambda: engine_run(files, texts, args.threads, 1, True, "openvino")),
    ]
    for batch in args.batch_sizes:
        contenders.append((f"engine, ORT optimised, bucketed batch {batch}",
                           lambda b=batch: engine_run(files, texts, args.threads, b, True)))
    if args.fastembed_python:
        contenders.append(("fastembed, batch 1", lambda: fastembed_run(
            args.fastembed_python, files, texts, args.threads, 1)))
    if args.openvino_python:
        contenders.append(("openvino, shipped graph", lambda: openvino_run(
            args.openvino_python, files, texts)))
        if not why_not:
            contenders.append(("openvino, optimised graph", lambda: openvino_run(
                args.openvino_python, built, texts)))

    rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
    vectors: dict[str, Matrix] = {}
    loads = [load()]
    for _round in range(args.rounds):
        for name, run in contenders:
            try:
                seconds, out = run()
            except RuntimeError as err:
                print(f"{name}: {err}", file=sys.stderr)
                continue
            rates[name].append(len(texts) / seconds)
            vectors[name] = out
            print(f"  round {_round + 1}: {name:<40} {len(texts) / seconds:7.1f} chunks/s",
                  file=sys.stderr)
        loads.append(load())
    reference = vectors[contenders[0][0]]
    baseline = statistics.median(rates[contenders[0][0]])
    print(f"\nload (1/5/15-min averages) before and after each round: {'  '.join(loads)}")
    print(f"{'contender':<42} {'chunks/s':>9} {'tokens/s':>9} {'vs plain':>9} "
          f"{'min cos':>8}  rounds")
    failed = False
    for name, _ in contenders:
        if not rates[name]:
            print(f"{name:<42} {'failed':>9}")
            continue
        rate = statistics.median(rates[name])
        cosine = float(np.min(np.sum(vectors[name] * reference, axis=1)))
        failed |= cosine < 0.99
        print(f"{name:<42} {rate:>9.1f} {rate * tokens / len(texts):>9.0f} "
              f"{rate / baseline:>8.2f}x {cosine:>8.4f}  "
              f"{' '.join(f'{r:.1f}' for r in rates[name])}")
    print(f"every chunk's vector within 0.99 cosine of the shipped graph's: "
          f"{'yes' if not failed else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
