"""The engine with the real bundled model and a real Qdrant Edge shard in a temp dir."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from zero_latency.chunking import chunk_document
from zero_latency.config import Settings, SettingsError
from zero_latency.embedder import OnnxEmbedder
from zero_latency.engine import Engine, RecentRate, backfill_message
from zero_latency.errors import (
    DeviceUnavailableError,
    InvalidParamsError,
    ModelUnavailableError,
    StoreIncompatibleError,
    StoreLockedError,
)
from zero_latency.indexer import IndexReport
from zero_latency.markup import readable_lines
from zero_latency.models import resolve_bundled, resolve_folder, resolve_model
from zero_latency.stores import EdgeStore
from zero_latency.stores.edge import VARIANTS_MARK


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder(resolve_bundled(), threads=2)


def test_vectors_are_384d_unit_length_and_paraphrases_score_higher(
        embedder: OnnxEmbedder) -> None:
    vectors = embedder.embed([
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
    ])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.6 > sims[0, 2]
    # Known value for all-MiniLM-L6-v2 (sentence-transformers gives 0.7553 in fp32).
    assert abs(sims[0, 1] - 0.755) < 0.03
    # batching and sorting by length do not change a vector
    alone = embedder.embed(["The girl is carrying a baby."])[0]
    assert np.allclose(alone, vectors[2], atol=1e-4)
    assert np.allclose(embedder.embed_query("A man is eating food."), vectors[0], atol=1e-4)


def test_chunk_line_ranges_match_the_file(embedder: OnnxEmbedder) -> None:
    text = Path(__file__).parent.joinpath("data", "sample.md").read_text()
    lines = text.split("\n")
    chunks = chunk_document(text, "markdown", embedder.count_tokens, 64, 8)
    assert len(chunks) > 3
    # A chunk's text is the readable text of exactly its lines (markup.py: markers, link
    # syntax and HTML out), line for line.
    readable = readable_lines(text, "markdown")
    assert len(readable) == len(lines)
    for chunk in chunks:
        assert chunk.text.strip() == "\n".join(readable[chunk.start_line:chunk.end_line]).strip()
        assert embedder.count_tokens(chunk.text) <= 64 or "\n" not in chunk.text
    fence = next(c for c in chunks if "def deploy(tag: str) -> None:" in c.text)
    assert 'pipeline.run("release", tag=tag)' in fence.text, "a code fence that fits stays whole"
    assert "```" not in fence.text and fence.start_line <= 10 and fence.end_line >= 14
    deep = next(c for c in chunks if "Rotation" in c.heading_path)
    assert deep.heading_path == ("Operations guide", "Keys", "Rotation")


def test_rst_sections_and_python_docstrings(embedder: OnnxEmbedder) -> None:
    rst = "Title\n=====\n\nIntro para.\n\nSection A\n---------\n\nBody of A.\n"
    chunks = chunk_document(rst, "restructuredtext", embedder.count_tokens, 256, 16)
    assert chunks[-1].heading_path == ("Title", "Section A")
    assert chunks[-1].text.endswith("Body of A.")
    py = 'def f():\n    """Rotate the keys."""\n    return 1\n'
    (doc,) = chunk_document(py, "python", embedder.count_tokens, 256, 16)
    assert doc.heading_path == ("f",) and (doc.start_line, doc.end_line) == (1, 2)


def test_index_search_incremental_and_delete(engine: Engine, workspace: Path) -> None:
    engine.open_workspace(workspace)
    first = engine.index([workspace])
    assert first.indexedFiles == 5 and first.embeddedChunks == first.chunks > 20
    hits = engine.search("spawning a new thread and waiting with join handles")["hits"]
    assert hits[0]["uri"].endswith("ch16-01-threads.md")

    again = engine.index([workspace])
    assert again.embeddedChunks == 0 and again.unchangedFiles == 5

    path = workspace / "book" / "ch08-01-vectors.md"
    text = path.read_text()
    path.write_text(text + "\n## Appendix\n\nA brand-new paragraph about narwhal tusks.\n")
    edited = engine.index([workspace])
    assert edited.indexedFiles == 1
    assert 1 <= edited.embeddedChunks <= 2, "only the changed chunks embed"
    found = engine.search("narwhal tusks", mode="keyword")["hits"]
    assert found and found[0]["uri"] == path.as_uri()

    os.utime(path, None)  # touched, not changed: nothing embeds
    assert engine.index([workspace]).embeddedChunks == 0

    shutil.move(path, workspace / "moved.md")  # moved: vectors reused by content hash
    moved = engine.index([workspace])
    assert moved.removedFiles == 1 and moved.embeddedChunks == 0
    (workspace / "moved.md").unlink()
    gone = engine.index([workspace])
    assert gone.removedFiles == 1
    assert not [h for h in engine.search("narwhal tusks", mode="keyword")["hits"]
                if "narwhal" in h["snippet"]]


def test_status_counts_the_chunks_the_store_holds_through_edits_moves_and_deletes(
        engine: Engine, workspace: Path) -> None:
    """docs/status's chunk count is kept as files are written and removed (not summed over
    every file at each request): it stays what the store holds, file markers not counted."""
    engine.open_workspace(workspace)

    def counted() -> int:
        status = engine.status()
        index = engine.indexes[workspace]
        summed = sum(state.chunk_total() for state in index.files.values())
        assert status["chunks"] == status["keywordChunks"] == summed, (status, summed)
        assert status["workspaces"][0]["chunks"] == summed
        return summed

    engine.index([workspace])
    first = counted()
    path = workspace / "book" / "ch08-01-vectors.md"
    path.write_text(path.read_text() + "\n## Appendix\n\nA new paragraph about narwhals.\n")
    (workspace / "empty.md").write_text("")  # recorded by a marker, which is no chunk
    engine.index([workspace])
    grown = counted()
    assert grown > first
    shutil.move(path, workspace / "moved.md")
    engine.index([workspace])
    assert counted() == grown
    (workspace / "moved.md").unlink()
    engine.index([workspace])
    assert 0 < counted() < first


def test_a_folder_with_no_documents_is_empty_beside_an_indexed_one(
        engine: Engine, workspace: Path, tmp_path: Path) -> None:
    """A daemon's engine serves every client with the same settings: a window on a folder with
    no documents searches only its own folder, and hears "empty" (nothing indexed), not the
    other window's "ready" (issue 23: the editor's empty state says why)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    engine.open_workspace(workspace)
    engine.open_workspace(empty)
    engine.index([workspace, empty])
    own = engine.search("borrowing rules", roots=[empty])
    assert own["hits"] == [] and own["indexState"] == "empty"
    assert engine.search("borrowing rules", roots=[workspace])["indexState"] == "ready"
    assert engine.search("borrowing rules")["indexState"] == "ready"


def test_the_backfill_s_time_left_follows_its_current_rate() -> None:
    """Issue 23: the progress line's rate is the last half minute's, not the average since the
    start. A backfill held at 1 chunk/s embeds a group of 8 at once, then waits: its first
    reports have no rate (the old average said "43/s"), the next ones ~1/s. One that slows from
    13/s to 11/s shows 11/s half a minute later (the old average stalled near 12)."""
    held = RecentRate()
    assert held.update(8, 0.2) is None
    assert held.update(16, 8.2) is None  # one interval: not yet
    assert backfill_message(8, 92, None) == "chunks embedded"
    for n in range(3, 6):
        rate = held.update(8 * n, 8.0 * (n - 1) + 0.2)
        assert rate is not None and 0.9 <= rate <= 1.1, rate
    assert backfill_message(40, 92, rate) == "chunks embedded · 1/s · ~52 s left"
    # An opened file's 4 chunks first (embedded at once), then groups of 8 held at 1/s.
    opened = RecentRate()
    assert opened.update(4, 0.1) is None and opened.update(12, 4.2) is None
    early = opened.update(20, 12.2)
    assert early is not None and early < 1.5, early
    assert backfill_message(3, 92, 0.5) == "chunks embedded · 0.5/s · ~3 min left"

    slowing = RecentRate()
    done = 0
    for second in range(1, 85):
        done += 13
        slowing.update(done, float(second))
    for second in range(85, 200):
        done += 11
        rate = slowing.update(done, float(second))
    assert rate is not None and abs(rate - 11) < 0.01, rate
    assert done / 199 > 11.8  # what the average since the start still said
    # Reports further apart than the window (a very slow backfill): still a rate.
    sparse = RecentRate(window_s=30.0)
    rates = [sparse.update(10 * n, 40.0 * n) for n in range(1, 6)]
    assert rates[:2] == [None, None] and all(r == 0.25 for r in rates[2:]), rates


def test_bad_files_are_reported_and_nothing_else_is_lost(engine: Engine, workspace: Path,
                                                         settings: Settings) -> None:
    (workspace / "binary.md").write_bytes(b"\x89PNG\x00\x00\x01garbage")
    (workspace / "latin1.md").write_bytes("# Caf\xe9\n\nThe caf\xe9 serves okapi stew.\n"
                                          .encode("latin-1"))
    (workspace / "empty.md").write_bytes(b"")
    (workspace / "huge.txt").write_bytes(b"word " * (settings.maxFileBytes // 5 + 1))
    (workspace / "utf16.md").write_bytes("# Wide\n\nA bilby in UTF-16.\r\n".encode("utf-16"))
    engine.open_workspace(workspace)
    report = engine.index([workspace])
    messages = {e["uri"].rsplit("/", 1)[-1]: e["message"] for e in report.errors}
    assert "binary" in messages["binary.md"]
    assert "maxFileBytes" in messages["huge.txt"]
    assert "UTF-8" in messages["latin1.md"]
    assert report.indexedFiles == 5 + 3  # chapters, latin1 (replaced), empty, utf16
    assert engine.search("okapi stew", mode="keyword")["hits"][0]["uri"].endswith("latin1.md")
    assert engine.search("bilby", mode="keyword")["hits"][0]["uri"].endswith("utf16.md")
    assert engine.search("ownership rules")["hits"], "the good files are all there"


def test_missing_or_corrupt_model_gives_the_documented_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="Model folder not found"):
        resolve_model(str(tmp_path / "nope"))
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not an onnx graph")
    shutil.copy(resolve_bundled().tokenizer_path, folder / "tokenizer.json")
    with pytest.raises(ModelUnavailableError, match="Cannot load ONNX model"):
        OnnxEmbedder(resolve_folder(folder))
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE"):
            resolve_model("nobody/no-such-model")
        files, warning = resolve_model("Supabase/gte-small")  # the default falls back
        assert files.source == "bundled" and warning and "gte-small" in warning
    finally:
        del os.environ["HF_HUB_OFFLINE"]


def test_hub_model_from_a_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real huggingface_hub code path, against a cache laid out as the Hub leaves it."""
    bundled = resolve_bundled()
    snapshot = tmp_path / "hub" / "models--acme--mini" / "snapshots" / ("a" * 40)
    (snapshot / "onnx").mkdir(parents=True)
    shutil.copy(bundled.onnx_path, snapshot / "onnx" / "model_quantized.onnx")
    shutil.copy(bundled.tokenizer_path, snapshot / "tokenizer.json")
    (snapshot / "sentence_bert_config.json").write_text('{"max_seq_length": 256}')
    (snapshot / "config_sentence_transformers.json").write_text(
        '{"prompts": {"query": "query: ", "passage": "passage: "}}')
    (tmp_path / "hub" / "models--acme--mini" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--mini" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    files, warning = resolve_model("acme/mini")
    assert warning is None and files.source == "hub" and files.model_id == "acme/mini"
    assert files.max_length == 256 and files.onnx_path.name == "model_quantized.onnx"
    assert (files.query_prefix, files.passage_prefix) == ("query: ", "passage: ")
    embedder = OnnxEmbedder(files)
    assert embedder.embed(["hello"]).shape == (1, 384)
    # The prefixes reach the model: the same weights without prefixes, fed "query: hello",
    # give the query vector; fed "hello", they do not.
    plain = OnnxEmbedder(bundled)
    assert np.allclose(embedder.embed_query("hello"), plain.embed(["query: hello"])[0],
                       atol=1e-5)
    assert not np.allclose(embedder.embed_query("hello"), plain.embed(["hello"])[0], atol=1e-3)
    assert np.allclose(embedder.embed(["hi"])[0], plain.embed(["passage: hi"])[0], atol=1e-5)


def test_store_is_locked_and_never_mixes_models(settings: Settings, workspace: Path) -> None:
    first = Engine(settings)
    first.open_workspace(workspace)
    shared = first.store_path(workspace)
    # The shard itself is single-writer: opening it again is a clear "locked" error...
    with pytest.raises(StoreLockedError, match="locked by another"):
        EdgeStore(shared, first.model_fingerprint(), first.dimension())
    # ...and so is a second engine in another process (editors share the daemon's instead):
    # no private copy of the index is made beside it.
    second = Engine(settings)
    with pytest.raises(StoreLockedError, match="in use, not damaged"):
        second.open_workspace(workspace)
    assert not list(shared.parent.glob("*.window-*"))
    first.close()
    second.close()
    # A store made for another model is refused, not mixed.
    engine = Engine(settings)
    engine.load_model()
    path = engine.store_path(workspace) / "zl-store.json"
    path.write_text(path.read_text().replace("all-MiniLM", "other-model"))
    with pytest.raises(StoreIncompatibleError, match="never mixed"):
        engine.open_workspace(workspace)
    engine.close()
    assert path.exists(), "the refused store is left alone for the user to rebuild"


def test_an_index_of_other_settings_unused_for_a_month_is_deleted_when_another_opens(
        tmp_path: Path) -> None:
    """A settings change leaves the index of the old settings behind (a full copy of the
    workspace's chunks): it is deleted once no client has opened it for
    STALE_VARIANT_DAYS, when another index of the workspace opens, but never while a
    process has it open, never the default settings' one, and not a recent one."""
    from zero_latency.stores import STALE_VARIANT_DAYS, StoreIdentity, edge_path, open_store

    ws = tmp_path / "ws"
    ws.mkdir()
    model = StoreIdentity("test/model", "test/model#1", 4)

    def settings(*exclude: str) -> Settings:
        if not exclude:
            return Settings(storePath=str(tmp_path / "data"))
        return Settings(storePath=str(tmp_path / "data"), exclude=list(exclude))

    month_ago = time.time() - (STALE_VARIANT_DAYS + 1) * 86400

    def age(store_settings: Settings) -> Path:
        path = edge_path(store_settings, ws, model)
        os.utime(path.with_name(path.name + ".lock"), (month_ago, month_ago))
        return path

    open_store(settings(), ws, model).close()  # the default settings' index
    for exclude in ("old/**", "recent/**", "open/**"):
        open_store(settings(exclude), ws, model).close()
    in_use = open_store(settings("open/**"), ws, model)
    try:
        default, old, held = age(settings()), age(settings("old/**")), age(settings("open/**"))
        recent = edge_path(settings("recent/**"), ws, model)
        open_store(settings("new/**"), ws, model).close()
        assert not old.exists() and not old.with_name(old.name + ".lock").exists()
        assert default.exists() and held.exists() and recent.exists()
        assert edge_path(settings("new/**"), ws, model).exists()
    finally:
        in_use.close()
    open_store(settings(), ws, model).close()  # now closed, the held one goes too
    assert not held.exists() and recent.exists() and default.exists()


def test_settings_that_shape_the_index_give_each_client_its_own_store_and_lend_vectors(
        settings: Settings, workspace: Path) -> None:
    """Two clients of one daemon (two engines of one process, siblings as its hub makes them)
    whose settings differ in what the index holds (an editor's workspace settings exclude a
    folder, an agent's do not) each get an index of their own, open at once: the second was
    refused the first's locked store. Each finds exactly its own files; the second copies the
    first's vectors instead of embedding them again. A store made before indexes had variants
    becomes the index of the first settings to open it, with nothing embedded again."""
    first = Engine(settings)  # the default settings: where every store was before variants
    try:
        first.open_workspace(workspace)
        made = first.index([workspace])
        old = first.store_path(workspace)
    finally:
        first.close()
    assert not EdgeStore.adopt(old, old.with_name("elsewhere"), first.model_fingerprint()), \
        "the default settings' own index stays theirs"
    (old / VARIANTS_MARK).unlink()  # as a store made before indexes had variants
    narrow = Engine(dataclasses.replace(settings, exclude=("book/ch04*",)))
    wide = Engine(settings)
    narrow.siblings = wide.siblings = lambda: [narrow, wide]
    try:
        narrow.open_workspace(workspace)
        assert narrow.store_path(workspace) != old and not old.exists(), "taken over"
        kept = narrow.index([workspace])
        assert kept.embeddedChunks == 0 and kept.removedFiles == 2
        wide.open_workspace(workspace)  # while the other is open: a store of its own
        assert wide.store_path(workspace) == old
        # The model runs from the same settings: one copy of it serves both.
        assert wide.embedder is narrow.embedder and not wide.owns_model()
        whole = wide.index([workspace])
        # Only the chunks of the two chapters the other excludes are embedded.
        narrow_chunks = narrow.status()["chunks"]
        assert whole.embeddedChunks == made.chunks - narrow_chunks > 0
        assert wide.status()["chunks"] == made.chunks
        for engine, sees_ch04 in ((narrow, False), (wide, True)):
            paths = {h["path"] for h in engine.search("ownership", limit=30,
                                                      mode="keyword")["hits"]}
            assert paths and any(p.startswith("book/ch04") for p in paths) is sees_ch04, paths
        # A copied vector is the one the model gives the chunk.
        hit = wide.search("borrowing references", mode="semantic")["hits"][0]
        assert hit["score"] > 0.3
    finally:
        narrow.close()
        wide.close()


def test_a_first_index_of_other_settings_starts_as_a_copy_of_a_closed_one(
        settings: Settings, workspace: Path) -> None:
    """No other client has the workspace open (no daemon, or its engine gone): a first index
    for other settings is made from a copy of the one on disk, the default settings' first,
    with nothing embedded again and the original left as it was. (It used to take the default
    settings' store away from them, or, once that was fixed, embed everything again.)"""
    narrow_settings = dataclasses.replace(settings, exclude=("book/ch04*",))

    def indexed(engine_settings: Settings) -> tuple[IndexReport, Path]:
        engine = Engine(engine_settings)
        try:
            engine.open_workspace(workspace)
            return engine.index([workspace]), engine.store_path(workspace)
        finally:
            engine.close()

    made, default_path = indexed(settings)
    narrow, narrow_path = indexed(narrow_settings)
    assert narrow_path != default_path and default_path.exists()
    assert (narrow.embeddedChunks, narrow.removedFiles) == (0, 2), narrow
    again, _ = indexed(settings)
    assert (again.embeddedChunks, again.unchangedFiles) == (0, made.files), again
    # Only an index of other settings on disk: the default settings' starts from it and
    # embeds just what that one leaves out.
    assert EdgeStore.destroy(default_path)
    remade, _ = indexed(settings)
    assert 0 < remade.embeddedChunks == made.chunks - narrow.chunks, (remade, narrow)


def test_a_changed_chunk_size_cuts_every_file_anew(settings: Settings,
                                                  workspace: Path) -> None:
    """`chunkTokens` names the index (`Settings.index_variant`) and each file's chunking: the
    store made with the old size, taken over by the new settings, has every file cut again
    (the size used to be left out of a file's hash, so unchanged files kept their old
    chunks)."""
    first = Engine(settings)
    try:
        first.open_workspace(workspace)
        made = first.index([workspace])
        (first.store_path(workspace) / VARIANTS_MARK).unlink()  # made before variants, as
    finally:  # the stores whose chunks were cut without the size in their hash
        first.close()
    smaller = Engine(dataclasses.replace(settings, chunkTokens=128))
    try:
        smaller.open_workspace(workspace)
        again = smaller.index([workspace])
        assert again.indexedFiles == made.indexedFiles and again.unchangedFiles == 0
        assert smaller.status()["chunks"] > made.chunks
    finally:
        smaller.close()


def test_a_client_whose_settings_differ_only_outside_the_index_is_told_which(
        settings: Settings, workspace: Path) -> None:
    """Settings that do not shape the index (inference threads, say) share its store, which
    one engine writes: the second engine of the process is told which of its settings differ
    from the first's, not that another process holds the store."""
    first = Engine(settings)
    second = Engine(dataclasses.replace(settings, threads=1))
    first.siblings = second.siblings = lambda: [first, second]
    try:
        first.open_workspace(workspace)
        with pytest.raises(StoreLockedError, match="differ from these only in threads") as err:
            second.open_workspace(workspace)
        assert "another Zero-Latency process" not in err.value.message
        assert second.embedder is not first.embedder, "other threads: a model of its own"
    finally:
        first.close()
        second.close()


def test_settings_name_the_bad_key() -> None:
    with pytest.raises(SettingsError, match="maxFileBytes"):
        Settings().merged({"maxFileBytes": "big"})
    with pytest.raises(SettingsError, match="device"):
        Settings().merged({"device": "tpu"})
    _, warnings = Settings().merged({"colour": "blue"})
    assert warnings == ["unknown setting 'colour' ignored"]


def test_cuda_without_its_provider_is_clear_and_the_engine_runs_on_cpu(
        tmp_path: Path, workspace: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA: the fallback cannot happen here")
    with pytest.raises(DeviceUnavailableError, match="onnxruntime-gpu"):
        OnnxEmbedder(resolve_bundled(), device="cuda")
    warnings: list[str] = []
    engine = Engine(Settings(model="bundled", device="cuda", storePath=str(tmp_path / "s")),
                    warn=warnings.append)
    try:
        engine.open_workspace(workspace)
        assert engine.embedder is not None and engine.embedder.device == "cpu"
        assert any("on the CPU meanwhile" in w for w in warnings), warnings
        assert engine.status()["model"]["device"] == "cpu"
    finally:
        engine.close()


def test_language_filter_is_applied_in_the_store(engine: Engine, tmp_path: Path) -> None:
    ws = tmp_path / "mixed"
    ws.mkdir()
    (ws / "guide.md").write_text("# Caching\n\nThe cache keeps parsed templates in memory.\n")
    (ws / "cache.py").write_text('"""Cache parsed templates in memory."""\n\nSIZE = 128\n')
    (ws / "notes.rst").write_text("Caching\n=======\n\nParsed templates stay in memory.\n")
    engine.open_workspace(ws)
    engine.index([ws])
    everything = engine.search("templates cached in memory", mode="keyword")["hits"]
    assert {h["language"] for h in everything} == {"markdown", "python", "restructuredtext"}
    only_py = engine.search("templates cached in memory", languages=["python"])["hits"]
    assert [h["path"] for h in only_py] == ["cache.py"]
    assert engine.search("templates", languages=[])["hits"] == []
    with pytest.raises(InvalidParamsError, match="languages: unknown 'cobol'"):
        engine.search("templates", languages=["cobol"])


def test_deleted_points_are_vacuumed_once_they_pile_up(
        engine: Engine, workspace: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from zero_latency.stores import edge as store_module

    monkeypatch.setattr(store_module, "VACUUM_MIN_DELETED", 10)  # the real one is 1,000
    index = engine.open_workspace(workspace)
    engine.index([workspace])
    chapters = sorted((workspace / "book").iterdir())
    doomed = sum(len(index.files[f"book/{p.name}"].chunk_ids) for p in chapters[:3])
    for path in chapters[:3]:
        path.unlink()
    with caplog.at_level("INFO", logger="zero_latency.stores.edge"):
        engine.index([workspace])
    assert f"vacuumed {doomed} deleted points" in caplog.text
    assert index.store.count() == index.chunk_count() > 0
    assert engine.search("threads", mode="hybrid")["hits"]
    # Below the share, nothing happens: one small edit leaves a few tombstones.
    caplog.clear()
    survivor = chapters[-1]
    survivor.write_text(survivor.read_text() + "\n\nOne more paragraph about spawn.\n")
    with caplog.at_level("INFO", logger="zero_latency.stores.edge"):
        engine.index([workspace])
    assert "vacuumed" not in caplog.text
