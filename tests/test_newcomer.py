"""Issue 20, "tried as a new user would": each thing a newcomer tripped on in the CLI, on the
real `zl` command and its real daemon."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ZL = [sys.executable, "-m", "zero_latency"]


def zl(*args: str, cwd: Path | None = None,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZL, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=env)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'model = "bundled"\nstorePath = "{tmp_path / "store"}"\n')
    monkeypatch.setenv("ZL_CONFIG", str(path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return path


def notes(root: Path, count: int) -> Path:
    root.mkdir()
    for n in range(count):
        (root / f"n{n}.md").write_text(f"# Note {n}\n\nThe aardvark {n} digs at dawn.\n")
    return root


def test_bad_arguments_are_answered_before_any_daemon_starts(
        config: Path, daemon_dir: Path) -> None:
    too_many = zl("search", "-n", "500", "aardvark")
    assert too_many.returncode == 2
    assert "--limit/-n: 500 is out of range: 1 to 100" in too_many.stderr
    typo = zl("search", "--limt", "3", "aardvark")
    assert typo.returncode == 2
    assert "--limt (did you mean --limit?)" in typo.stderr, typo.stderr
    assert list(daemon_dir.iterdir()) == [], "no daemon was started for a usage error"


def test_a_bad_config_value_names_the_file(config: Path) -> None:
    config.write_text(config.read_text() + "debounceMs = \"soon\"\n")
    failed = zl("status")
    assert failed.returncode == 2
    assert f"{config}: setting 'debounceMs': must be an integer" in failed.stderr
    assert "initializationOptions" not in failed.stderr


def test_a_refusal_is_said_once(config: Path, tmp_path: Path) -> None:
    home = notes(tmp_path / "home", 1)
    refused = zl("index", str(home), env={**os.environ, "HOME": str(home)})
    assert refused.returncode == 2
    assert refused.stderr.count("is a home folder") == 1, refused.stderr


def test_counts_read_as_english_and_hints_keep_the_filters(config: Path, tmp_path: Path) -> None:
    ws = notes(tmp_path / "ws", 3)
    (ws / "huge.md").write_text("# Huge\n\n" + "word " * 1000)
    config.write_text(config.read_text() + "maxFileBytes = 1000\n")
    indexed = zl("index", str(ws))
    assert indexed.returncode == 0, indexed.stderr
    assert "4 files (3 indexed" in indexed.stdout, indexed.stdout
    one = zl("search", "aardvark 1 digs", "-n", "1", "--workspace", str(ws))
    assert one.returncode == 0, one.stderr
    assert "1 hit in" in one.stderr and "1 hits" not in one.stderr, one.stderr
    page = zl("status", "--files", "--state", "indexed", "--limit", "1", "--workspace", str(ws))
    assert page.returncode == 0, page.stderr
    assert "(1 chunk)" in page.stdout, page.stdout
    assert "1-1 of 3 indexed files" in page.stderr, page.stderr
    assert "next page: zl status --files --state indexed --workspace" in page.stderr
    none = zl("status", "--files", "--state", "pending", "--workspace", str(ws))
    assert "no pending files under" in none.stderr and "0-0" not in none.stderr, none.stderr


def test_the_cache_folder_is_user_only(config: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled model stands in for the default one with a warning, remembered in the
    cache folder, which is created user-only."""
    config.write_text(f'storePath = "{tmp_path / "store"}"\n')  # the default model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    ws = notes(tmp_path / "ws", 1)
    indexed = zl("index", str(ws), "--json")
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout)["files"] == 1
    cache = tmp_path / "cache" / "zero-latency"
    assert cache.is_dir(), indexed.stderr
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
