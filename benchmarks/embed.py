"""Embedding throughput: the engine's embedder against a plain ONNX Runtime loop (the ceiling)
and against fastembed, on the same model and the same real chunks, in one run.

The chunks are what the indexer would embed (heading path + text, chunked at `--chunk-tokens`
model tokens) from a real corpus. Every contender gets the same texts, the same thread count,
and the same truncation; vectors are compared so a fast but wrong pipeline cannot win.

fastembed pins an older huggingface_hub than the engine, so it lives in a venv of its own:
`python3 -m venv /tmp/fe && /tmp/fe/bin/pip install fastembed==0.9.1`, then pass
`--fastembed-python /tmp/fe/bin/python`; it loads the same model folder (no download).

    python benchmarks/embed.py --chunks 512
    python benchmarks/embed.py --fastembed-python /tmp/fe/bin/python --batch-sizes 1 4 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from zero_latency.chunking import chunk_document, document_title, language_for
from zero_latency.embedder import Embedder, Matrix, OnnxEmbedder, onnxruntime
from zero_latency.models import ModelFiles, resolve_model

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 32])
    parser.add_argument("--fastembed-python", help="a Python with fastembed installed")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"corpus {args.corpus} not found: pass --corpus", file=sys.stderr)
        return 2
    files, _ = resolve_model(args.model)
    probe = OnnxEmbedder(files, threads=args.threads, batch_size=1)
    texts = real_chunks(args.corpus, probe, args.chunks, args.chunk_tokens)
    tokens = sum(min(probe.count_tokens(t) + 2, files.max_length) for t in texts)
    probe.embed(texts[:4])  # warm-up
    print(f"{len(texts)} chunks from {args.corpus.name} ({tokens} tokens, "
          f"{tokens / len(texts):.0f} per chunk), model {files.model_id}, "
          f"{args.threads} threads", file=sys.stderr)

    rows: list[tuple[str, float, Matrix]] = []
    seconds, reference = plain_loop(files, texts, args.threads)
    rows.append(("plain ORT loop, batch 1", seconds, reference))
    for batch in args.batch_sizes:
        embedder = OnnxEmbedder(files, threads=args.threads, batch_size=batch)
        embedder.embed(texts[:4])
        started = time.perf_counter()
        vectors = embedder.embed(texts)
        rows.append((f"engine embedder, batch {batch}", time.perf_counter() - started, vectors))
        embedder.close()
    if args.fastembed_python:
        for batch in args.batch_sizes:
            seconds, vectors = fastembed_run(args.fastembed_python, files, texts, args.threads,
                                             batch)
            rows.append((f"fastembed, batch {batch}", seconds, vectors))

    ceiling = len(texts) / rows[0][1]
    print(f"\n{'contender':<28} {'chunks/s':>9} {'tokens/s':>9} {'vs plain':>9} "
          f"{'min cos':>8}")
    for name, secs, vectors in rows:
        rate = len(texts) / secs
        cosine = float(np.min(np.sum(vectors * reference, axis=1)))
        print(f"{name:<28} {rate:>9.1f} {tokens / secs:>9.0f} {rate / ceiling:>8.0%} "
              f"{cosine:>8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
