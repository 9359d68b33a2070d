"""Command line: `zl index`, `zl search`, `zl status`, `zl serve`, `zl mcp`, `zl daemon`.

`index`, `search` and `status` are clients of the per-user daemon (started when none runs), so
their answers are the editor's answers, from a warm model and the live index with its unsaved
edits; `--no-daemon` runs the engine in this process instead. `--json` prints the same shapes
as the docs/index, docs/search and docs/status results of the wire contract
(protocol/spec.md). Logs and progress go to stderr; stdout carries results only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import (
    DEFAULT_LIMIT,
    DEFAULT_SEARCH_MODE,
    FILE_STATES,
    LANGUAGES,
    SEARCH_MODES,
    SettingsError,
    load_settings,
)
from .errors import ZeroLatencyError

if TYPE_CHECKING:  # `zl serve` must start fast: the engine loads after `initialize`
    from .client import RpcClient
    from .engine import Engine
    from .indexer import ProgressFn

log = logging.getLogger("zero_latency")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    server_side = args.command in ("serve", "daemon")
    handler = logging.StreamHandler(sys.stderr)
    # On a terminal, log lines (warnings name files) get their control characters escaped.
    formatter = logging.Formatter if server_side else _TerminalSafeFormatter
    handler.setFormatter(formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"
                                   if server_side else "zl: %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if server_side else logging.WARNING,
        handlers=[handler],
    )
    # pygls logs every message it sends at INFO: keep stderr readable.
    logging.getLogger("pygls").setLevel(logging.WARNING)
    if args.command == "serve":
        if not args.no_daemon:
            from .bridge import run_bridge

            return run_bridge()
        from .lsp import serve

        return serve()
    from .client import RpcError
    from .daemon import DaemonError

    try:
        return int(args.handler(args))
    except (ZeroLatencyError, SettingsError, RpcError, DaemonError) as err:
        message = err.message if isinstance(err, ZeroLatencyError | RpcError) else str(err)
        print(terminal_safe(f"zl: error: {message}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zl: interrupted", file=sys.stderr)
        return 130


# C0 and C1 controls and DEL (ESC starts the sequences that retitle, clear or rewrite a
# terminal), and the bidirectional overrides that make text read differently from what it is.
_UNSAFE_FOR_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                                  "\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with every control character shown as a visible escape (`\\x1b`, `\\u202e`):
    file names, headings and snippets come from the files, and a terminal would obey the
    escape sequences in them. (--json output stays exact: JSON escapes them itself.)"""
    return _UNSAFE_FOR_TERMINAL.sub(lambda m: ascii(m.group())[1:-1], text)


class _TerminalSafeFormatter(logging.Formatter):
    """Log lines for a terminal, control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl", description="Local, private, semantic search for your documents.")
    parser.add_argument("--version", action="version", version=f"zero-latency {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        settings_flags(p)
        p.add_argument("--json", action="store_true", help="print the wire-contract JSON shape")
        p.add_argument("--no-daemon", action="store_true",
                       help="run the engine in this process instead of the shared daemon")

    def settings_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="Hub repo id, model folder, or 'bundled'")
        p.add_argument("--device", choices=["cpu", "cuda"])
        p.add_argument("--store-path", help="folder for the embedded stores")
        p.add_argument("--store-url", help="a Qdrant server or cluster instead of the embedded "
                                           "store (API key: $ZL_STORE_API_KEY)")

    p = sub.add_parser("index", help="index (or re-index) a folder")
    p.add_argument("path", nargs="?", default=".", help="workspace folder (default: .)")
    p.add_argument("--force", action="store_true", help="re-embed even unchanged content")
    p.add_argument("--rebuild", action="store_true",
                   help="delete this workspace's store first (after a model change or damage)")
    common(p)
    p.set_defaults(handler=cmd_index)

    p = sub.add_parser("search", help="search the index of the current workspace")
    p.add_argument("query", nargs="+")
    p.add_argument("--limit", "-n", type=int, default=DEFAULT_LIMIT)
    p.add_argument("--mode", choices=SEARCH_MODES, default=DEFAULT_SEARCH_MODE)
    p.add_argument("--path", action="append", default=[], metavar="GLOB",
                   help="only files matching this workspace-relative glob (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    p.add_argument("--language", action="append", dest="languages", metavar="LANG",
                   choices=LANGUAGES, help="only files in this language (repeatable)")
    p.add_argument("--workspace", help="workspace folder (default: the indexed folder "
                                       "holding the current directory)")
    common(p)
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("status", help="what is indexed, with which model, where")
    p.add_argument("--workspace")
    p.add_argument("--files", action="store_true",
                   help="each file and its state: indexed, keywordOnly, pending, or skipped "
                        "with the reason (why is my file not found?)")
    p.add_argument("--state", action="append", dest="states", default=[],
                   choices=FILE_STATES, help="with --files: only files in this state "
                                             "(repeatable)")
    p.add_argument("--offset", type=int, default=0, help="with --files: the page's first file")
    p.add_argument("--limit", type=int, default=100, help="with --files: files per page "
                                                           "(1-1000)")
    common(p)
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("serve", help="the language server on stdio, for editors (forwards to "
                                     "the shared daemon)")
    p.add_argument("--no-daemon", action="store_true",
                   help="serve from this process, with an engine of its own")

    p = sub.add_parser("mcp", help="a Model Context Protocol server on stdio, for AI agents")
    p.add_argument("--workspace", help="workspace folder (default: the current directory)")
    settings_flags(p)
    p.set_defaults(handler=cmd_mcp)

    p = sub.add_parser("daemon", help="the shared per-user engine: run, status, stop")
    p.add_argument("action", choices=["run", "status", "stop"])
    p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="exit after this long with no client (default: "
                        "$ZL_DAEMON_IDLE_SECONDS or 300)")
    p.set_defaults(handler=cmd_daemon)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gives (they outrank the config files)."""
    overrides: dict[str, Any] = {}
    if args.model:
        overrides["model"] = args.model
    if args.device:
        overrides["device"] = args.device
    if args.store_path:
        overrides["storePath"] = str(Path(args.store_path).expanduser().resolve())
    if args.store_url:
        overrides["storeUrl"] = args.store_url
    if os.environ.get("ZL_STORE_API_KEY"):  # not a flag: it would show in `ps`
        overrides["storeApiKey"] = os.environ["ZL_STORE_API_KEY"]
    return overrides


def _engine(args: argparse.Namespace, workspace: Path) -> Engine:
    settings, warnings = load_settings(workspace, _overrides(args))
    for warning in warnings:
        log.warning("%s", warning)
    from .engine import Engine

    return Engine(settings)


def _session(args: argparse.Namespace, folder: Path, find_root: bool,
             on_progress: Any = None) -> RpcClient:
    """A session with the daemon on `folder` (the nearest indexed folder above it when
    `find_root`), which does not start indexing by itself: the command says what it wants."""
    from .client import open_session

    def notified(method: str, params: Any) -> None:
        if method == "window/showMessage" and isinstance(params, dict):
            print(f"zl: {terminal_safe(str(params.get('message', '')))}", file=sys.stderr)
        elif method == "$/progress" and on_progress is not None and isinstance(params, dict):
            on_progress(params.get("value") or {})

    options = {**_overrides(args), "indexOnStart": False, "findIndexedRoot": find_root}
    return open_session([folder], options, notified)


def cmd_index(args: argparse.Namespace) -> int:
    root = Path(args.path).expanduser().resolve()
    if not root.is_dir():
        print(f"zl: error: {root} is not a folder", file=sys.stderr)
        return 2
    bar = _progress_bar(args.json)

    def progress(done: int, total: int, message: str) -> None:
        # Two passes: files read (keyword index), then chunks embedded (with rate and ETA
        # in `message`); the bar switches its unit between them.
        if bar is not None:
            unit = "chunk" if message.startswith("chunks embedded") else "file"
            if bar.unit != unit:
                bar.unit = unit
                bar.set_description("embedding" if unit == "chunk" else "reading")
            bar.total = total
            bar.n = done
            bar.set_postfix_str(message.partition(" · ")[2] if unit == "chunk" else "",
                                refresh=False)
            bar.refresh()

    try:
        if args.no_daemon:
            report = _index_here(args, root, progress)
        else:
            report = _index_in_daemon(args, root, progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(root, report)
    return 0


def _index_here(args: argparse.Namespace, root: Path, progress: ProgressFn) -> dict[str, Any]:
    engine = _engine(args, root)
    engine.load_model()
    try:
        if args.rebuild:
            engine.rebuild_workspace(root)
        else:
            engine.open_workspace(root)
        return engine.index([root], force=args.force, progress=progress).to_wire()
    finally:
        engine.close()


def _index_in_daemon(args: argparse.Namespace, root: Path,
                     progress: ProgressFn) -> dict[str, Any]:
    def on_progress(value: dict[str, Any]) -> None:
        # The server reports "done/total what" (protocol/spec.md, docs/index progress),
        # numbers with thousands separators.
        done, _, rest = str(value.get("message", "")).replace(",", "").partition("/")
        total, _, what = rest.partition(" ")
        if done.isdigit() and total.isdigit():
            progress(int(done), int(total), what)

    client = _session(args, root, find_root=False, on_progress=on_progress)
    try:
        result: dict[str, Any] = client.request("docs/index", {
            "workDoneToken": "zl-index", "force": args.force, "rebuild": args.rebuild})
        return result
    finally:
        client.close()


def _progress_bar(quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="file", file=sys.stderr, desc="reading", leave=False)


def _print_report(root: Path, report: dict[str, Any]) -> None:
    seconds = report["elapsedMs"] / 1000
    rate = report["embeddedChunks"] / seconds if seconds > 0 else 0.0
    print(terminal_safe(
        f"{root}: {report['files']} files ({report['indexedFiles']} indexed, "
        f"{report['unchangedFiles']} unchanged, {report['removedFiles']} removed, "
        f"{report['skippedFiles']} skipped), {report['chunks']} chunks, "
        f"{report['embeddedChunks']} embedded in {seconds:.1f} s ({rate:.1f} chunks/s)"))
    for error in report["errors"]:
        print(terminal_safe(f"  {error['uri']}: {error['message']}"), file=sys.stderr)


def _workspace(args: argparse.Namespace) -> tuple[Engine, Path]:
    start = Path(args.workspace or os.getcwd()).expanduser().resolve()
    engine = _engine(args, start)
    engine.load_model()
    root = start if args.workspace else engine.indexed_root(start)
    if root is None:
        engine.close()
        raise ZeroLatencyError(
            f"no index for {start} or any folder above it (model {engine.model_id}). "
            "Run `zl index <folder>` first, or pass --workspace.")
    engine.open_workspace(root)
    return engine, root


def _no_index(start: Path, model: str) -> ZeroLatencyError:
    return ZeroLatencyError(
        f"no index for {start} or any folder above it (model {model}). "
        "Run `zl index <folder>` first, or pass --workspace.")


def _query(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"query": " ".join(args.query), "limit": args.limit,
                              "mode": args.mode, "include": args.path,
                              "exclude": args.exclude}
    if args.languages:
        params["languages"] = args.languages
    return params


def _ask_daemon(args: argparse.Namespace, method: str | None = None,
                params: Any = None) -> tuple[dict[str, Any], Any]:
    """docs/status, then `method`, in the indexed workspace holding --workspace or the current
    folder (an error when there is none)."""
    start = Path(args.workspace or os.getcwd()).expanduser().resolve()
    client = _session(args, start, find_root=True)
    try:
        status: dict[str, Any] = client.request("docs/status")
        if not status["workspaces"]:
            raise _no_index(start, status["model"]["id"])
        return status, client.request(method, params) if method else None
    finally:
        client.close()


def cmd_search(args: argparse.Namespace) -> int:
    params = _query(args)
    if args.no_daemon:
        engine, _root = _workspace(args)
        try:
            result = engine.search(params["query"], args.limit, args.mode, args.path,
                                   args.exclude, languages=args.languages)
        finally:
            engine.close()
    else:
        _status, result = _ask_daemon(args, "docs/search", params)
    if args.json:
        print(json.dumps(result))
        return 0
    if not result["hits"]:
        print("no results", file=sys.stderr)
        return 1
    for hit in result["hits"]:  # file names and text come from the files: never raw
        line = hit["range"]["start"]["line"] + 1
        heading = " > ".join(hit["headingPath"])
        print(terminal_safe(f"{hit['path']}:{line}  {heading}  ({hit['score']:.3f})"))
        print(f"    {terminal_safe(hit['snippet'])}")
    print(f"{len(result['hits'])} hits in {result['elapsedMs']:.1f} ms ({result['mode']})",
          file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.files:
        return cmd_status_files(args)
    if args.no_daemon:
        engine, root = _workspace(args)
        try:
            status = engine.status(read_manifests=True)
        finally:
            engine.close()
    else:
        status, _ = _ask_daemon(args)
        root = Path(_path_of(status["workspaces"][0]["uri"]))
    if args.json:
        print(json.dumps(status))
        return 0
    lines = [f"workspace: {root}", f"state:     {status['state']}",
             f"files:     {status['files']}   chunks: {status['chunks']}"]
    model = status["model"]
    lines.append(f"model:     {model['id']} ({model['dimension']}-d, {model['device']})")
    for ws in status["workspaces"]:
        lines.append(f"store:     {status['store']['kind']} at {ws['store']}")
    if status.get("lastError"):
        lines.append(f"error:     {status['lastError']}")
    for line in lines:
        print(terminal_safe(line))
    return 0


def cmd_status_files(args: argparse.Namespace) -> int:
    """`zl status --files`: docs/files for the indexed workspace, one page."""
    params: dict[str, Any] = {"offset": args.offset, "limit": args.limit}
    if args.states:
        params["states"] = args.states
    if args.no_daemon:
        from .protocol import validate_params

        validate_params("docs/files", params)
        engine, root = _workspace(args)
        try:
            page = engine.files_page([root], args.states, args.offset, args.limit)
        finally:
            engine.close()
    else:
        status, page = _ask_daemon(args, "docs/files", params)
        root = Path(_path_of(status["workspaces"][0]["uri"]))
    if args.json:
        print(json.dumps(page))
        return 0
    width = max((len(f["state"]) for f in page["files"]), default=0)
    for item in page["files"]:
        detail = f"  ({item['chunks']} chunks)" if item.get("chunks") is not None else ""
        reason = f"  — {item['reason']}" if item.get("reason") else ""
        print(terminal_safe(f"{item['state']:<{width}}  {item['path']}{detail}{reason}"))
    shown = len(page["files"])
    first = args.offset + 1 if shown else args.offset
    summary = f"{first}-{args.offset + shown} of {page['total']} files under {root}"
    if "nextOffset" in page:
        summary += f"; next page: zl status --files --offset {page['nextOffset']}"
    print(terminal_safe(summary), file=sys.stderr)
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from . import daemon

    if args.action == "run":
        return daemon.run(args.idle_timeout)
    if args.action == "stop":
        pid = daemon.stop()
        print(f"stopped the daemon (pid {pid})" if pid else "no daemon is running")
        return 0
    pid = daemon.running_pid()
    if pid is None:
        print(f"no daemon is running (socket {daemon.socket_path()})")
        return 3
    from .client import open_session

    client = open_session([], {"indexOnStart": False}, autostart=False)
    try:
        info = client.request("zl/daemon")
    finally:
        client.close()
    print(f"daemon:     pid {info['pid']}, up {time.time() - info['startedAt']:.0f} s, exits "
          f"after {info['idleSeconds']:.0f} s idle")
    print(f"socket:     {info['socket']}")
    print(f"clients:    {info['clients']} (this one included)")
    for uri in info["workspaces"]:
        print(terminal_safe(f"workspace:  {_path_of(uri)}"))
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from .mcp_server import run_mcp

    workspace = Path(args.workspace or os.getcwd()).expanduser().resolve()
    return run_mcp(workspace, _overrides(args))


def _path_of(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


if __name__ == "__main__":
    raise SystemExit(main())
