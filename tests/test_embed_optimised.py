"""The model as it runs here (models.optimise): the bundled graph folded, fused by ONNX Runtime's
transformer optimizer, then int8-quantised, cached by the source's content. Its vectors stay the
model's (cosine >= 0.99 to the shipped graph's, per chunk, real model), a changed model is
rebuilt under a new fingerprint (a store never mixes two builds), identical texts are embedded
once, and `threads` single-threaded sessions give the same vectors as one. (ONNX Runtime's path:
where OpenVINO runs the model instead, tests/test_embed_openvino.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from zero_latency.embedder import OnnxEmbedder
from zero_latency.models import OPTIMISE_RECIPE, resolve_bundled, resolve_folder

RUST_BOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora" / "rust-book"


def sample_texts(limit: int) -> list[str]:
    """Paragraphs of the Rust book when it is here, else of the test data."""
    files = sorted(RUST_BOOK.rglob("*.md")) if RUST_BOOK.is_dir() else []
    files = files or sorted((Path(__file__).parent / "data").rglob("*.md"))
    texts: list[str] = []
    for path in files:
        texts += [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n")
                  if len(p.strip()) > 40]
        if len(texts) >= limit:
            break
    return texts[:limit]


def test_optimised_vectors_are_the_models(own_cache: Path) -> None:
    shipped = resolve_bundled()
    plain = OnnxEmbedder(shipped, threads=1, optimised=False, runtime="onnxruntime")
    fast = OnnxEmbedder(shipped, threads=2, runtime="onnxruntime")
    try:
        assert fast.optimise_note is None, fast.optimise_note
        assert fast.files.onnx_path.is_relative_to(own_cache)
        assert fast.fingerprint != plain.fingerprint and OPTIMISE_RECIPE in fast.fingerprint
        texts = sample_texts(150)
        cosines = np.sum(fast.embed(texts) * plain.embed(texts), axis=1)
        assert cosines.min() >= 0.99, (cosines.min(), texts[int(cosines.argmin())])
        query = "how does the borrow checker prevent dangling references"
        assert float(np.dot(fast.embed_query(query), plain.embed_query(query))) >= 0.99
        # Two streams or one: the same graph gives the same vectors, one text per run.
        one = OnnxEmbedder(shipped, threads=1, runtime="onnxruntime")
        batched = OnnxEmbedder(shipped, threads=2, batch_size=4, runtime="onnxruntime")
        try:
            assert one.files.onnx_path == fast.files.onnx_path  # cached: not built again
            assert np.allclose(one.embed(texts[:40]), fast.embed(texts[:40]), atol=1e-5)
            # Batched (length-bucketed) runs quantise activations over the padded batch:
            # close to, not equal to, one text per run; still the model's vectors.
            cosines = np.sum(batched.embed(texts) * plain.embed(texts), axis=1)
            assert cosines.min() >= 0.99, cosines.min()
        finally:
            one.close()
            batched.close()
    finally:
        plain.close()
        fast.close()


def test_identical_texts_are_embedded_once(own_cache: Path) -> None:
    embedder = OnnxEmbedder(resolve_bundled(), threads=2, runtime="onnxruntime")
    runs: list[int] = []
    real_run = embedder._run

    def counting(batch: list[list[int]]) -> object:
        runs.append(len(batch))
        return real_run(batch)

    embedder._run = counting  # type: ignore[method-assign]
    try:
        vectors = embedder.embed(["alpha beta", "gamma", "alpha beta", "gamma", "delta"])
        assert sum(runs) == 3
        assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[1], vectors[3])
        assert not np.allclose(vectors[0], vectors[4])
    finally:
        embedder.close()


def bundled_copy(tmp_path: Path) -> Path:
    """A model folder holding the bundled model's graph and tokenizer (to be changed)."""
    bundled = resolve_bundled()
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(bundled.onnx_path, folder / "model.onnx")
    shutil.copy(bundled.tokenizer_path, folder / "tokenizer.json")
    return folder


def change_graph(folder: Path) -> None:
    """The same name, another graph (here: the same weights with a metadata entry)."""
    import onnx

    graph = onnx.load(str(folder / "model.onnx"))
    graph.metadata_props.add(key="revision", value="2")
    onnx.save(graph, str(folder / "model.onnx"))


def test_a_changed_model_is_rebuilt_under_a_new_fingerprint(own_cache: Path,
                                                            tmp_path: Path) -> None:
    folder = bundled_copy(tmp_path)
    first = OnnxEmbedder(resolve_folder(folder), threads=1, runtime="onnxruntime")
    first_path, first_print = first.files.onnx_path, first.fingerprint
    vector = first.embed(["a sentence about lifetimes"])[0]
    first.close()
    assert first.optimise_note is None and first_path.is_file()
    change_graph(folder)
    second = OnnxEmbedder(resolve_folder(folder), threads=1, runtime="onnxruntime")
    try:
        assert second.files.onnx_path != first_path, "a changed model is built anew"
        assert second.fingerprint != first_print, "its store is not the old build's"
        assert second.files.model_id == first.files.model_id
        again = second.embed(["a sentence about lifetimes"])[0]
        assert float(np.dot(vector, again)) >= 0.99
    finally:
        second.close()
