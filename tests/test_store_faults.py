"""The store and the disk under attack (issue 10, items 10, 11, 13, 14, 15, 16): full disks,
files rewritten while read, files no parser can handle, masses of empty files, racing
writers. Real model, real Qdrant Edge stores, real `zl` processes, real filesystems (a tmpfs
mounted by the test where a full disk is needed)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zero_latency import indexer as indexer_module
from zero_latency.chunking import chunk_document
from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.files import Document

from .conftest import RUST_CHAPTERS, need_corpus

ZL = [sys.executable, "-m", "zero_latency"]


def zl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZL, *args], capture_output=True, text=True, timeout=timeout)


# --- 13: one bad file never makes the workspace unindexable ----------------------------------


def test_files_no_parser_can_handle_are_skipped_and_the_rest_is_indexed(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "good.md").write_text("# Good\n\nThe okapi is indexed whatever its neighbours.\n")
    # A name that is not UTF-8 (legal on Linux): it cannot be stored as a payload string.
    (ws / os.fsdecode(b"bad-\xff-name.md")).write_text("the bad name\n")
    # Generated code: 6,000 terms in one expression, too deep for ast.parse (RecursionError).
    (ws / "generated.py").write_text('"""The quokka module."""\n\nx = '
                                     + "+".join(["1"] * 6000) + "\n")
    # 400 KB of `[`: markdown-it's inline pass took 27 s on it.
    (ws / "brackets.md").write_text("[" * 400_000)
    store = tmp_path / "store"
    started = time.monotonic()
    done = zl("index", str(ws), "--model", "bundled", "--store-path", str(store), "--json")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["indexedFiles"] == 3 and report["skippedFiles"] == 1, report
    [error] = report["errors"]
    assert "bad-%FF-name.md" in error["uri"] and "not valid UTF-8" in error["message"]
    assert elapsed < 120, f"indexing four small files took {elapsed:.0f} s"
    for query, path in (("okapi", "good.md"), ("quokka", "generated.py")):
        found = zl("search", query, "--mode", "keyword", "--model", "bundled",
                   "--store-path", str(store), "--workspace", str(ws), "--json")
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)["hits"]
        assert hits and hits[0]["path"] == path


def test_pathological_markdown_is_parsed_in_bounded_time() -> None:
    for text in ("[" * 400_000, "![" * 100_000, "*a" * 100_000, "<" * 200_000):
        started = time.perf_counter()
        chunks = chunk_document(text, "markdown", lambda t: len(t) // 4 + 1, 256, 32)
        elapsed = time.perf_counter() - started
        assert chunks, "the text is still indexed"
        assert elapsed < 3, f"{text[:2]!r}: {elapsed:.1f} s to chunk (was 4-27 s)"


# --- 14: empty files are recorded, warm runs stay O(stat) ------------------------------------


def test_empty_files_are_recorded_and_warm_runs_read_nothing(settings: Settings,
                                                             tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    for package in range(20):
        (ws / f"pkg{package}").mkdir(parents=True)
        for module in range(25):
            (ws / f"pkg{package}" / f"__init__{module}.py").touch()
    (ws / "readme.md").write_text("# Readme\n\nThe pangolin lives in the readme.\n")
    old = time.time() - 60  # stats older than a timestamp tick are trusted at once
    for path in ws.rglob("*"):
        os.utime(path, (old, old))
    engine = Engine(settings)
    engine.open_workspace(ws)
    cold = engine.index([ws])
    assert cold.indexedFiles == 501 and cold.chunks == 1
    warm = engine.index([ws])
    assert warm.indexedFiles == 0 and warm.unchangedFiles == 501, warm
    engine.close()
    # A new process reads them from the store: still nothing to read.
    again = Engine(settings)
    try:
        index = again.open_workspace(ws)
        warm = again.index([ws])
        assert warm.indexedFiles == 0 and warm.unchangedFiles == 501, warm
        assert again.status()["chunks"] == 1, "markers are not chunks"
        assert index.store.count() == 501, "one marker per empty file, one chunk"
        hits = again.search("pangolin readme", limit=20, mode="hybrid")["hits"]
        assert [h["path"] for h in hits] == ["readme.md"], "no search returns a marker"
        # An empty file that gains text: indexed, its marker gone.
        (ws / "pkg3" / "__init__7.py").write_text('"""The aardvark package."""\n')
        report = again.index([ws])
        assert report.indexedFiles == 1
        assert again.search("aardvark", mode="keyword")["hits"][0]["path"] == \
            "pkg3/__init__7.py"
        assert index.store.count() == 501 and again.status()["chunks"] == 2
        # ...and back to empty: the chunk goes, a marker is back.
        (ws / "pkg3" / "__init__7.py").write_text("")
        again.index([ws])
        assert again.search("aardvark", mode="keyword")["hits"] == []
        assert index.store.count() == 501 and again.status()["chunks"] == 1
    finally:
        again.close()


# --- 11: a file rewritten while it is being read ---------------------------------------------


def test_a_file_rewritten_while_read_is_read_again(engine: Engine, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    target = ws / "guide.md"
    full = "".join(f"# Section {n}\n\nParagraph {n} about the wombat number {n}.\n\n"
                   for n in range(40))
    target.write_text(full)
    settled = time.time_ns() - 10 * 10**9
    os.utime(target, ns=(settled, settled))
    real_read = indexer_module.read_document
    raced: list[bool] = []

    def read_racing_a_writer(path: Path, max_bytes: int) -> Document:
        """The writer (truncate, then write) is caught half-way by the read, and finishes
        right after it within the same timestamp tick. The scheduler does this 2 times in 10
        on a loaded machine; here it is made to happen every time, so this one fault is
        simulated around the real read."""
        if path != target or raced:
            return real_read(path, max_bytes)
        raced.append(True)
        target.write_text(full[: len(full) // 3])
        os.utime(target, ns=(settled, settled))
        try:
            return real_read(path, max_bytes)
        finally:
            target.write_text(full)
            os.utime(target, ns=(settled, settled))

    monkeypatch.setattr(indexer_module, "read_document", read_racing_a_writer)
    index = engine.open_workspace(ws)
    engine.index([ws])
    assert raced
    # The disk now holds the full file again, with the stat it had before the race: the
    # run that read a third of it must not have recorded that stat for its text.
    engine.index([ws])
    assert engine.search("wombat number 39", mode="keyword")["hits"], "stale forever"
    state = index.files["guide.md"]
    from zero_latency.files import hash_bytes

    assert state.file_hash.startswith(hash_bytes(full.encode()))  # (+ the chunker's version)
    assert engine.index([ws]).indexedFiles == 0, "and then it is settled"


# --- 10: a full disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of its own: the one way to fill a disk without filling the machine's."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "zl-test",
                           str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a full disk needs a tmpfs of its own and mounting one is not allowed "
                    f"here ({done.stderr.strip() or done.returncode}): run as root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill the filesystem to the last byte; delete the returned file to free it again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    block = b"\xa5" * (1 << 20)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                if len(block) == 1:
                    break
                block = block[: len(block) // 16 or 1]
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


def chapters(ws: Path, names: list[str]) -> None:
    src = need_corpus("rust-book")
    ws.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(src / name, ws / name)


def test_zl_index_on_a_full_disk_reports_it_and_loses_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    chapters(ws, RUST_CHAPTERS[:2])
    with small_disk(tmp_path / "disk", 200) as disk:
        store = disk / "store"
        common = ("--model", "bundled", "--store-path", str(store))
        assert zl("index", str(ws), *common).returncode == 0
        filler = fill(disk)
        chapters(ws, RUST_CHAPTERS[2:])
        full = zl("index", str(ws), *common)
        assert full.returncode == 2, (full.returncode, full.stderr[-2000:])  # was -7: SIGBUS
        assert "disk is full" in full.stderr and str(store) in full.stderr
        assert re.search(r"disk is full \(\d+\.\d MB free, \d+\.\d MB needed", full.stderr), \
            full.stderr
        # The daemon has the store open: searches are answered from what it holds.
        found = zl("search", "ownership", *common, "--workspace", str(ws), "--json")
        assert found.returncode == 0 and json.loads(found.stdout)["hits"], found.stderr[-2000:]
        filler.unlink()  # room again: the next run writes everything
        done = zl("index", str(ws), *common, "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["indexedFiles"] + report["unchangedFiles"] == 5 and not report["errors"]
        threads = zl("search", "spawn a new thread", *common, "--workspace", str(ws), "--json")
        assert any(h["path"] == "ch16-01-threads.md"
                   for h in json.loads(threads.stdout)["hits"])


def test_zl_serve_on_a_full_disk_keeps_serving_and_resumes(tmp_path: Path) -> None:
    from .test_reliability import started

    ws = tmp_path / "ws"
    chapters(ws, RUST_CHAPTERS[:2])
    with small_disk(tmp_path / "disk", 200) as disk:
        store = disk / "store"
        server = started(ws, store, debounceMs=50)
        try:
            deadline = time.monotonic() + 300
            status = server.request("docs/status")["result"]
            while status["files"] < 2 or status["state"] != "idle":
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
                status = server.request("docs/status")["result"]
            filler = fill(disk)
            # An edit (which wrote to the store, and died of SIGBUS) and a new file on disk.
            notes = ws / "notes.md"
            notes.write_text("# Notes\n\nNothing here yet.\n")
            uri = notes.as_uri()
            server.notify("textDocument/didOpen", {"textDocument": {
                "uri": uri, "languageId": "markdown", "version": 1,
                "text": "# Notes\n\nThe capybara stays in the buffer.\n"}})
            (ws / "later.md").write_text("# Later\n\nThe axolotl arrives on disk.\n")
            deadline = time.monotonic() + 120
            while "disk is full" not in status.get("lastError", ""):
                assert time.monotonic() < deadline, status
                assert server.proc.poll() is None, b"".join(server.stderr)[-2000:]
                time.sleep(0.2)
                status = server.request("docs/status")["result"]
            assert str(store) in status["lastError"] and "MB free" in status["lastError"]
            hits = server.request("docs/search", {"query": "ownership"})["result"]["hits"]
            assert hits, "searches answer from what is indexed"
            refused = server.request("docs/index", {}, timeout=300)
            assert refused["error"]["code"] == -32803, refused
            assert refused["error"]["data"]["kind"] == "storeUnavailable", refused
            assert "disk is full" in refused["error"]["message"]
            filler.unlink()  # room again: nothing is asked, everything is written
            for word, path in (("capybara", "notes.md"), ("axolotl", "later.md")):
                deadline = time.monotonic() + 120
                while True:
                    reply = server.request("docs/search", {"query": word, "mode": "keyword"})
                    if any(h["path"] == path for h in reply["result"]["hits"]):
                        break
                    assert time.monotonic() < deadline, f"{word} never written"
                    time.sleep(0.2)
            # The error goes when the resumed run ends: its keyword pass makes the words
            # searchable before its backfill has embedded them (seconds on a loaded machine).
            deadline = time.monotonic() + 120
            while "lastError" in (status := server.request("docs/status")["result"]):
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
        finally:
            assert server.close() == 0


def test_a_store_that_cannot_open_on_a_full_disk_says_so_and_opens_once_there_is_room(
        tmp_path: Path, daemon_dir: Path) -> None:
    """Issue 20, item 8: the store is reopened (a new daemon) on a nearly full memory disk.
    While there is no room: the search's error names the store and the free space (not "no
    good match", not "searches still answer"); the room asked is what loading really touches
    (with that much free and a little more, it opens: no SIGBUS); once there is room, the
    same editor session searches again without a restart."""
    from zero_latency import daemon

    from .rpc import started

    ws = tmp_path / "ws"
    chapters(ws, RUST_CHAPTERS[:2])
    with small_disk(tmp_path / "disk", 160) as disk:
        store = disk / "store"
        common = ("--model", "bundled", "--store-path", str(store))
        assert zl("index", str(ws), *common).returncode == 0
        daemon.stop(daemon_dir)  # the store closes; the next daemon opens it anew
        filler = fill(disk)
        os.truncate(filler, filler.stat().st_size - 20 * 1024 * 1024)  # 20 MB free
        server = started(ws, store)
        try:
            reply = server.request("docs/search", {"query": "ownership"}, timeout=120)
            assert reply["error"]["code"] == -32803, reply
            message = reply["error"]["message"]
            assert f"cannot open the store at {store}" in message, message
            assert "not searchable until then" in message, message
            free, needed = (float(n) for n in re.findall(
                r"\((\d+\.\d) MB free, (\d+\.\d) MB needed to open it\)", message)[0])
            status = server.request("docs/status")["result"]
            assert status["refusedFolders"][0]["uri"] == ws.as_uri(), status
            assert needed < 100, f"{needed} MB asked to open a 2-file store"
            # Exactly what was asked (and 2 MB more): it opens, and answers.
            os.truncate(filler, filler.stat().st_size - int((needed - free + 2) * 1024 * 1024))
            deadline = time.monotonic() + 120
            while "result" not in (reply := server.request("docs/search", {
                    "query": "ownership"}, timeout=120)):
                assert time.monotonic() < deadline, reply
                assert server.proc.poll() is None
                time.sleep(0.2)
            assert reply["result"]["hits"], reply
            assert "refusedFolders" not in server.request("docs/status")["result"]
        finally:
            server.close()


# --- 15: concurrent writers ----------------------------------------------------------------------


def test_rebuild_never_deletes_a_store_in_use(settings: Settings, workspace: Path) -> None:
    engine = Engine(settings)
    try:
        index = engine.open_workspace(workspace)
        engine.index([workspace])
        rebuild = zl("index", str(workspace), "--rebuild", "--model", "bundled",
                     "--store-path", str(settings.storePath))
        assert rebuild.returncode == 2, rebuild.stderr
        assert "locked by another Zero-Latency process" in rebuild.stderr
        assert "corrupt" not in rebuild.stderr
        # The process using it goes on writing and searching.
        (workspace / "book" / "extra.md").write_text("# Extra\n\nThe tapir was added.\n")
        report = engine.index([workspace])
        assert report.indexedFiles == 1 and not report.errors
        assert engine.search("tapir", mode="keyword")["hits"]
        assert index.store.count() == index.chunk_count()
    finally:
        engine.close()
    # Once nobody uses it, a rebuild goes ahead.
    rebuilt = zl("index", str(workspace), "--rebuild", "--model", "bundled",
                 "--store-path", str(settings.storePath), "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["indexedFiles"] == 6


def test_a_second_writer_on_a_new_store_is_told_locked_not_corrupt(
        settings: Settings, workspace: Path) -> None:
    probe = Engine(settings)
    store_path = probe.store_path(workspace)
    probe.close()
    common = ("--model", "bundled", "--store-path", str(settings.storePath))
    common = (*common, "--no-daemon")  # two writers of one store, as two processes
    first = subprocess.Popen([*ZL, "index", str(workspace), *common],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Freeze the first writer the moment its shard folder appears: mid-creation, where
        # the second used to find a shard without metadata and call it corrupt.
        deadline = time.monotonic() + 300
        while not (store_path / "shard").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.001)
        first.send_signal(signal.SIGSTOP)
        second = zl("index", str(workspace), *common)
        assert "corrupt" not in second.stderr and "--rebuild" not in second.stderr, \
            second.stderr
        if second.returncode != 0:
            assert second.returncode == 2
        assert "locked by another Zero-Latency process" in second.stderr or \
            "in use by another Zero-Latency process" in second.stderr, second.stderr
    finally:
        first.send_signal(signal.SIGCONT)
        _out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    third = zl("index", str(workspace), *common, "--json")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["unchangedFiles"] == 5


# --- 16: searches do not queue behind writes ----------------------------------------------------


def test_edits_never_wait_for_the_sync_in_progress(engine: Engine, workspace: Path) -> None:
    """The event loop records every didChange (touch, then the buffer text): when that took
    the writer's lock it waited for the whole sync in progress, embedding included, and every
    search queued behind it (p95 26 s in a 2,000-edit storm; benchmarks/edit_storm.py gives
    the latency figures). Here the writer's lock is held as a long sync holds it."""
    index = engine.open_workspace(workspace)
    holding = threading.Event()
    release = threading.Event()

    def long_sync() -> None:
        with index.lock:
            holding.set()
            release.wait(60)

    writer = threading.Thread(target=long_sync)
    writer.start()
    try:
        assert holding.wait(30)
        edit = threading.Thread(target=lambda: (
            index.touch("book/ch16-01-threads.md"),
            index.set_overlay("book/ch16-01-threads.md", "# Threads\n\nThe edited text.\n")))
        edit.start()
        edit.join(10)
        assert not edit.is_alive(), "an edit waited for the sync in progress"
    finally:
        release.set()
        writer.join()
    # ...and the edit is written by the next sync, as before.
    engine.schedule_sync(index, "book/ch16-01-threads.md").result(timeout=300)
    hits = engine.search("edited text", mode="keyword")["hits"]
    assert hits and hits[0]["path"] == "book/ch16-01-threads.md"
