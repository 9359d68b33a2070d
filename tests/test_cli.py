"""The `zl` command line, run as a real process: index, search and status, with --json holding
to the same result shapes as the wire contract (protocol/schema.json), and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from zero_latency.protocol import result_errors

ZL = [sys.executable, "-m", "zero_latency"]


def zl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZL, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def zl_json(*args: str, cwd: Path | None = None) -> Any:
    done = zl(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_index_search_status(tmp_path: Path, workspace: Path) -> None:
    store = ["--model", "bundled", "--store-path", str(tmp_path / "store")]
    first = zl_json("index", str(workspace), *store)
    assert result_errors("docs/index", first) == []
    assert first["files"] == first["indexedFiles"] == 5 and first["embeddedChunks"] > 0
    again = zl_json("index", str(workspace), *store)
    assert again["unchangedFiles"] == 5 and again["embeddedChunks"] == 0
    rebuilt = zl_json("index", str(workspace), "--rebuild", *store)
    assert rebuilt["indexedFiles"] == 5 and rebuilt["embeddedChunks"] == first["embeddedChunks"]

    # From a folder inside the workspace, without --workspace: the index above is found.
    found = zl_json("search", "how", "do", "threads", "share", "data", *store,
                    cwd=workspace / "book")
    assert result_errors("docs/search", found) == []
    assert found["hits"][0]["path"] == "book/ch16-01-threads.md"
    only_python = zl_json("search", "vectors", "--language", "python", *store, cwd=workspace)
    assert only_python["hits"] == []  # the workspace holds Markdown only

    human = zl("search", "--workspace", str(workspace), "recoverable errors with Result", *store)
    assert human.returncode == 0, human.stderr
    first_line = human.stdout.splitlines()[0]
    assert first_line.startswith("book/ch09-02-recoverable-errors-with-result.md:")

    status = zl_json("status", "--workspace", str(workspace), *store)
    assert result_errors("docs/status", status) == []
    assert status["state"] == "idle" and status["files"] == 5
    assert status["chunks"] == first["chunks"]


def test_errors_are_clear_and_exit_2(tmp_path: Path) -> None:
    store = ["--model", "bundled", "--store-path", str(tmp_path / "store")]
    nowhere = zl("search", "anything", *store, cwd=tmp_path)
    assert nowhere.returncode == 2 and nowhere.stdout == ""
    assert "no index for" in nowhere.stderr and "zl index" in nowhere.stderr
    missing = zl("index", str(tmp_path / "absent"), *store)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    bad_model = zl("index", str(tmp_path), "--model", str(tmp_path / "no-model"),
                   "--store-path", str(tmp_path / "store"))
    assert bad_model.returncode == 0  # keyword-only, and it says so
    assert "Model folder not found" in bad_model.stderr
    assert "Keyword search still works" in bad_model.stderr
