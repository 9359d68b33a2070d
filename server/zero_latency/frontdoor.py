"""A daemon connection's first answers, given before the language server has loaded.

A daemon that `zl serve` has just started needs ~0.3-0.5 s to import pygls and lsprotocol
(lsprotocol.types alone builds a thousand attrs classes), and the editor waits for its
`initialize` answer all that time. So the daemon binds its socket first and loads the
server on a thread (`preload`), and until it has loaded, each new connection meets a
`FrontDoor`: it answers `zl/hello` and `initialize` from what is cheap - the settings
(`prepare_session`, the very function the server's `initialize` handler runs) and the
capabilities as a plain dict, identical to what pygls would answer
(tests/test_frontdoor.py compares them over many client capabilities). Everything else waits,
in order. Once the server has loaded it replays every message the front door read, its own
answers muted, so that the session ends up exactly as if the server had read them itself,
and takes the connection over (`serve.serve_connection`).

What the front door cannot be sure to answer as the server would (params of an unusual
shape, invalid settings, any message before `initialize` other than `zl/hello`) it leaves to
the server: the same answer, only later. This module imports neither pygls's protocol nor
lsprotocol.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .framing import Frame, FrameParser, FramingError

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("zero_latency")

HELLO = "zl/hello"
INITIALIZE = "initialize"
#: pygls's header (its Content-Length counts characters: bodies are ASCII, json.dumps escapes).
_CONTENT_TYPE = "application/vscode-jsonrpc; charset=utf-8"


def preload() -> None:
    """Import what the front door needs, then the language server (on a thread: blocking).
    (Holding the server's imports back until the first initialize was answered, so as not
    to share the interpreter lock with them, gained nothing measurable: 372 vs 375 ms and
    171 vs 165 ms, in pairs of benchmarks/cold_start.py runs at loads 9 and 6.)"""
    import importlib

    from . import config

    config._converter()  # the settings' (cattrs), made on first use
    importlib.import_module("pygls.uris")
    # The server: pygls and lsprotocol (the long part).
    importlib.import_module("zero_latency.hub")
    importlib.import_module("zero_latency.lsp")


# --- the session's settings ----------------------------------------------------------------


class SetupError(ValueError):
    """initialize's params cannot start a session: the server answers InvalidParams with it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass
class SessionSetup:
    """What `initialize` decides for a session (lifecycle.initialize applies it)."""

    folders: list[Path]
    settings: Settings
    warnings: list[str]
    index_on_start: bool
    find_indexed_root: bool


def uri_path(uri: str) -> Path | None:
    """The canonical path of a file uri: one identity per file however the client spells it
    (percent escapes in either case, `file://localhost/`, `/./`, `..`, symlinks,
    /proc/self/root/…). None for other schemes and for paths that cannot be resolved."""
    from pygls.uris import to_fs_path

    from .paths import canonical_path

    if not uri.startswith("file:"):
        return None
    if uri[5:].lower().startswith("//localhost/"):  # RFC 8089: the local host, spelled out
        uri = "file://" + uri[len("file://localhost"):]
    path = to_fs_path(uri)
    return canonical_path(Path(path)) if path else None


def prepare_session(folder_uris: list[str], root_uri: str | None, options: Any,
                    home: str | None) -> SessionSetup:
    """The session `initialize` asks for: its folders (workspaceFolders, else rootUri), the
    connection's own options and its settings by the trust rule (config.load_settings), with
    the warnings to show. Raises SetupError."""
    from .config import WORKSPACE_SETTINGS_KEY, SettingsError, load_settings

    folders = [p for uri in folder_uris if (p := uri_path(uri))]
    if not folders and root_uri and (root := uri_path(root_uri)):
        folders = [root]
    if not options:  # absent, or empty: a Lua client's empty table is sent as [] (Neovim)
        options = {}
    if not isinstance(options, dict):
        raise SetupError("initializationOptions: must be an object")
    options = dict(options)
    for key in ("indexOnStart", "findIndexedRoot"):  # the connection's, not settings
        if not isinstance(options.get(key, False), bool):
            raise SetupError(f"initializationOptions.{key}: must be a boolean")
    index_on_start = options.pop("indexOnStart", True)
    find_indexed_root = options.pop("findIndexedRoot", False)
    workspace_settings = options.pop(WORKSPACE_SETTINGS_KEY, None)
    if not isinstance(workspace_settings, dict | None):
        raise SetupError(f"initializationOptions.{WORKSPACE_SETTINGS_KEY}: must be an object")
    try:
        settings, warnings = load_settings(folders[0] if folders else None, options,
                                           workspace_settings, home=home)
    except SettingsError as err:
        raise SetupError(str(err) if err.source else f"initializationOptions.{err}") from err
    return SessionSetup(folders, settings, warnings, index_on_start, find_indexed_root)


# --- the capabilities ------------------------------------------------------------------------

_ENCODINGS = ("utf-8", "utf-16", "utf-32")
#: The file operations the server handles (docsync's did*Files), with their registration
#: options, in the order of lsprotocol's FileOperationOptions fields.
_FILE_OPS = {"didCreate": True, "willCreate": False, "didRename": True, "willRename": False,
             "didDelete": True, "willDelete": False}
_FILE_OPS_OPTIONS = {"filters": [{"pattern": {"glob": "**/*"}}]}


def _section(parent: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """parent[key] when it is an object; {} when unset or null; None when it is anything else
    (the caller cannot tell what the server would make of it)."""
    if parent is None:
        return None
    value = parent.get(key)
    if value is None:
        return {}
    return value if isinstance(value, dict) else None


def server_capabilities(client: Any) -> dict[str, Any] | None:
    """What pygls's ServerCapabilitiesBuilder answers for the server's features, given the
    client's capabilities (raw JSON), as pygls serialises it; None where the front door cannot
    be sure (a value of another type than LSP's in a field the answer depends on)."""
    if not isinstance(client, dict):
        return None
    general, text_document, workspace = (_section(client, key) for key in (
        "general", "textDocument", "workspace"))
    sync = _section(text_document, "synchronization")
    file_ops = _section(workspace, "fileOperations")
    if general is None or sync is None or file_ops is None:
        return None
    # pygls: the client's first encoding that it supports too, else UTF-16.
    encoding = "utf-16"
    encodings = general.get("positionEncodings")
    if encodings is not None:
        if not isinstance(encodings, list) or not all(isinstance(e, str) for e in encodings):
            return None
        encoding = next((e for e in encodings if e in _ENCODINGS), "utf-16")
    text_sync: dict[str, Any] = {"openClose": True, "change": 2}  # Incremental
    # pygls: `client's value and feature registered`: False unless unset (the server has no
    # willSave handlers), then left out.
    for key in ("willSave", "willSaveWaitUntil"):
        value = sync.get(key)
        if value is not None:
            if not isinstance(value, bool):
                return None
            text_sync[key] = False
    text_sync["save"] = True
    operations: dict[str, Any] = {}
    for key, handled in _FILE_OPS.items():
        value = file_ops.get(key)
        if value is not None and not isinstance(value, bool):
            return None
        if value and handled:
            operations[key] = _FILE_OPS_OPTIONS
    return {
        "positionEncoding": encoding,
        "textDocumentSync": text_sync,
        "workspaceSymbolProvider": {"resolveProvider": False},
        "executeCommandProvider": {"commands": []},
        "workspace": {"workspaceFolders": {"supported": True, "changeNotifications": True},
                      "fileOperations": operations},
        "experimental": {"docs": {"version": 1}},
    }


def initialize_result(client_capabilities: Any) -> dict[str, Any] | None:
    """initialize's result as the server answers it, or None where the front door cannot be
    sure of it."""
    from . import __version__

    capabilities = server_capabilities(client_capabilities)
    if capabilities is None:
        return None
    return {"capabilities": capabilities,
            "serverInfo": {"name": "zero-latency", "version": __version__}}


def _optional(params: dict[str, Any], key: str, *types: type) -> bool:
    value = params.get(key)
    return value is None or (isinstance(value, types) and not isinstance(value, bool))


def _plain_initialize(params: Any) -> bool:
    """Whether initialize's params are of the shape lsprotocol reads without complaint (the
    fields an editor sends, each of its type); the front door leaves anything else to the
    server, whose answer it cannot foresee."""
    known = {"processId", "clientInfo", "locale", "rootPath", "rootUri",
             "initializationOptions", "capabilities", "trace", "workDoneToken",
             "workspaceFolders"}
    if not isinstance(params, dict) or not set(params) <= known:
        return False
    if not (_optional(params, "processId", int) and _optional(params, "rootUri", str)
            and _optional(params, "rootPath", str) and _optional(params, "locale", str)
            and _optional(params, "workDoneToken", int, str)):
        return False
    if params.get("trace") not in (None, "off", "messages", "verbose"):
        return False
    info = params.get("clientInfo")
    if info is not None and not (isinstance(info, dict) and set(info) <= {"name", "version"}
                                 and isinstance(info.get("name"), str)
                                 and _optional(info, "version", str)):
        return False
    folders = params.get("workspaceFolders")
    return folders is None or (isinstance(folders, list) and all(
        isinstance(f, dict) and set(f) == {"uri", "name"} and isinstance(f["uri"], str)
        and isinstance(f["name"], str) for f in folders))


def _text(value: Any, longest: int) -> bool:
    """A string of 1 to `longest` characters, valid Unicode (no lone surrogate)."""
    if not isinstance(value, str) or not 1 <= len(value) <= longest:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain_hello(params: Any) -> bool:
    """zl/hello's params as a client sends them, a subset of what the schema allows
    (HelloParams; protocol.validate_params would load jsonschema on the way to the answer)."""
    if not isinstance(params, dict) or not set(params) <= {"version", "home"}:
        return False
    home = params.get("home", "/")
    return _text(params.get("version"), 64) and _text(home, 4095) and home.startswith("/")


# --- the connection --------------------------------------------------------------------------


def frame(message: dict[str, Any]) -> bytes:
    """A message framed exactly as pygls frames it."""
    body = json.dumps(message)
    return (f"Content-Length: {len(body)}\r\nContent-Type: {_CONTENT_TYPE}\r\n\r\n{body}"
            .encode())


class FrontDoor:
    """One connection until the server has loaded: what it read, what it answered."""

    def __init__(self, write: Callable[[bytes], None],
                 on_setup: Callable[[SessionSetup], None] | None = None) -> None:
        self.write = write
        #: Told the session initialize set up, once answered (the daemon loads its model).
        self.on_setup = on_setup
        #: Reads on where the front door stopped (a frame may be split across reads).
        self.parser = FrameParser()
        #: Every message read, in order: the server replays them all.
        self.items: list[Frame | FramingError] = []
        #: The indexes (in `items`) of the messages answered here: replayed muted.
        self.answered: set[int] = set()
        #: The session initialize set up here (the server's initialize takes it as it is).
        self.setup: SessionSetup | None = None
        self._client_home: str | None = None
        self._waiting = False  # a message was left to the server: so is every later one

    def feed(self, data: bytes) -> None:
        for item in self.parser.feed(data):
            self.items.append(item)
            if not self._waiting and self._answer(item, len(self.items) - 1):
                self.answered.add(len(self.items) - 1)
            else:
                self._waiting = True

    def _answer(self, item: Frame | FramingError, index: int) -> bool:
        if not isinstance(item, Frame):
            return False
        try:
            message = json.loads(item.body)
        except (ValueError, UnicodeDecodeError):
            return False
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return False
        msg_id = message.get("id")
        if not isinstance(msg_id, int | str) or isinstance(msg_id, bool):
            return False
        method = message.get("method")
        params = message.get("params")
        if method == HELLO and index == 0:
            return self._hello(msg_id, params)
        if method == INITIALIZE and len(self.answered) == index:  # all before it answered
            return self._initialize(msg_id, params)
        return False

    def _hello(self, msg_id: int | str, params: Any) -> bool:
        from . import __version__

        if not _plain_hello(params):
            return False  # the server's answer (an error, or a result), later
        self._client_home = params.get("home")
        self._respond(msg_id, {"version": __version__, "pid": os.getpid()})
        return True

    def _initialize(self, msg_id: int | str, params: Any) -> bool:
        result = initialize_result(params.get("capabilities")) if _plain_initialize(
            params) else None
        if result is None:
            # Logged: a client whose every start waits for the server should be found.
            log.info("initialize left to the server: params of a shape the front door does "
                     "not answer for")
            return False
        folder_uris = [f["uri"] for f in params.get("workspaceFolders") or []]
        try:
            setup = prepare_session(folder_uris, params.get("rootUri"),
                                    params.get("initializationOptions"), self._client_home)
        except SetupError:
            return False  # InvalidParams from the server, later
        # Shown as lifecycle.initialize shows them, before its answer (the server's replay of
        # this initialize logs them, and sends the window/logMessage copies).
        for warning in setup.warnings:
            self.write(frame({"params": {"type": 2, "message": warning},
                              "method": "window/showMessage", "jsonrpc": "2.0"}))
        self.setup = setup
        self._respond(msg_id, result)
        if self.on_setup is not None:
            self.on_setup(setup)
        return True

    def _respond(self, msg_id: int | str, result: Any) -> None:
        self.write(frame({"id": msg_id, "jsonrpc": "2.0", "result": result}))
