"""Disk watching for editors that report no file events (a plain LSP client, or Neovim on Linux,
which turns watched-file registration off): watchdog's native observer (inotify, FSEvents,
ReadDirectoryChangesW) reports changed paths as they happen. Where it cannot start for a folder
(inotify's watch limit reached, a filesystem without notifications) that folder is watched by
watchdog's `PollingObserver` instead: a stat scan every POLL_INTERVAL_S that reports the same
events. A folder that does not exist raises OSError.

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
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

#: Seconds between two scans of a folder the OS cannot watch for us (unchanged files cost one
#: stat each per scan).
POLL_INTERVAL_S = 5.0
#: Events that change nothing on disk.
_READ_ONLY_EVENTS = frozenset({"opened", "closed_no_write"})

ChangedFn = Callable[[Path, list[Path]], None]  # (workspace root, changed files)
RescanFn = Callable[[Path], None]  # (workspace root): a folder moved or vanished


class DiskWatcher:
    def __init__(self, on_change: ChangedFn, on_rescan: RescanFn,
                 poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self._on_change = on_change
        self._on_rescan = on_rescan
        self._native: BaseObserver = Observer()
        self._poll_interval_s = poll_interval_s
        self._polling: BaseObserver | None = None  # started for the first folder that needs it
        self._watches: dict[Path, tuple[BaseObserver, ObservedWatch]] = {}
        self._lock = threading.Lock()
        self._started: list[BaseObserver] = []

    def watch(self, root: Path) -> None:
        """Watch `root` recursively: natively, else by polling. Raises OSError when `root` is
        not a folder."""
        with self._lock:
            if root in self._watches:
                return
            if not root.is_dir():
                raise NotADirectoryError(f"cannot watch {root}: not a folder")
            handler = _Handler(root, self)
            try:
                self._watches[root] = (self._native, self._schedule(self._native, root, handler))
            except OSError as err:
                log.warning("cannot watch %s for changes (%s): scanning it every %.0f s instead",
                            root, err, self._poll_interval_s)
                if self._polling is None:
                    self._polling = PollingObserver(timeout=self._poll_interval_s)
                self._watches[root] = (self._polling,
                                       self._schedule(self._polling, root, handler))

    def is_polling(self, root: Path) -> bool:
        """Whether `root` is watched by scanning (the OS would not watch it)."""
        with self._lock:
            entry = self._watches.get(root)
            return entry is not None and entry[0] is self._polling

    def _schedule(self, observer: BaseObserver, root: Path,
                  handler: FileSystemEventHandler) -> ObservedWatch:
        if observer not in self._started:
            observer.daemon = True
            observer.start()
            self._started.append(observer)
        return observer.schedule(handler, str(root), recursive=True)

    def unwatch(self, root: Path) -> None:
        with self._lock:
            entry = self._watches.pop(root, None)
            if entry is not None:
                entry[0].unschedule(entry[1])

    def close(self) -> None:
        with self._lock:
            self._watches.clear()
            for observer in self._started:
                observer.stop()
            for observer in self._started:
                observer.join(timeout=2)
            self._started = []


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
