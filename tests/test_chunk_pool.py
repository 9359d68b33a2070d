"""The keyword pass of a big workspace reads and chunks files in worker processes
(chunk_pool.py): what it stores is exactly what chunking in process stores, files it cannot
index are reported the same way, a worker that dies costs no file, a cancel stops the workers,
and a server killed with -9 leaves no worker behind. Real files, the real model's tokenizer,
the real store and real processes; the faults are real too (SIGKILL), never mocked."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from zero_latency import indexer
from zero_latency.chunk_pool import ChunkPool, ChunkSettings
from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.errors import CancelledError
from zero_latency.indexer import CancelToken, IndexReport
from zero_latency.stores.base import SPARSE

from .conftest import need_corpus
from .rpc import RawServer, init_params, wait_for

NO_DAEMON = [sys.executable, "-m", "zero_latency", "serve", "--no-daemon"]
PAGES = 400  # above indexer.POOL_MIN_FILES: the pool is used


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """PAGES real tldr pages, plus files the indexer skips or warns about."""
    src = need_corpus("tldr-pages") / "common"
    ws = tmp_path / "ws"
    ws.mkdir()
    for page in sorted(src.glob("*.md"))[:PAGES]:
        shutil.copy(page, ws / page.name)
    (ws / "binary.md").write_bytes(b"# title\n\x00\x01\x02 binary")
    (ws / "huge.md").write_text("# big\n\n" + "word " * 5000)
    (ws / "latin1.md").write_bytes("# caf\xe9\n\nna\xefve text".encode("latin-1"))
    return ws


def keyword_pass(ws: Path, store: Path, in_process: bool, monkeypatch: pytest.MonkeyPatch,
                 progress: indexer.ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> tuple[IndexReport, dict[str, Any], int]:
    """One keyword pass: its report, every stored payload and BM25 vector by point id, and how
    many tasks went to the workers (ChunkPool.submit, wrapped to count: it still runs)."""
    monkeypatch.setattr(indexer, "POOL_MIN_FILES", 10**9 if in_process else 256)
    tasks = 0
    real_submit = ChunkPool.submit

    def counted(pool: ChunkPool, *args: Any) -> None:
        nonlocal tasks
        tasks += 1
        real_submit(pool, *args)

    monkeypatch.setattr(ChunkPool, "submit", counted)
    engine = Engine(Settings(model="bundled", storePath=str(store), maxFileBytes=20_000))
    try:
        index = engine.open_workspace(ws)
        report = index.sync(embed=False, progress=progress, cancel=cancel)
        ids = sorted(i for state in index.store.manifest().values() for i in state.chunk_ids)
        stored = {pid: json.dumps(payload, sort_keys=True)
                  for pid, payload in index.store.payloads(ids).items()}
        # The BM25 vectors too: the workers analyse each chunk, the indexer otherwise.
        records = index.store._shard.retrieve(ids, with_payload=False,  # type: ignore[attr-defined]
                                              with_vector=[SPARSE])
        for record in records:
            sparse = record.vector[SPARSE]
            terms = sorted(zip(sparse.indices, sparse.values, strict=True))
            stored[f"{record.id} bm25"] = json.dumps(terms)
        return report, stored, tasks
    finally:
        engine.close()


def test_workers_store_exactly_what_chunking_in_process_stores(
        big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, here_stored, here_tasks = keyword_pass(big, tmp_path / "a", True, monkeypatch)
    pooled, pooled_stored, pooled_tasks = keyword_pass(big, tmp_path / "b", False, monkeypatch)
    # The first READ_HERE files to read are read here (a warm run with a few changes
    # starts no worker); the rest go to the workers.
    assert here_tasks == 0
    assert pooled_tasks >= (PAGES - indexer.READ_HERE) // indexer.READ_BATCH
    assert len(pooled_stored) >= PAGES and pooled_stored == here_stored
    assert pooled.indexedFiles == here.indexedFiles == PAGES + 1  # latin1.md, with a warning
    assert pooled.skippedFiles == here.skippedFiles == 2
    assert sorted(map(str, pooled.errors)) == sorted(map(str, here.errors))
    reasons = " ".join(e["message"] for e in pooled.errors)
    assert "binary" in reasons and "maxFileBytes" in reasons and "UTF-8" in reasons, reasons


def test_a_worker_killed_mid_pass_costs_no_file(
        big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    killed: list[int] = []

    def kill_workers(done: int, total: int, rel: str) -> None:
        if not killed and done >= 100:
            for child in multiprocessing.active_children():
                os.kill(child.pid or 0, signal.SIGKILL)
                killed.append(child.pid or 0)

    report, stored, _ = keyword_pass(big, tmp_path / "a", False, monkeypatch, kill_workers)
    assert killed, "the workers were running"
    _, expected, _ = keyword_pass(big, tmp_path / "b", True, monkeypatch)
    assert stored == expected
    assert report.indexedFiles == PAGES + 1 and report.skippedFiles == 2


def test_a_cancelled_pass_stops_its_workers(
        big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    cancel = CancelToken()
    seen: list[int] = []

    def cancel_at_100(done: int, total: int, rel: str) -> None:
        if done >= 100:
            seen.extend(c.pid or 0 for c in multiprocessing.active_children())
            cancel.cancel()

    with pytest.raises(CancelledError):
        keyword_pass(big, tmp_path / "a", False, monkeypatch, cancel_at_100, cancel)
    assert seen, "the workers were running"
    assert not multiprocessing.active_children(), "the pool was shut down"


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.update(int(c) for c in file.read().split())
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_a_server_killed_mid_pass_leaves_no_worker_and_stdout_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = need_corpus("tldr-pages")
    temp = tmp_path / "tmp"  # where the workers leave their results (chunk_pool's spool)
    temp.mkdir()
    server = RawServer(NO_DAEMON, env={**os.environ, "TMPDIR": str(temp)})
    try:
        assert "result" in server.request("initialize", init_params(
            corpus, tmp_path / "store", backfillPaused=True), timeout=120)
        server.notify("initialized", {})
        workers = wait_for(lambda: _children(server.proc.pid), 300, "the chunking workers",
                           every=0.02)
        assert not server.stdout_garbage, server.stdout_garbage[:3]
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=60)
        wait_for(lambda: not any(_alive(pid) for pid in workers), 120,
                 f"workers {sorted(workers)} to exit after their server was killed")
        # They take the results nobody read with them: no file's text is left in /tmp (the
        # children seen above may be only the first ones: wait for every worker's leaving).
        # A spool folder whose workers were still starting stays, empty: the next pool
        # removes it.
        wait_for(lambda: not [f for f in temp.rglob("*") if f.is_file()], 120,
                 "the workers to remove their results after their server was killed")
        spools = list(temp.iterdir())
        pool = ChunkPool(ChunkSettings(None, 256, 32, 1 << 20), workers=1)
        with monkeypatch.context() as patched:
            patched.setenv("TMPDIR", str(temp))
            patched.setattr(tempfile, "tempdir", None)  # read TMPDIR again
            try:
                pool.start()
                assert not [s for s in spools if s.exists()], "orphaned spools removed"
            finally:
                pool.close()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def test_a_warm_run_with_a_few_changes_starts_no_worker(
        big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    keyword_pass(big, tmp_path / "store", False, monkeypatch)
    changed = sorted(big.glob("*.md"))[:3]
    for page in changed:
        page.write_text(page.read_text() + "\n\nA line added: zzchangedzz.\n")
    started: list[int] = []

    def watch(done: int, total: int, rel: str) -> None:
        started.extend(c.pid or 0 for c in multiprocessing.active_children())

    report, stored, tasks = keyword_pass(big, tmp_path / "store", False, monkeypatch, watch)
    assert tasks == 0 and not started
    assert report.indexedFiles == 3 and report.unchangedFiles == PAGES + 1 - 3
    assert sum("zzchangedzz" in payload for payload in stored.values()) == 3
