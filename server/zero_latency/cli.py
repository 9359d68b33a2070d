"""Command line: `zl index`, `zl search`, `zl status`, `zl serve` over the same engine.

`--json` prints the same shapes as the docs/index, docs/search and docs/status results of the
wire contract (protocol/spec.md). Logs and progress go to stderr; stdout carries results only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import LANGUAGES, SettingsError, load_settings
from .errors import ZeroLatencyError

if TYPE_CHECKING:  # `zl serve` must start fast: the engine loads after `initialize`
    from .engine import Engine
    from .indexer import IndexReport

log = logging.getLogger("zero_latency")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    serving = args.command == "serve"
    handler = logging.StreamHandler(sys.stderr)
    # On a terminal, log lines (warnings name files) get their control characters escaped.
    formatter = logging.Formatter if serving else _TerminalSafeFormatter
    handler.setFormatter(formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"
                                   if serving else "zl: %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if serving else logging.WARNING,
        handlers=[handler],
    )
    if args.command == "serve":
        # pygls logs every message it sends at INFO: keep stderr readable.
        logging.getLogger("pygls").setLevel(logging.WARNING)
        from .lsp import serve

        return serve()
    try:
        return int(args.handler(args))
    except (ZeroLatencyError, SettingsError) as err:
        message = err.message if isinstance(err, ZeroLatencyError) else str(err)
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
        p.add_argument("--model", help="Hub repo id, model folder, or 'bundled'")
        p.add_argument("--device", choices=["cpu", "cuda"])
        p.add_argument("--store-path", help="folder for the embedded stores")
        p.add_argument("--store-url", help="a Qdrant server or cluster instead of the embedded "
                                           "store (API key: $ZL_STORE_API_KEY)")
        p.add_argument("--json", action="store_true", help="print the wire-contract JSON shape")

    p = sub.add_parser("index", help="index (or re-index) a folder")
    p.add_argument("path", nargs="?", default=".", help="workspace folder (default: .)")
    p.add_argument("--force", action="store_true", help="re-embed even unchanged content")
    p.add_argument("--rebuild", action="store_true",
                   help="delete this workspace's store first (after a model change or damage)")
    common(p)
    p.set_defaults(handler=cmd_index)

    p = sub.add_parser("search", help="search the index of the current workspace")
    p.add_argument("query", nargs="+")
    p.add_argument("--limit", "-n", type=int, default=10)
    p.add_argument("--mode", choices=["hybrid", "semantic", "keyword"], default="hybrid")
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
    common(p)
    p.set_defaults(handler=cmd_status)

    sub.add_parser("serve", help="run the language-server sidecar on stdio")
    return parser


def _engine(args: argparse.Namespace, workspace: Path) -> Engine:
    overrides: dict[str, Any] = {}
    if args.model:
        overrides["model"] = args.model
    if args.device:
        overrides["device"] = args.device
    if args.store_path:
        overrides["storePath"] = args.store_path
    if args.store_url:
        overrides["storeUrl"] = args.store_url
    if os.environ.get("ZL_STORE_API_KEY"):  # not a flag: it would show in `ps`
        overrides["storeApiKey"] = os.environ["ZL_STORE_API_KEY"]
    settings, warnings = load_settings(workspace, overrides)
    for warning in warnings:
        log.warning("%s", warning)
    from .engine import Engine

    return Engine(settings)


def cmd_index(args: argparse.Namespace) -> int:
    root = Path(args.path).expanduser().resolve()
    if not root.is_dir():
        print(f"zl: error: {root} is not a folder", file=sys.stderr)
        return 2
    engine = _engine(args, root)
    engine.load_model()
    try:
        if args.rebuild:
            engine.rebuild_workspace(root)
        else:
            engine.open_workspace(root)
        bar = _progress_bar(args.json)
        try:
            def progress(done: int, total: int, _message: str) -> None:
                if bar is not None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

            report = engine.index([root], force=args.force, progress=progress)
        finally:
            if bar is not None:
                bar.close()
    finally:
        engine.close()
    if args.json:
        print(json.dumps(report.to_wire()))
    else:
        _print_report(root, report)
    return 0


def _progress_bar(quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="file", file=sys.stderr, desc="indexing", leave=False)


def _print_report(root: Path, report: IndexReport) -> None:
    seconds = report.elapsedMs / 1000
    rate = report.embeddedChunks / seconds if seconds > 0 else 0.0
    print(terminal_safe(
        f"{root}: {report.files} files ({report.indexedFiles} indexed, "
        f"{report.unchangedFiles} unchanged, {report.removedFiles} removed, "
        f"{report.skippedFiles} skipped), {report.chunks} chunks, "
        f"{report.embeddedChunks} embedded in {seconds:.1f} s ({rate:.1f} chunks/s)"))
    for error in report.errors:
        print(terminal_safe(f"  {error['uri']}: {error['message']}"), file=sys.stderr)


def find_workspace(engine: Engine, start: Path) -> Path | None:
    """The nearest folder at or above `start` that has an index for this model."""
    for folder in [start, *start.parents]:
        if (engine.store_path(folder) / "shard").exists():
            return folder
    return None


def _workspace(args: argparse.Namespace) -> tuple[Engine, Path]:
    start = Path(args.workspace or os.getcwd()).expanduser().resolve()
    engine = _engine(args, start)
    engine.load_model()
    root = start if args.workspace else find_workspace(engine, start)
    if root is None:
        engine.close()
        raise ZeroLatencyError(
            f"no index for {start} or any folder above it (model {engine.model_id}). "
            "Run `zl index <folder>` first, or pass --workspace.")
    engine.open_workspace(root)
    return engine, root


def cmd_search(args: argparse.Namespace) -> int:
    engine, _root = _workspace(args)
    try:
        result = engine.search(" ".join(args.query), args.limit, args.mode, args.path,
                               args.exclude, languages=args.languages)
    finally:
        engine.close()
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
    engine, root = _workspace(args)
    try:
        status = engine.status(read_manifests=True)
    finally:
        engine.close()
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



if __name__ == "__main__":
    raise SystemExit(main())
