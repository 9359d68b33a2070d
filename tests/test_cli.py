"""The `zl` command line, run as a real process: index, search and status, with --json holding
to the same result shapes as the wire contract (protocol/schema.json), and clear errors."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zero_latency.protocol import result_errors

ZL = [sys.executable, "-m", "zero_latency"]


def zl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZL, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def zl_json(*args: str, cwd: Path | None = None) -> Any:
    done = zl(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_index_search_status(tmp_path: Path, workspace: Path) -> None:
    store = ["--model", "bundled", "--store-path", str(tmp_path / "store")]
    first = zl_json("index", str(workspace), *store)
    assert result_errors("docs/index", first) == []
    assert first["files"] == first["indexedFiles"] == 5 and first["embeddedChunks"] > 0
    again = zl_json("index", str(workspace), *store)
    assert again["unchangedFiles"] == 5 and again["embeddedChunks"] == 0
    rebuilt = zl_json("index", str(workspace), "--rebuild", *store)
    assert rebuilt["indexedFiles"] == 5 and rebuilt["embeddedChunks"] == first["embeddedChunks"]

    # From a folder inside the workspace, without --workspace: the index above is found.
    found = zl_json("search", "how", "do", "threads", "share", "data", *store,
                    cwd=workspace / "book")
    assert result_errors("docs/search", found) == []
    assert found["hits"][0]["path"] == "book/ch16-01-threads.md"
    only_python = zl_json("search", "vectors", "--language", "python", *store, cwd=workspace)
    assert only_python["hits"] == []  # the workspace holds Markdown only

    human = zl("search", "--workspace", str(workspace), "recoverable errors with Result", *store,
               cwd=workspace)
    assert human.returncode == 0, human.stderr
    first_line = human.stdout.splitlines()[0]
    assert first_line.split()[:2] == ["1", first_line.split()[1]]
    assert first_line.split()[1].startswith("book/ch09-02-recoverable-errors-with-result.md:")

    status = zl_json("status", "--workspace", str(workspace), *store)
    assert result_errors("docs/status", status) == []
    assert status["state"] == "idle" and status["files"] == 5
    assert status["chunks"] == first["chunks"]


def test_errors_are_clear_and_exit_2(tmp_path: Path) -> None:
    store = ["--model", "bundled", "--store-path", str(tmp_path / "store")]
    nowhere = zl("search", "anything", *store, cwd=tmp_path)
    assert nowhere.returncode == 2 and nowhere.stdout == ""
    assert "no index for" in nowhere.stderr and "zl index" in nowhere.stderr
    missing = zl("index", str(tmp_path / "absent"), *store)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    bad_model = zl("index", str(tmp_path), "--model", str(tmp_path / "no-model"),
                   "--store-path", str(tmp_path / "store"))
    # An explicit model that cannot load is the command's error (issue 15), said once.
    assert bad_model.returncode == 2, bad_model.stderr
    assert "Model folder not found" in bad_model.stderr
    assert bad_model.stderr.count("Model folder not found") == 1


# --- issue 15: results people can act on, and the rough edges a new user meets ---------------

HANDBOOK = ["# Team handbook", "", *[
    f"Line {i} of the handbook is about the office, the calendar and the kitchen." for i in
    range(14)], "", "To rotate the signing keys, run keyctl rotate and restart the gateway.",
    "", "Ask in the channel if unsure."]
ANSWER_LINE = 17  # 0-based: HANDBOOK.index(the answer)


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(extra)
    return env


def run(*args: str, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZL, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=env_with(**extra))


@pytest.fixture
def handbook(tmp_path: Path) -> tuple[Path, list[str]]:
    """A workspace whose answer sits 17 lines below its heading, indexed (in this process's
    engine, no daemon); the flags that find its store."""
    ws = tmp_path / "ws"
    (ws / "docs").mkdir(parents=True)
    (ws / "docs" / "handbook.md").write_text("\n".join(HANDBOOK) + "\n")
    assert HANDBOOK[ANSWER_LINE].startswith("To rotate")
    flags = ["--model", "bundled", "--store-path", str(tmp_path / "store"), "--no-daemon"]
    done = zl("index", str(ws), *flags)
    assert done.returncode == 0, done.stderr
    return ws, flags


def test_hits_print_path_line_col_of_the_answer_relative_to_here(
        handbook: tuple[Path, list[str]], tmp_path: Path) -> None:
    ws, flags = handbook
    done = run("search", "rotate", "the", "signing", "keys", *flags, cwd=ws / "docs")
    assert done.returncode == 0, done.stderr
    number, location = done.stdout.splitlines()[0].split()[:2]
    assert (number, location) == ("1", f"handbook.md:{ANSWER_LINE + 1}:1"), done.stdout
    # From the folder above, the same file reads relative to it.
    above = run("search", "rotate", "the", "signing", "keys", "--workspace", str(ws), *flags,
                cwd=tmp_path)
    assert above.stdout.split()[1] == f"ws/docs/handbook.md:{ANSWER_LINE + 1}:1", above.stdout


def test_open_runs_the_editor_at_the_hit(handbook: tuple[Path, list[str]],
                                         tmp_path: Path) -> None:
    ws, flags = handbook
    record = tmp_path / "argv.json"
    editor = tmp_path / "editor.py"
    editor.write_text(f"import json, sys\nopen({str(record)!r}, 'w').write(json.dumps("
                      "sys.argv[1:]))\n")
    query = ["search", "rotate", "signing", "keys", *flags, "--open", "1"]
    done = run(*query, cwd=ws, VISUAL="", EDITOR=f"{sys.executable} {editor}")
    assert done.returncode == 0, done.stderr
    assert json.loads(record.read_text()) == [f"+{ANSWER_LINE + 1}", "docs/handbook.md"]
    done = run(*query, "--editor", f"{sys.executable} {editor} {{path}}:{{line}}:{{col}}",
               cwd=ws)
    assert done.returncode == 0, done.stderr
    assert json.loads(record.read_text()) == [f"docs/handbook.md:{ANSWER_LINE + 1}:1"]
    beyond = run("search", "rotate", "signing", "keys", *flags, "--open", "9", cwd=ws)
    assert beyond.returncode == 2 and "--open 9" in beyond.stderr


def test_nonsense_finds_no_good_match(handbook: tuple[Path, list[str]]) -> None:
    ws, flags = handbook
    done = run("search", "zzqxqv", *flags, cwd=ws)
    assert done.returncode == 1 and done.stdout == ""
    assert "no good match" in done.stderr


def test_help_describes_every_option_with_its_default_and_examples() -> None:
    from zero_latency.config import LANGUAGES

    for command in ("index", "search", "status", "serve", "mcp", "daemon"):
        done = run(command, "--help")
        assert done.returncode == 0, done.stderr
        text = done.stdout
        examples = text.split("examples:", 1)[1].splitlines()
        assert sum(1 for line in examples if line.strip().startswith("zl ")) >= 2, text
        options = text.split("options:", 1)[1].split("examples:", 1)[0]
        # One entry per option: from a line starting "  -" to the next one.
        entries = re.split(r"\n(?=  -)", options.strip("\n"))
        for entry in entries:
            if entry.strip().startswith(("-h,", "-h ")):
                continue
            assert "default" in " ".join(entry.split()), (command, entry)
        if command == "search":
            flat = " ".join(text.split())
            assert all(language in flat for language in LANGUAGES), text


def test_fallback_warning_once_per_model_change(tmp_path: Path) -> None:
    """The default model is out of reach (offline, nothing cached): the bundled one stands in,
    and says so once, naming the setting as each client calls it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.md").write_text("# A\n\nSome text.\n")
    cache = tmp_path / "cache"
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
               "XDG_CACHE_HOME": str(cache)}
    args = ["index", str(ws), "--store-path", str(tmp_path / "store"), "--no-daemon"]
    first = run(*args, **offline)
    assert first.returncode == 0, first.stderr
    assert "Default model" in first.stderr
    assert "zeroLatency.model" in first.stderr and "--model" in first.stderr
    second = run(*args, **offline)
    assert second.returncode == 0 and "Default model" not in second.stderr, second.stderr
    # Another message (another model, another reason): shown again, once.
    (cache / "zero-latency" / "model-fallback-warned.txt").write_text("Default model other")
    third = run(*args, **offline)
    assert "Default model" in third.stderr


@pytest.mark.parametrize("daemon", [True, False])
def test_explicit_model_that_is_missing_is_an_error(tmp_path: Path, daemon: bool) -> None:
    from zero_latency.models import download_command

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.md").write_text("# A\n\nSome text.\n")
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = run("index", str(ws), "--model", "sentence-transformers/all-MiniLM-L7-v9",
               "--store-path", str(tmp_path / "store"), *([] if daemon else ["--no-daemon"]),
               **offline)
    assert done.returncode == 2, done.stderr
    assert download_command("sentence-transformers/all-MiniLM-L7-v9") in done.stderr
    assert "huggingface-cli" not in done.stderr or download_command("x").startswith("hugging")
    assert "Keyword search still works" not in done.stderr


@pytest.mark.parametrize("daemon", [True, False])
def test_workspace_missing_or_never_indexed_is_an_error(tmp_path: Path, daemon: bool) -> None:
    store = tmp_path / "store"
    never = tmp_path / "never"
    never.mkdir()
    (never / "a.md").write_text("# A\n\nSome text.\n")
    flags = ["--model", "bundled", "--store-path", str(store),
             *([] if daemon else ["--no-daemon"])]
    for command in (["search", "text"], ["status"]):
        missing = run(*command, "--workspace", str(tmp_path / "absent"), *flags)
        assert missing.returncode == 2 and "no such folder" in missing.stderr, missing.stderr
        unindexed = run(*command, "--workspace", str(never), *flags)
        assert unindexed.returncode == 2, unindexed.stderr
        assert "never been indexed" in unindexed.stderr and "zl index" in unindexed.stderr
    stores = [p for p in store.rglob("*") if p.is_dir()] if store.exists() else []
    assert not any("never" in p.name for p in stores), stores  # no empty store made


def _on_a_terminal(args: list[str], *, stdin_tty: bool, stdout_tty: bool, cwd: Path | None = None,
                   **extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """`zl args` with stdin and/or stdout on a pseudo-terminal (the returned fd reads it).
    Ctrl-C is restored to its default, as in a terminal: a test run started in the background
    by a non-interactive shell (`cmd &`) inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*ZL, *args], stdin=slave if stdin_tty else subprocess.DEVNULL,
                            stdout=slave if stdout_tty else subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=env_with(**extra),
                            preexec_fn=_default_ctrl_c)
    os.close(slave)
    return proc, master


def _default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            return out
        if not chunk:
            return out
        out += chunk


@pytest.mark.parametrize("daemon", [True, False])
def test_serve_in_a_terminal_says_what_it_is_and_ctrl_c_ends_it(daemon: bool) -> None:
    proc, master = _on_a_terminal(["serve", *([] if daemon else ["--no-daemon"])],
                                  stdin_tty=True, stdout_tty=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert "language server" in line and "editor" in line and "Ctrl-C" in line, line
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        assert proc.wait(timeout=60) == 130
        rest = proc.stderr.read().decode()
        assert "Traceback" not in rest, rest
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_query_terms_in_colour_on_a_terminal_only(handbook: tuple[Path, list[str]]) -> None:
    ws, flags = handbook
    query = ["search", "rotate", "signing", "keys", *flags]
    proc, master = _on_a_terminal(query, stdin_tty=False, stdout_tty=True, cwd=ws,
                                  COLUMNS="60")
    shown = _read_all(master).decode()
    assert proc.wait(timeout=300) == 0
    os.close(master)
    assert "\x1b[1;33mrotate\x1b[0m" in shown, shown
    rows = [r for r in shown.splitlines() if r.startswith("      ")]  # wrapped under the hit
    assert len(rows) >= 2 and all(len(re.sub(r"\x1b\[[0-9;]*m", "", r)) <= 60 for r in rows)
    proc, master = _on_a_terminal(query, stdin_tty=False, stdout_tty=True, cwd=ws,
                                  NO_COLOR="1")
    plain = _read_all(master).decode()
    assert proc.wait(timeout=300) == 0
    os.close(master)
    assert "\x1b[" not in plain and "rotate" in plain
    piped = run(*query, cwd=ws)
    assert "\x1b[" not in piped.stdout and "rotate" in piped.stdout


def test_the_index_bar_gives_one_rate_and_estimate_per_pass(tmp_path: Path,
                                                            workspace: Path) -> None:
    """On a terminal, the embedding pass's bar shows the engine's rate and time left, counted
    from that pass's start: not tqdm's own second estimate, timed from the reading pass."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen([*ZL, "index", str(workspace), "--no-daemon", "--model", "bundled",
                             "--store-path", str(tmp_path / "store")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    try:
        shown = _read_all(master).decode(errors="replace")
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    frames = [f.strip() for f in re.split(r"[\r\n]", shown) if f.strip()]
    embedding = [f for f in frames if f.startswith("embedding")]
    assert embedding, frames[-5:]
    for frame in embedding:
        assert re.fullmatch(r"embedding:\s+\d+%\|.*\| \d+/\d+ \[\d\d:\d\d"
                            r"(, \d+/s( · ~\d+ (s|min) left)?)?\]", frame), frame
    assert any(", " in f and "/s" in f for f in embedding), embedding[-3:]
    assert any(f.startswith("reading") for f in frames), frames[:5]
