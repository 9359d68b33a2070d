"""Disk watching for editors that report no file events (a plain LSP client, or Neovim on Linux,
which turns watched-file registration off): watchdog's native observer (inotify, FSEvents,
ReadDirectoryChangesW) reports changed paths as they happen. Where it cannot start (inotify's
watch limit reached, a filesystem without notifications) `watch` raises OSError and the caller
falls back to a periodic stat scan.

Callbacks run on watchdog's observer thread: they must only hand the work on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

log = logging.getLogger(__name__)

#: Events that change nothing on disk.
_READ_ONLY_EVENTS = frozenset({"opened", "closed_no_write"})

ChangedFn = Callable[[Path, list[Path]], None]  # (workspace root, changed files)
RescanFn = Callable[[Path], None]  # (workspace root): a folder moved or vanished


class DiskWatcher:
    def __init__(self, on_change: ChangedFn, on_rescan: RescanFn) -> None:
        self._on_change = on_change
        self._on_rescan = on_rescan
        self._observer: BaseObserver = Observer()
        self._observer.daemon = True
        self._watches: dict[Path, ObservedWatch] = {}
        self._lock = threading.Lock()
        self._started = False

    def watch(self, root: Path) -> None:
        """Watch `root` recursively. Raises OSError when the platform watcher cannot."""
        with self._lock:
            if root in self._watches:
                return
            if not self._started:
                self._observer.start()
                self._started = True
            self._watches[root] = self._observer.schedule(_Handler(root, self), str(root),
                                                          recursive=True)

    def unwatch(self, root: Path) -> None:
        with self._lock:
            watch = self._watches.pop(root, None)
            if watch is not None:
                self._observer.unschedule(watch)

    def close(self) -> None:
        with self._lock:
            self._watches.clear()
            if self._started:
                self._observer.stop()
                self._observer.join(timeout=2)
                self._started = False


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, watcher: DiskWatcher) -> None:
        self.root = root
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _READ_ONLY_EVENTS:
            return
        try:
            if event.is_directory:
                # A moved or deleted folder takes its files along without an event each.
                if event.event_type in ("moved", "deleted"):
                    self.watcher._on_rescan(self.root)
                return
            paths = [Path(os.fsdecode(event.src_path))]
            if event.dest_path:  # a move (editors often save by renaming a temp file)
                paths.append(Path(os.fsdecode(event.dest_path)))
            self.watcher._on_change(self.root, paths)
        except Exception:  # the observer thread must survive whatever a callback does
            log.exception("file watcher callback failed")
