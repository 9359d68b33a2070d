"""The engines of one process, shared by every client connected to it.

In the daemon every editor window, `zl` command and agent is a connection; they must share one
engine (one model in memory, one writer per store) whenever their settings lead to the same
index. Settings that only shape one connection's behaviour (`debounceMs`) are not part of
the key. Unsaved buffers belong to the connection that sent them: `release` hands them back
to the disk when it goes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

#: Per-connection settings: two clients differing only in these share an engine.
SESSION_ONLY_SETTINGS = {"debounceMs": 0}

Warn = Callable[[str], None]


class EngineHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[Settings, Engine] = {}
        # Who hears an engine's warnings (a model fallback, a store problem): its clients.
        self._listeners: dict[int, dict[object, Warn]] = {}
        #: What an engine warmed ahead (`warm`) said before any client acquired it: told to
        #: the first one that does.
        self._unheard: dict[int, list[str]] = {}
        self.closed = False
        #: What `zl daemon status` shows (the daemon fills it in; `zl/daemon` answers it).
        self.info: Callable[[], dict[str, Any]] = lambda: {
            "pid": os.getpid(), "socket": None, "startedAt": time.time(), "idleSeconds": 0,
            "clients": self.clients(), "workspaces": [r.as_uri() for r in self.open_roots()]}
        #: zl/retire (the daemon sets it): a client of another version asks this process to
        #: step aside; None where there is nothing to retire (a `--no-daemon` server).
        self.retire: Callable[[str], dict[str, Any]] | None = None

    def acquire(self, settings: Settings, client: object, warn: Warn) -> Engine:
        """The engine for `settings`, created on first use (blocking: call off the loop)."""
        from .engine import Engine

        key = dataclasses.replace(settings, **SESSION_ONLY_SETTINGS)  # type: ignore[arg-type]
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = Engine(settings)
                engine.warn = functools.partial(self._warn, engine)
                engine.siblings = self.engines
                self._engines[key] = engine
            self._listeners.setdefault(id(engine), {})[client] = warn
            unheard = self._unheard.pop(id(engine), [])
        for message in unheard:
            warn(message)
        return engine

    def warm(self, settings: Settings) -> None:
        """Create the engine for `settings` and load its model ahead of the session that will
        acquire it (the daemon's front door has answered that session's initialize; its
        language server is still loading). Blocking: call off the loop. Nothing is done that
        the session would not do itself: a model that fails to load is loaded again by it."""
        from .engine import Engine

        key = dataclasses.replace(settings, **SESSION_ONLY_SETTINGS)  # type: ignore[arg-type]
        with self._lock:
            if key in self._engines or self.closed:
                return
            engine = Engine(settings)
            engine.warn = functools.partial(self._warn, engine)
            engine.siblings = self.engines
            self._engines[key] = engine
        try:
            engine.load_model()
        except Exception as err:  # the session's own load meets it again, and reports it
            log.warning("loading the model ahead failed: %r", err)
            engine._model_loaded = False

    def release(self, client: object) -> None:
        """`client` is gone: it no longer hears warnings (its engine stays warm)."""
        with self._lock:
            for listeners in self._listeners.values():
                listeners.pop(client, None)

    def clients(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._listeners.values())

    def engines(self) -> list[Engine]:
        with self._lock:
            return list(self._engines.values())

    def busy(self) -> bool:
        """Whether any engine still has work (an index run, queued edits)."""
        return any(engine.busy() for engine in self.engines())

    def open_roots(self) -> list[Path]:
        """The folders open in any engine, each once (two clients whose settings give a folder
        two indexes still name one folder)."""
        return list(dict.fromkeys(root for engine in self.engines() for root in engine.indexes))

    def _warn(self, engine: Engine, message: str) -> None:
        log.warning("%s", message)
        with self._lock:
            listeners = list(self._listeners.get(id(engine), {}).values())
            if id(engine) not in self._listeners:  # warmed ahead: its first client hears it
                self._unheard.setdefault(id(engine), []).append(message)
        for warn in listeners:
            warn(message)

    def close(self) -> None:
        """Flush and close every engine (the stores stay consistent for the next process)."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
            self.closed = True
        # Those that share another's model first: it is closed with its owner, and they must
        # be done with it by then.
        engines.sort(key=lambda engine: engine.owns_model())
        for engine in engines:
            try:
                engine.close()
            except Exception as err:  # the others must still close
                log.error("closing an engine: %s", err)
