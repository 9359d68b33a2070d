"""Issue 20, "search first, for every client": a search never waits for an index run, whoever
started it. The run is held long by a real setting (`backfillChunksPerSecond`), not by
timing: the searches must answer while it still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .animal_notes import ANIMALS, animal_note
from .rpc import wait_for

ZL = [sys.executable, "-m", "zero_latency"]


def corpus(root: Path, files: int = 60) -> Path:
    """Markdown files with a few sections each: enough chunks that a backfill at 2 chunks/s
    runs for minutes."""
    root.mkdir()
    for n in range(files):
        (root / f"note-{n:03}.md").write_text(animal_note(n, ANIMALS[n % len(ANIMALS)]))
    return root


def zl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZL, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def slow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, subprocess.Popen[str]]:
    """`zl index` of a workspace, running (in its backfill, at 2 chunks/s) in the daemon."""
    config = tmp_path / "config.toml"
    config.write_text(f'model = "bundled"\nstorePath = "{tmp_path / "store"}"\n'
                      "backfillChunksPerSecond = 2\n")
    monkeypatch.setenv("ZL_CONFIG", str(config))
    ws = corpus(tmp_path / "ws")
    run = subprocess.Popen([*ZL, "index", str(ws)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)

    def keyword_pass_done() -> bool:
        status = zl("status", "--workspace", str(ws), "--json")
        if status.returncode != 0:
            return False
        result = json.loads(status.stdout)
        return bool(result["state"] == "indexing" and result["keywordChunks"] >= 60)

    wait_for(keyword_pass_done, 300, "the run to reach its backfill")
    yield ws, run
    run.kill()
    run.wait(timeout=60)


def test_a_search_answers_while_another_client_s_index_run_goes_on(
        slow_run: tuple[Path, subprocess.Popen[str]]) -> None:
    ws, run = slow_run
    for mode in ("keyword", "hybrid"):
        found = zl("search", "the pangolin forages", "--workspace", str(ws), "--mode", mode,
                   "--json")
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)["hits"]
        assert hits and "pangolin" in hits[0]["snippet"], hits
        assert run.poll() is None, "the index run ended first: the test proves nothing"


def test_twenty_clients_search_during_an_index_run(
        slow_run: tuple[Path, subprocess.Popen[str]]) -> None:
    ws, run = slow_run
    queries = [f"where does the {ANIMALS[n]} forage" for n in range(20)]

    def search(query: str) -> subprocess.CompletedProcess[str]:
        return zl("search", query, "--workspace", str(ws), "--mode", "keyword", "--json")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(search, queries))
    assert all(a.returncode == 0 for a in answers), [a.stderr for a in answers]
    for query, answer in zip(queries, answers, strict=True):
        animal = query.split()[3]
        assert animal in json.loads(answer.stdout)["hits"][0]["snippet"], (query, answer.stdout)
    assert run.poll() is None, "the index run ended first: the test proves nothing"
    assert os.environ.get("ZL_CONFIG")  # the daemon was this test's own (its config)
