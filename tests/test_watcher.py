"""The disk watcher on the real OS notifications (inotify here): what it reports, that a folder
the OS will not watch is scanned instead (watchdog's PollingObserver), and that a folder that
is not there fails loudly (OSError)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from watchdog.observers.api import ObservedWatch

from zero_latency.watcher import DiskWatcher


class Recorder:
    def __init__(self) -> None:
        self.changed: list[Path] = []
        self.rescans: list[Path] = []
        self.lock = threading.Lock()

    def on_change(self, _root: Path, paths: list[Path]) -> None:
        with self.lock:
            self.changed += paths

    def on_rescan(self, root: Path) -> None:
        with self.lock:
            self.rescans.append(root)

    def wait_for(self, check: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if check():
                    return
            time.sleep(0.02)
        raise AssertionError(f"not seen in {timeout} s: changed={self.changed} "
                             f"rescans={self.rescans}")


def test_reports_writes_moves_and_vanished_folders(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "docs").mkdir(parents=True)
    control = tmp_path / "control"  # stays watched: shows events still flow after unwatch
    control.mkdir()
    seen = Recorder()
    watcher = DiskWatcher(seen.on_change, seen.on_rescan)
    watcher.watch(root)
    watcher.watch(control)
    try:
        note = root / "docs" / "note.md"
        note.write_text("# Note\n")
        seen.wait_for(lambda: note in seen.changed)
        temp = root / "docs" / ".note.md.swp"
        temp.write_text("# Note, saved\n")
        temp.replace(note)  # a save by rename: both ends are reported
        seen.wait_for(lambda: seen.changed.count(note) >= 2 and temp in seen.changed)
        shutil.move(str(root / "docs"), str(tmp_path / "gone"))
        seen.wait_for(lambda: root in seen.rescans)
        watcher.unwatch(root)
        after = root / "after.md"
        after.write_text("unwatched\n")
        # A file written later in a folder still watched: once it is reported, the watcher
        # has had every chance to report after.md too (no fixed sleep, however slow the machine).
        marker = control / "marker.md"
        marker.write_text("still watched\n")
        seen.wait_for(lambda: marker in seen.changed, timeout=60)
        assert after not in seen.changed
    finally:
        watcher.close()


def test_a_folder_that_cannot_be_watched_raises_oserror(tmp_path: Path) -> None:
    watcher = DiskWatcher(lambda *_: None, lambda *_: None)
    try:
        with pytest.raises(OSError):
            watcher.watch(tmp_path / "does-not-exist")
    finally:
        watcher.close()


def test_a_folder_the_os_will_not_watch_is_scanned_instead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAULT INJECTED: the native observer refuses the folder as inotify does at its watch limit
    (ENOSPC); reaching the real limit means lowering a system-wide sysctl other processes share.
    The polling observer then reports the same events, and a folder beside it is still
    watched natively."""
    polled, native = tmp_path / "polled", tmp_path / "native"
    polled.mkdir()
    native.mkdir()
    seen = Recorder()
    watcher = DiskWatcher(seen.on_change, seen.on_rescan, poll_interval_s=0.2)
    try:
        schedule = watcher._native.schedule

        def refuse(handler: object, path: str, recursive: bool = False) -> ObservedWatch:
            if Path(path) == polled:
                raise OSError(28, "inotify watch limit reached")
            return schedule(handler, path, recursive=recursive)  # type: ignore[arg-type]

        monkeypatch.setattr(watcher._native, "schedule", refuse)
        watcher.watch(polled)
        watcher.watch(native)
        assert watcher.is_polling(polled) and not watcher.is_polling(native)
        note = polled / "note.md"
        note.write_text("# Note\n")
        seen.wait_for(lambda: note in seen.changed)
        (polled / "sub").mkdir()
        (polled / "sub" / "deep.md").write_text("deep\n")
        seen.wait_for(lambda: polled / "sub" / "deep.md" in seen.changed)
        shutil.rmtree(polled / "sub")
        seen.wait_for(lambda: polled in seen.rescans)
        other = native / "other.md"
        other.write_text("natively\n")
        seen.wait_for(lambda: other in seen.changed)
        watcher.unwatch(polled)
    finally:
        watcher.close()
