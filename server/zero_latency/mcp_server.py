"""`zl mcp`: a Model Context Protocol server on stdio, so that AI agents search the same index
as the editor.

Built on the official MCP Python SDK (`MCPServer`). It is one more client of the per-user
daemon: one session, opened on first use, on the workspace holding the folder the agent runs
in (the nearest indexed folder above it, else that folder, which then gets indexed and kept
fresh while the agent is connected). A daemon that went away is restarted on the next call.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from .client import ConnectionLost, RpcClient, RpcError, open_session
from .config import DEFAULT_LIMIT, DEFAULT_SEARCH_MODE, LANGUAGES
from .config import SearchMode as Mode
from .daemon import DaemonError

log = logging.getLogger(__name__)

Language = Literal["markdown", "restructuredtext", "python", "plaintext"]

INSTRUCTIONS = (
    "Zero-Latency searches this workspace's documentation (Markdown, reStructuredText, text, "
    "Python docstrings) by meaning and by keyword, locally. Use `search` to find the passage "
    "that answers a question before reading whole files; hits give the file, the line range "
    "and the heading path. `status` says what is indexed; `index` refreshes files you changed."
)


#: The server's messages a session keeps for the agent (the latest).
MAX_MESSAGES = 10


class Session:
    """The daemon session behind the tools: opened lazily, reopened if the daemon went away.
    Calls are serialised (the client is blocking) and run off the MCP event loop."""

    def __init__(self, workspace: Path, options: dict[str, Any]) -> None:
        self.workspace = workspace
        self.options = options  # settings from `zl mcp` flags
        self._client: RpcClient | None = None
        self._lock = threading.Lock()
        #: What the server told this session (an ignored setting, a refused folder, a model
        #: fallback): an editor shows it as a message; an agent reads it in the tool results.
        self.messages: list[str] = []

    def _told(self, method: str, params: Any) -> None:
        if method == "window/showMessage" and isinstance(params, dict):
            message = str(params.get("message", ""))
            if message and message not in self.messages:
                self.messages = [*self.messages, message][-MAX_MESSAGES:]

    def _open(self) -> RpcClient:
        client = open_session([self.workspace], {**self.options, "findIndexedRoot": True},
                              self._told)
        if client.request("docs/status")["workspaces"]:
            return client
        client.close()  # nothing indexed at or above it: index the folder itself
        return open_session([self.workspace], self.options, self._told)

    def call(self, method: str, params: Any = None) -> Any:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._client is None:
                        self._client = self._open()
                    return self._client.request(method, params)
                except ConnectionLost:
                    self._client = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def acall(self, method: str, params: Any = None) -> Any:
        try:
            return await anyio.to_thread.run_sync(self.call, method, params)
        except RpcError as err:
            raise ToolError(_advice(err)) from err
        except (DaemonError, OSError) as err:
            raise ToolError(f"the Zero-Latency daemon cannot be reached: {err}. Check that "
                            "`zl daemon status` works in a terminal.") from err

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _advice(err: RpcError) -> str:
    kind = err.data.get("kind") if isinstance(err.data, dict) else None
    if err.code == -32602:
        return f"invalid arguments: {err.message}"
    if kind == "modelUnavailable":
        return f"{err.message} (keyword mode still works: retry with mode='keyword')"
    return err.message


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    start, end = hit["range"]["start"]["line"], hit["range"]["end"]["line"]
    return {
        "path": hit.get("path") or hit["uri"],
        "uri": hit["uri"],
        "startLine": start + 1,  # 1-based, inclusive: what an agent opens with an editor
        "endLine": max(start + 1, end),
        "headingPath": hit["headingPath"],
        "snippet": hit["snippet"],
        "score": hit["score"],
        "language": hit.get("language"),
    }


def build_server(workspace: Path, options: dict[str, Any]) -> tuple[MCPServer, Session]:
    session = Session(workspace, options)
    server = MCPServer("zero-latency", instructions=INSTRUCTIONS)

    @server.tool(description=(
        "Search the workspace's documents for the passages that best answer `query` (a "
        "question or a few words). Returns hits best first: path, 1-based line range, heading "
        "path, a snippet and a score; `notice` says when results are partial or a folder was "
        "refused, `messages` what the server warned of. mode: 'hybrid' (default: meaning + "
        "keywords), "
        "'semantic' (meaning only) or 'keyword' (exact words, BM25). include/exclude: "
        f"workspace-relative globs such as 'docs/**'; languages: {', '.join(LANGUAGES)}."))
    async def search(query: str, limit: int = DEFAULT_LIMIT, mode: Mode = DEFAULT_SEARCH_MODE,
                     include: list[str] | None = None, exclude: list[str] | None = None,
                     languages: list[Language] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"query": query, "limit": limit, "mode": mode,
                                  "include": include or [], "exclude": exclude or []}
        if languages:
            params["languages"] = languages
        result = await session.acall("docs/search", params)
        answer = {"hits": [_hit(h) for h in result["hits"]], "mode": result.get("mode", mode),
                  "indexState": result.get("indexState"), "elapsedMs": result.get("elapsedMs")}
        if result.get("notice"):  # partial results, a refused folder: the agent must know
            answer["notice"] = result["notice"]
        if session.messages:
            answer["messages"] = session.messages
        return answer

    @server.tool(description=(
        "What is indexed: state (idle: complete; embedding: keyword search complete, meaning "
        "partial; indexing/loadingModel/error), files and chunks, the "
        "embedding model and the languages it covers, the workspace's languages (chunks by "
        "ISO 639-1 code; `languageNotice` when the model leaves some out), where the store is, "
        "the workspace folders, refused folders and why, "
        "and the server's warnings (`messages`: ignored settings and the like)."))
    async def status() -> dict[str, Any]:
        result: dict[str, Any] = await session.acall("docs/status")
        if session.messages:  # why something is not as asked: ignored settings, refusals
            result["messages"] = session.messages
        return result

    @server.tool(description=(
        "Bring the index up to date (the workspace, or only `paths`: files or folders, "
        "absolute or relative to the workspace). Unchanged content is never re-embedded "
        "unless force=true. Returns counts of indexed, unchanged, removed and skipped files."))
    async def index(paths: list[str] | None = None, force: bool = False) -> dict[str, Any]:
        uris = []
        for path in paths or []:
            try:
                uris.append((workspace / path).resolve().as_uri())  # an absolute path stays
            except (OSError, ValueError, RuntimeError) as err:  # a NUL, a symlink loop
                raise ToolError(f"paths: {path!r} is not a usable path: {err}") from err
        params: dict[str, Any] = {"force": force}
        if uris:
            params["uris"] = uris
        result: dict[str, Any] = await session.acall("docs/index", params)
        return result

    return server, session


def run_mcp(workspace: Path, options: dict[str, Any]) -> int:
    server, session = build_server(workspace, options)
    try:
        server.run("stdio")
    finally:
        session.close()
    return 0
