"""The model on OpenVINO (openvino_runtime), the default CPU runtime where it is installed (a
dependency on x86-64 Linux and Windows): its vectors are the model's (cosine >= 0.99 per chunk
to ONNX Runtime's on the same shipped graph, real model), its verdict is cached by the model's
content, a changed model is probed again under a new fingerprint (a store never mixes runtimes
or builds), and a probe that crashes leaves the model on ONNX Runtime, the daemon unharmed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from zero_latency import openvino_runtime
from zero_latency.embedder import OnnxEmbedder
from zero_latency.models import resolve_bundled, resolve_folder

from .test_embed_optimised import bundled_copy, change_graph, sample_texts

pytestmark = pytest.mark.skipif(openvino_runtime.installed() is None,
                                reason="OpenVINO is a dependency on x86-64 Linux and Windows only")


@pytest.fixture(scope="module")
def openvino_here() -> None:
    """OpenVINO gives this model's vectors on this CPU, or the tests that need it skip. Where
    its probe fails (it crashed compiling on a Zen 4 CPU once, or drifted), the model runs on
    ONNX Runtime: that is the product working (test_a_probe_that_crashes_...), not a failure
    of these tests. Any other reason for it not to run fails them."""
    model = OnnxEmbedder(resolve_bundled(), threads=1, runtime="openvino")
    try:
        note = model.runtime_note or ""
        if model.runtime != "openvino":
            if note.startswith(("OpenVINO failed compiling", "its OpenVINO vectors drift")):
                pytest.skip(f"OpenVINO does not run the model on this CPU: {note}")
            raise AssertionError(f"OpenVINO does not run the model: {note}")
    finally:
        model.close()


def verdicts(cache: Path) -> list[Path]:
    return sorted(cache.rglob("verdict.json"))


def test_openvino_vectors_are_the_models_and_its_verdict_is_cached(
        openvino_here: None, own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = resolve_bundled()
    plain = OnnxEmbedder(shipped, threads=1, optimised=False, runtime="onnxruntime")
    fast = OnnxEmbedder(shipped, threads=2)  # "auto"
    try:
        assert fast.runtime == "openvino", fast.runtime_note
        assert "openvino:" in fast.fingerprint and fast.fingerprint != plain.fingerprint
        assert fast.files.onnx_path == shipped.onnx_path  # it runs the shipped graph
        assert len(verdicts(own_cache)) == 1
        texts = sample_texts(150)
        cosines = np.sum(fast.embed(texts) * plain.embed(texts), axis=1)
        assert cosines.min() >= 0.99, (cosines.min(), texts[int(cosines.argmin())])
        query = "how does the borrow checker prevent dangling references"
        assert float(np.dot(fast.embed_query(query), plain.embed_query(query))) >= 0.99
        # A query while both streams run a batch: its own infer request, the same vector.
        running = fast.submit(texts)
        assert np.allclose(fast.embed_query(query + " again"),
                           plain.embed_query(query + " again"), atol=0.02)
        assert running.result(timeout=300).shape == (len(texts), 384)
    finally:
        plain.close()
        fast.close()

    def no_probe(*_args: object) -> dict[str, object]:
        raise AssertionError("the verdict is cached: no second probe")

    monkeypatch.setattr(openvino_runtime, "_probe", no_probe)
    again = OnnxEmbedder(shipped, threads=1)
    try:
        assert again.runtime == "openvino" and again.fingerprint == fast.fingerprint
    finally:
        again.close()
    asked_not = OnnxEmbedder(shipped, threads=1, runtime="onnxruntime")
    try:
        assert asked_not.runtime == "onnxruntime" and "openvino" not in asked_not.fingerprint
    finally:
        asked_not.close()


def test_a_changed_model_is_probed_again_under_a_new_fingerprint(
        openvino_here: None, own_cache: Path, tmp_path: Path) -> None:
    folder = bundled_copy(tmp_path)
    first = OnnxEmbedder(resolve_folder(folder), threads=1)
    first_print = first.fingerprint
    vector = first.embed(["a sentence about lifetimes"])[0]
    first.close()
    assert first.runtime == "openvino" and len(verdicts(own_cache)) == 1
    change_graph(folder)
    second = OnnxEmbedder(resolve_folder(folder), threads=1)
    try:
        assert second.runtime == "openvino" and len(verdicts(own_cache)) == 2
        assert second.fingerprint != first_print, "its store is not the old graph's"
        again = second.embed(["a sentence about lifetimes"])[0]
        assert float(np.dot(vector, again)) >= 0.99
    finally:
        second.close()


def test_a_probe_that_crashes_leaves_the_model_on_onnx_runtime(
        own_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAULT INJECTION: OpenVINO crashing at compile (SIGFPE, seen on a Zen 4 CPU) cannot be
    caused on this machine, so the probe's child process kills itself with that signal before
    it compiles (a `sitecustomize` on its PYTHONPATH). Everything else is real: the child, its
    death, the verdict, the ONNX Runtime path that runs instead."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent("""
        import os, signal, sys
        if "zero_latency.openvino_runtime" in " ".join(sys.orig_argv):
            os.kill(os.getpid(), signal.SIGFPE)
    """))
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    shipped = resolve_bundled()
    model = OnnxEmbedder(shipped, threads=2)
    try:
        assert model.runtime == "onnxruntime"
        assert model.runtime_note and "signal 8" in model.runtime_note, model.runtime_note
        assert "openvino" not in model.fingerprint
        assert model.embed(["still embeds"]).shape == (1, 384)
    finally:
        model.close()
    # The verdict holds: the next start does not try again (and crash again).
    monkeypatch.delenv("PYTHONPATH")
    later = OnnxEmbedder(shipped, threads=1)
    try:
        assert later.runtime == "onnxruntime" and later.runtime_note == model.runtime_note
    finally:
        later.close()


def test_status_says_what_runs_the_model(openvino_here: None, own_cache: Path,
                                         tmp_path: Path) -> None:
    """`runtime` is a setting (each engine its own: two clients that differ in it get two
    engines) and docs/status says which runtime runs the model, in the wire schema."""
    import json

    import jsonschema

    from zero_latency.config import Settings
    from zero_latency.engine import Engine

    schema = json.loads((Path(__file__).parents[1] / "protocol" / "schema.json").read_text())
    model_schema = schema["$defs"]["StatusResult"]["properties"]["model"]
    for asked, runs in (("auto", "openvino"), ("onnxruntime", "onnxruntime")):
        engine = Engine(Settings(model="bundled", runtime=asked,  # type: ignore[arg-type]
                                 storePath=str(tmp_path / asked)))
        try:
            engine.load_model()
            model = engine.status()["model"]
            assert model["runtime"] == runs, model
            jsonschema.validate(model, model_schema)
        finally:
            engine.close()


def test_each_runtime_has_its_own_store_never_mixed_and_a_switch_embeds_nothing_again(
        openvino_here: None, own_cache: Path, tmp_path: Path, workspace: Path) -> None:
    """Vectors of ONNX Runtime's rebuilt graph and OpenVINO's are close, not equal: a store one
    built is never filled with the other's. `runtime` shapes the index
    (`Settings.index_variant`), so two clients that differ in it each have a store of their
    own: both open at once (one daemon, two engines: the second was refused the first's
    locked store), neither lends the other its vectors, and switching back embeds nothing
    again (each switch used to make the index again). Another build under the same settings
    (an update) is still made again, with a warning; a store of another model is still
    refused (tests/test_engine.py)."""
    import json

    from zero_latency.config import Settings
    from zero_latency.engine import Engine

    store = str(tmp_path / "store")
    ort = Engine(Settings(model="bundled", runtime="onnxruntime", storePath=store))
    warnings: list[str] = []
    auto = Engine(Settings(model="bundled", storePath=store), warn=warnings.append)  # openvino
    ort.siblings = auto.siblings = lambda: [ort, auto]  # as the daemon's hub sets it
    try:
        ort.open_workspace(workspace)
        first = ort.index([workspace])
        assert first.embeddedChunks == first.chunks > 0
        ort_meta = ort.store_path(workspace) / "zl-store.json"
        auto.open_workspace(workspace)  # while the other holds its own
        assert auto.store_path(workspace) != ort.store_path(workspace)
        other = auto.index([workspace])
        assert other.embeddedChunks == other.chunks == first.chunks, "nothing borrowed"
        assert "openvino:" in (auto.store_path(workspace) / "zl-store.json").read_text()
        assert "openvino" not in ort_meta.read_text()
        assert not warnings, warnings
    finally:
        ort.close()
        auto.close()
    again = Engine(Settings(model="bundled", runtime="onnxruntime", storePath=store))
    try:
        again.open_workspace(workspace)
        assert again.index([workspace]).embeddedChunks == 0  # its store was kept
        top = again.search("ownership rules borrowing", mode="semantic")["hits"]
        assert top and top[0]["uri"].startswith(workspace.as_uri())
    finally:
        again.close()
    # An update: the same settings, another build of the same model in the store.
    meta = json.loads(ort_meta.read_text())
    meta["model"] += "-older"
    ort_meta.write_text(json.dumps(meta))
    warnings.clear()
    updated = Engine(Settings(model="bundled", runtime="onnxruntime", storePath=store),
                     warn=warnings.append)
    try:
        updated.open_workspace(workspace)
        assert any("made again" in w for w in warnings), warnings
        assert updated.status()["embeddedChunks"] == 0, "no vector of the old build is kept"
        assert updated.index([workspace]).embeddedChunks == first.chunks
    finally:
        updated.close()
