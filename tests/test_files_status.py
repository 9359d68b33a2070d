"""`docs/files` and `zl status --files`: for every file, whether it is indexed, and if not, why
(issue 14: "why is my file not found?"). Real server, real store, real files on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zero_latency.protocol import result_errors

from .rpc import RawServer, started

ZL = [sys.executable, "-m", "zero_latency"]
MAX_BYTES = 2000


def make_workspace(root: Path) -> Path:
    """One file of each kind the walk or the reader leaves out, and two it takes."""
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "guide.md").write_text("# Guide\n\nRotate the signing keys monthly.\n")
    (root / "docs" / "latin1.txt").write_bytes(b"caf\xe9 au lait, a menu in Latin-1\n")
    (root / "big.md").write_text("# Big\n\n" + "word " * MAX_BYTES)
    (root / "blob.md").write_bytes(b"# looks like text\x00\x01\x02 but is not\n")
    (root / ".gitignore").write_text("# generated output\ngenerated/\n")
    (root / "generated").mkdir()
    (root / "generated" / "out.md").write_text("# Generated\n")
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "README.md").write_text("# A dependency\n")
    (root / "main.rs").write_text("fn main() {}\n")
    return root


def by_path(files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in files}


def files(server: RawServer, params: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = server.request("docs/files", params or {}, timeout=120)
    assert "result" in reply, reply
    assert result_errors("docs/files", reply["result"]) == [], reply["result"]
    result: dict[str, Any] = reply["result"]
    return result


def test_docs_files_says_why_each_file_is_not_indexed(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws")
    server = started(root, tmp_path / "store", maxFileBytes=MAX_BYTES)
    try:
        assert "result" in server.request("docs/index", {}, timeout=300)
        listing = files(server)
        found = by_path(listing["files"])
        assert listing["total"] == len(found) == 8 and "nextOffset" not in listing
        assert list(found) == sorted(found), "sorted by path"
        guide = found["docs/guide.md"]
        assert guide["state"] == "indexed" and guide["chunks"] == 1 and "reason" not in guide
        assert guide["uri"] == (root / "docs" / "guide.md").as_uri()
        latin1 = found["docs/latin1.txt"]
        assert latin1["state"] == "indexed" and "invalid UTF-8" in latin1["reason"]
        expected = {
            "big.md": "over the maxFileBytes limit of 2,000",
            "blob.md": "binary file",
            "generated/": "ignored by .gitignore:2: generated/",
            "node_modules/": "default ignore: node_modules",
            "main.rs": "not a document type",
            ".gitignore": "not a document type",
        }
        for path, reason in expected.items():
            assert found[path]["state"] == "skipped", found[path]
            assert reason in found[path]["reason"], found[path]
        assert "generated/out.md" not in found, "a folder left out is one entry"

        # Paging: the pages are the listing, in order, and say where the next one starts.
        pages: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = files(server, {"offset": offset, "limit": 4})
            assert page["total"] == 8 and len(page["files"]) <= 4
            pages += page["files"]
            offset = page.get("nextOffset")
        assert pages == listing["files"]

        skipped = files(server, {"states": ["skipped"]})
        assert skipped["total"] == 6 and {f["state"] for f in skipped["files"]} == {"skipped"}
        inside = files(server, {"uri": (root / "docs").as_uri()})
        assert [f["path"] for f in inside["files"]] == ["docs/guide.md", "docs/latin1.txt"]

        # A file that appears is pending until a run takes it.
        (root / "docs" / "new.md").write_text("# New\n")
        fresh = by_path(files(server, {"uri": (root / "docs").as_uri()})["files"])
        assert fresh["docs/new.md"]["state"] in ("pending", "indexed")  # the watcher may be quick

        outside = server.request("docs/files", {"uri": tmp_path.as_uri()})
        assert outside["error"]["code"] == -32602 and "workspace" in outside["error"]["message"]
        bad = server.request("docs/files", {"limit": 5000})
        assert bad["error"]["code"] == -32602 and "limit" in bad["error"]["message"]
    finally:
        server.close()


def test_an_unreadable_file_is_skipped_as_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "open.md").write_text("# Open\n")
    secret = root / "locked.md"
    secret.write_text("# Locked\n")
    secret.chmod(0)
    try:
        try:
            secret.read_bytes()
        except PermissionError:
            pass
        else:
            pytest.skip("this user reads a file whatever its mode (root): cannot be unreadable")
        server = started(root, tmp_path / "store")
        try:
            assert "result" in server.request("docs/index", {}, timeout=300)
            found = by_path(files(server)["files"])
            assert found["open.md"]["state"] == "indexed"
            assert found["locked.md"]["state"] == "skipped"
            assert "permission denied" in found["locked.md"]["reason"]
        finally:
            server.close()
    finally:
        secret.chmod(0o644)


def zl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZL, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "ZL_CONFIG": os.devnull})


def test_zl_status_files_pages_and_json(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws")
    flags = ["--model", "bundled", "--store-path", str(tmp_path / "store")]
    assert zl("index", str(root), *flags, cwd=root).returncode == 0
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        done = zl("status", "--files", "--json", "--offset", str(offset), "--limit", "3",
                  *flags, cwd=root / "docs")  # found from a folder inside the workspace
        assert done.returncode == 0, done.stderr
        page = json.loads(done.stdout)
        assert result_errors("docs/files", page) == [] and page["total"] == 8
        pages += page["files"]
        offset = page.get("nextOffset")
    found = by_path(pages)
    assert len(found) == 8 and found["docs/guide.md"]["state"] == "indexed"
    assert found["big.md"]["state"] == "indexed", "under the default maxFileBytes"
    assert "ignored by .gitignore:2: generated/" in found["generated/"]["reason"]
    text = zl("status", "--files", "--state", "skipped", "--limit", "2", *flags, cwd=root)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines == ["skipped  .gitignore  — not a document type",
                     "skipped  blob.md  — binary file (contains NUL bytes): not indexed"]
    assert "1-2 of 5 skipped files" in text.stderr, text.stderr
    assert "next page: zl status --files --state skipped --offset 2" in text.stderr


def test_the_file_states_are_one_list() -> None:
    from typing import get_args

    from zero_latency.config import FILE_STATES
    from zero_latency.engine import FileStateName
    from zero_latency.protocol import schema

    assert get_args(FileStateName) == FILE_STATES
    assert tuple(schema()["$defs"]["FileIndexState"]["enum"]) == FILE_STATES


def test_a_single_file_is_judged_as_the_walk_judges_it(tmp_path: Path) -> None:
    """One rule check for the walk and for single files (events, didOpen): for every file,
    `exclusion` gives the reason the walk gave, or None for the files the walk takes."""
    from zero_latency.config import Settings
    from zero_latency.files import WorkspaceFilter

    root = make_workspace(tmp_path / "ws")
    (root / "docs" / ".gitignore").write_text("\n*.txt\n!keep.txt\n")
    (root / "docs" / "keep.txt").write_text("kept by a negation\n")
    walk = WorkspaceFilter(root, Settings(exclude=("big.md",)))
    surveyed = list(walk.survey())
    taken = {s.rel for s in surveyed if s.reason is None}
    assert taken == {"blob.md", "docs/guide.md", "docs/keep.txt"}
    for item in surveyed:
        if not item.is_dir:
            assert walk.exclusion(item.rel) == item.reason, item
    assert walk.exclusion("docs/latin1.txt") == "ignored by docs/.gitignore:2: *.txt"
    assert walk.exclusion("big.md") == "excluded by the exclude setting: big.md"
    assert walk.exclusion("generated/deeper/x.md") == "ignored by .gitignore:2: generated/"
    assert walk.exclusion("node_modules/pkg/README.md") == "default ignore: node_modules"


def test_the_gitignore_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zero_latency import files

    monkeypatch.setattr(files, "GITIGNORE_CACHE_SIZE", 8)
    for n in range(20):
        folder = tmp_path / f"f{n}"
        folder.mkdir()
        (folder / ".gitignore").write_text("x/\n")
        assert files._gitignore(folder) is not None
    assert len(files._GITIGNORE_CACHE) <= 8
