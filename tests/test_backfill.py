"""Two-pass indexing (issue 14) over the wire: every file keyword-searchable before any dense
vector exists, the dense backfill by priority, resumable after kill -9, and status and
progress that say how far it got. Real model, real store, real `zl serve` processes; the
backfill is slowed or paused through its real settings (`backfillChunksPerSecond`,
`backfillPaused`), never mocked. Every wait is on a condition."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.errors import CancelledError
from zero_latency.indexer import BACKFILL_SORTED, CancelToken
from zero_latency.stores import EdgeStore

from .conftest import need_corpus
from .rpc import RawServer, started, wait_for

FILES = 40
NO_DAEMON = [sys.executable, "-m", "zero_latency", "serve", "--no-daemon"]


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    """FILES real tldr pages (one or two chunks each), each findable by its command's name."""
    src = need_corpus("tldr-pages") / "osx"
    ws = tmp_path / "ws"
    ws.mkdir()
    names = sorted(p.name for p in src.glob("*.md") if re.fullmatch(r"[a-z]{6,}\.md", p.name))
    for name in names[:FILES]:
        shutil.copy(src / name, ws / name)
    return ws


def result(reply: dict[str, Any]) -> Any:
    assert "result" in reply, reply
    return reply["result"]


def status(server: RawServer) -> dict[str, Any]:
    value: dict[str, Any] = result(server.request("docs/status", timeout=60))
    return value


def search(server: RawServer, query: str, mode: str = "keyword") -> dict[str, Any]:
    value: dict[str, Any] = result(server.request(
        "docs/search", {"query": query, "mode": mode, "limit": 10}, timeout=60))
    return value


def keyword_ready(server: RawServer, files: int) -> dict[str, Any] | None:
    """The status once the keyword pass has written every file."""
    now = status(server)
    return now if now["files"] == files and now["keywordChunks"] >= files else None


def test_every_file_is_keyword_searchable_while_the_backfill_is_paused(
        pages: Path, tmp_path: Path) -> None:
    server = started(pages, tmp_path / "store", backfillPaused=True)
    try:
        # Every file keyword-searchable, no chunk embedded: not "idle" (ready), "embedding".
        ready = wait_for(lambda: (s := status(server))["state"] == "embedding"
                         and s["files"] and s, 180, "the keyword pass")
        assert ready["files"] == FILES and ready["keywordChunks"] >= FILES
        assert ready["embeddedChunks"] == 0, "paused: nothing embedded"
        assert ready["workspaces"][0]["keywordChunks"] == ready["keywordChunks"]
        for page in sorted(pages.iterdir()):
            found = search(server, page.stem)
            assert page.name in [h["path"] for h in found["hits"]], page.name
        first = sorted(pages.iterdir())[0].stem
        hybrid = search(server, first, mode="hybrid")
        assert hybrid["coverage"] == {"files": FILES, "keywordChunks": ready["keywordChunks"],
                                      "embeddedChunks": 0}
        assert "0 of" in hybrid["notice"] and hybrid["hits"]
        assert not any(h["embedded"] for h in hybrid["hits"])
        semantic = search(server, first, mode="semantic")
        assert semantic["hits"] == [] and "embedded so far" in semantic["notice"]
    finally:
        server.close()


def test_coverage_grows_to_every_chunk_and_progress_counts_chunks(
        pages: Path, tmp_path: Path) -> None:
    server = started(pages, tmp_path / "store", backfillChunksPerSecond=4)
    try:
        keyword = wait_for(lambda: keyword_ready(server, FILES), 180, "the keyword pass")
        total = keyword["keywordChunks"]
        seen: list[int] = []

        def embedded_all() -> bool:
            now = status(server)
            assert now["files"] == FILES, "an indexed workspace never reports fewer files"
            seen.append(now["embeddedChunks"])
            return now["embeddedChunks"] == total and now["state"] == "idle"

        first = sorted(pages.iterdir())[0].stem
        partial = wait_for(lambda: (r := search(server, first, "hybrid")).get(
            "coverage", {}).get("embeddedChunks", 0) > 0 and r, 120, "partial coverage")
        assert 0 < partial["coverage"]["embeddedChunks"] < total
        wait_for(embedded_all, 300, "every chunk embedded")
        assert seen == sorted(seen), "the embedded count only grows"
        assert any(0 < n < total for n in seen)
        done = search(server, first, "hybrid")
        assert "coverage" not in done and all(h["embedded"] for h in done["hits"])
        reports = [n["params"]["value"] for n in server.notifications
                   if n["method"] == "$/progress" and n["params"]["value"]["kind"] == "report"]
        embedding = [r for r in reports if "chunks embedded" in r.get("message", "")]
        assert embedding, reports[-5:]
        assert re.fullmatch(r"\d+/\d+ chunks embedded · \d+/s( · ~\d+ (s|min) left)?",
                            embedding[-1]["message"].replace(",", "")), embedding[-1]
        assert all(0 <= r["percentage"] <= 100 for r in embedding)
    finally:
        server.close()


def test_an_opened_file_is_embedded_before_the_rest(pages: Path, tmp_path: Path) -> None:
    # The oldest file would be embedded last (newest modification first).
    last = sorted(pages.iterdir())[-1]
    os.utime(last, (1_000_000, 1_000_000))
    server = started(pages, tmp_path / "store", backfillChunksPerSecond=2)
    try:
        total = wait_for(lambda: keyword_ready(server, FILES), 180,
                         "the keyword pass")["keywordChunks"]
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": last.as_uri(), "languageId": "markdown", "version": 1,
            "text": last.read_text(encoding="utf-8")}})

        def opened_embedded() -> dict[str, Any] | None:
            hits = [h for h in search(server, last.stem)["hits"] if h["path"] == last.name]
            return hits[0] if hits and hits[0]["embedded"] else None

        wait_for(opened_embedded, 60, f"{last.name} embedded")
        assert status(server)["embeddedChunks"] < total, "the rest is still waiting"
    finally:
        server.close()


def test_docs_index_during_the_first_run_waits_and_reports_it(
        pages: Path, tmp_path: Path) -> None:
    server = started(pages, tmp_path / "store", backfillChunksPerSecond=20)
    try:
        wait_for(lambda: status(server)["state"] == "indexing", 120, "the first run")
        report = result(server.request("docs/index", {}, timeout=300))
        assert report["indexedFiles"] == FILES and report["unchangedFiles"] == 0, report
        assert report["embeddedChunks"] == report["chunks"] > 0
        assert status(server)["embeddedChunks"] == report["chunks"]
    finally:
        server.close()


def test_status_never_says_zero_files_for_an_indexed_workspace(
        pages: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        engine.open_workspace(pages)
        engine.index([pages])
    finally:
        engine.close()
    server = RawServer(NO_DAEMON)
    try:
        from .rpc import init_params

        assert "result" in server.request("initialize", init_params(pages, store), timeout=120)
        server.notify("initialized", {})
        states = []
        while True:
            now = status(server)
            states.append(now["state"])
            assert now["state"] in ("loading", "error") or now["files"] == FILES, now
            if now["state"] == "idle":
                break
        assert "idle" in states
    finally:
        server.close()


def test_resume_after_kill_9_embeds_nothing_twice(pages: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = RawServer(NO_DAEMON)
    from .rpc import init_params

    assert "result" in first.request("initialize", init_params(
        pages, store, backfillChunksPerSecond=3), timeout=120)
    first.notify("initialized", {})
    total = wait_for(lambda: keyword_ready(first, FILES), 180,
                     "the keyword pass")["keywordChunks"]
    wait_for(lambda: status(first)["embeddedChunks"] >= 5, 120, "some chunks embedded")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=30)
    # What the killed process left: read from the store itself, once its lock is free.
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        path = engine.store_path(pages)
        kept = EdgeStore(path, engine.model_fingerprint(), engine.dimension())
        before = kept.counts()
        kept.close()
    finally:
        engine.close()
    assert before.chunks == total and 0 < before.embedded < total, before
    second = RawServer(NO_DAEMON)
    try:
        assert "result" in second.request("initialize", init_params(pages, store),
                                          timeout=120)
        second.notify("initialized", {})
        report = result(second.request("docs/index", {}, timeout=300))
        assert report["embeddedChunks"] == total - before.embedded, (report, before)
        assert report["indexedFiles"] == 0, "files written before the kill are not redone"
        assert status(second)["embeddedChunks"] == total
    finally:
        second.close()


def _vectors_are_the_models(engine: Engine, root: Path, store: Path, tmp_path: Path) -> None:
    """Every chunk of `root` has the vector the model gives its text: read from a keyword-only
    index of the same files (same point ids), embedded here one by one."""
    index = engine.indexes[root]
    ids = [i for state in index.files.values() for i in state.chunk_ids]
    stored = index.store.vectors(ids)
    reference = Engine(Settings(model="bundled", storePath=str(tmp_path / "reference"),
                                backfillPaused=True))
    try:
        reference.open_workspace(root)
        reference.index([root])
        texts = {c.id: c.text for c in reference.indexes[root].store.pending(None, 10**6)}
    finally:
        reference.close()
    assert sorted(stored) == sorted(texts) == sorted(ids), "every chunk has its vector"
    assert engine.embedder is not None
    for chunk_id, text in texts.items():
        expected = engine.embedder.embed([text])[0]
        cosine = float(np.dot(expected, stored[chunk_id]) /
                       (np.linalg.norm(expected) * np.linalg.norm(stored[chunk_id])))
        assert cosine > 0.999, (chunk_id, cosine)


def test_a_small_keyword_pass_has_the_model_start_and_embeds_each_chunk_once(
        pages: Path, tmp_path: Path) -> None:
    """A workspace read in-process (too few files for the workers) leaves a core idle: the
    model embeds the chunks the keyword pass writes while it reads on, and the backfill takes
    those groups over. Each chunk is embedded once, with its own text's vector."""
    store = tmp_path / "store"
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        engine.open_workspace(pages)
        index = engine.indexes[pages]
        keyword = index.sync(None, embed=False, embed_ahead=True)
        # White-box, as nothing outside shows the model's work in hand: it started before
        # the pass returned (vectors written, or groups with the model).
        ahead = index._ahead
        in_hand = sum(len(group) for group, _ in ahead.in_flight) if ahead else 0
        assert keyword.embeddedChunks + in_hand > 0, "the model waited for the whole pass"
        assert index.store.counts().chunks == keyword.chunks
        backfilled = index.backfill()
        assert keyword.embeddedChunks + backfilled == keyword.chunks, \
            (keyword.embeddedChunks, backfilled, keyword.chunks)
        assert index.store.counts().pending == 0
        _vectors_are_the_models(engine, pages, store, tmp_path)
    finally:
        engine.close()


def test_a_run_cancelled_as_its_backfill_starts_loses_nothing_and_embeds_nothing_twice(
        pages: Path, tmp_path: Path) -> None:
    """The groups the keyword pass started are dropped with the cancelled backfill (their
    chunks stay pending); the next run embeds exactly what is left."""
    store = tmp_path / "store"
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        engine.open_workspace(pages)
        cancel = CancelToken()

        def cancel_once_embedding(done: int, total: int, message: str) -> None:
            if "embedded" in message:
                cancel.cancel()

        with pytest.raises(CancelledError):
            engine.index([pages], progress=cancel_once_embedding, cancel=cancel)
        counts = engine.indexes[pages].store.counts()
        assert 0 < counts.embedded < counts.chunks, counts
        report = engine.index([pages])
        assert report.embeddedChunks == counts.chunks - counts.embedded, (report, counts)
        assert engine.indexes[pages].store.counts().pending == 0
        _vectors_are_the_models(engine, pages, store, tmp_path)
    finally:
        engine.close()


def test_the_backfill_hands_the_model_groups_of_like_length_longest_first(
        pages: Path, tmp_path: Path) -> None:
    """Pending chunks are read ahead (up to BACKFILL_SORTED) and cut into groups by their
    token counts (the chunker's, stored with each chunk), so that each group runs at few
    padded widths: a later group's texts are never longer than an earlier one's. Each chunk
    is still embedded once, with its own vector."""
    store = tmp_path / "store"
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        engine.open_workspace(pages)
        index = engine.indexes[pages]
        keyword = index.sync(None, embed=False)
        assert keyword.chunks < BACKFILL_SORTED, "one read-ahead holds every chunk"
        pending = index.store.pending(None, BACKFILL_SORTED)
        assert len(pending) == keyword.chunks and all(c.tokens > 0 for c in pending)
        embedder = engine.load_model()
        assert embedder is not None
        groups: list[list[str]] = []
        submit = embedder.submit

        def recording(texts: Any, urgent: bool = False) -> Any:  # records, then embeds
            groups.append(list(texts))
            return submit(texts, urgent)

        embedder.submit = recording  # type: ignore[method-assign]
        assert index.backfill() == keyword.chunks
        assert len(groups) > 2 and sum(map(len, groups)) == keyword.chunks
        tokens = [[embedder.count_tokens(text) for text in group] for group in groups]
        for earlier, later in itertools.pairwise(tokens):
            assert max(later) <= min(earlier), tokens
        assert index.store.counts().pending == 0
        _vectors_are_the_models(engine, pages, store, tmp_path)
    finally:
        engine.close()
