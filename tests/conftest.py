"""Shared fixtures: the real bundled model, real Qdrant Edge stores in temp dirs, real corpora
from ../shared/data, and a real JSON-RPC client talking to `zl serve` over stdio."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zero_latency import daemon
from zero_latency.config import Settings
from zero_latency.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZL_SHARED", ROOT.parent / "shared"))
CORPORA = SHARED / "data" / "corpora"
SERVER_COMMAND = [sys.executable, "-m", "zero_latency", "serve"]

RUST_CHAPTERS = [
    "ch04-01-what-is-ownership.md",
    "ch04-02-references-and-borrowing.md",
    "ch08-01-vectors.md",
    "ch09-02-recoverable-errors-with-result.md",
    "ch16-01-threads.md",
]


#: Fixtures wider than one test (module-scoped servers) share this daemon; stopped at the end.
SESSION_DAEMON_DIR = Path(tempfile.mkdtemp(prefix="zl-run-", dir="/tmp"))
os.environ[daemon.RUNTIME_DIR_ENV] = str(SESSION_DAEMON_DIR)


def pytest_sessionfinish(session: pytest.Session) -> None:
    daemon.stop(SESSION_DAEMON_DIR)
    shutil.rmtree(SESSION_DAEMON_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def daemon_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own daemon (its own runtime folder: short, for the socket path's
    limit), stopped when the test ends, so that no test sees another's engine."""
    folder = Path(tempfile.mkdtemp(prefix="zl-run-", dir="/tmp"))
    monkeypatch.setenv(daemon.RUNTIME_DIR_ENV, str(folder))
    yield folder
    daemon.stop(folder)
    shutil.rmtree(folder, ignore_errors=True)


def need_corpus(name: str) -> Path:
    path = CORPORA / name
    if not path.is_dir():
        pytest.skip(f"corpus {path} is absent (it lives in ../shared beside the project)")
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A few real Rust-book chapters in a fresh workspace folder."""
    src = need_corpus("rust-book")
    ws = tmp_path / "ws"
    (ws / "book").mkdir(parents=True)
    for name in RUST_CHAPTERS:
        shutil.copy(src / name, ws / "book" / name)
    return ws


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model cache folder of this test's own, and a home without one: what the engine builds
    or decides for a model (its optimised graph, its OpenVINO verdict) is made here."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "cache"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(model="bundled", storePath=str(tmp_path / "store"))


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = Engine(settings)
    yield eng
    eng.close()


def plain(obj: Any) -> Any:
    """pygls hands custom results back as namedtuples: turn them into JSON-like data."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj
