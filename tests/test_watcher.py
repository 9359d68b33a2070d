"""The disk watcher on the real OS notifications (inotify here): what it reports, and that it
fails loudly (OSError, so the server falls back to scanning) where it cannot watch."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

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
