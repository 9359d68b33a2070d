"""A real Neovim starting the real `zl serve` on an already indexed workspace, with the default
model unavailable (offline, empty Hugging Face cache): the server falls back to the bundled model
and warns with window/showMessage (Warning).

- The warning goes through vim.notify at WARN level, and in Neovim's real terminal UI (in a pty)
  it never stops Neovim at a hit-enter prompt (issue 15, Neovim).
- `:ZlStatus` from the first moment never shows "0 files, 0 chunks" for the indexed workspace
  while the server is still loading or indexing (issue 14); in the TUI it opens a float, never
  a hit-enter prompt, and a search that finds nothing says why (issue 23).
- During a first index whose backfill is held back by the workspace's real setting, a search
  that finds nothing says why at once, in one line, while the backfill still runs (issue 23).

Drivers: clients/neovim/tests/startup.lua (headless), prompt.lua + probe.lua and
first_index_probe.lua (terminal UI).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
import threading
from pathlib import Path
from typing import Any

import pytest

from zero_latency.config import Settings
from zero_latency.engine import Engine

from .test_neovim_e2e import KEYS_MD, PLUGIN, _find_nvim, _server_cmd, _tail, _text

TIMEOUT_S = 240  # model load on a loaded machine; normally ~10 s
WARN = 3  # vim.log.levels.WARN


def _indexed_workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace indexed with the bundled model (the one the server falls back to)."""
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / "docs").mkdir()
    (ws / "docs" / "keys.md").write_text(KEYS_MD)
    (ws / "docs" / "more.md").write_text("# More\n\nAnother page about the release train.\n")
    store = tmp_path / "store"
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:
        engine.open_workspace(ws)
        engine.index([ws])
    finally:
        engine.close()
    return ws, store


def _env(tmp_path: Path, ws: Path, store: Path, out: Path) -> dict[str, str]:
    home = tmp_path / "home"
    return {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "ZL_CONFIG": str(tmp_path / "no-config.toml"),
        # The default model cannot be fetched: offline, with an empty cache.
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "ZL_E2E_OUT": str(out),
        "ZL_E2E_WS": str(ws),
        "ZL_E2E_CMD": json.dumps(_server_cmd()),
        # No `model`: the default, which falls back to the bundled model with a warning.
        "ZL_E2E_INIT": json.dumps({"storePath": str(store)}),
    }


def test_neovim_startup_warning_and_status_while_loading(tmp_path: Path) -> None:
    nvim, why = _find_nvim()
    if nvim is None:
        pytest.skip(why)
    ws, store = _indexed_workspace(tmp_path)
    out = tmp_path / "result.json"
    env = _env(tmp_path, ws, store, out)
    argv = [nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n",
            "--cmd", f"set rtp^={PLUGIN}", "-c", f"luafile {PLUGIN / 'tests' / 'startup.lua'}"]
    try:
        proc = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"nvim did not finish within {TIMEOUT_S} s\n{_text(err.stderr)}")
    lsp_log = tmp_path / "home" / "state" / "nvim" / "lsp.log"
    assert out.is_file(), f"no result\n{proc.stderr[-4000:]}\n{_tail(lsp_log)}"
    r = json.loads(out.read_text())
    context = f"{json.dumps(r, indent=1)}\n--- lsp.log ---\n{_tail(lsp_log)}"
    assert "error" not in r, context

    # The fallback warning: through vim.notify at WARN, whole (vim.notify is replaced here, as
    # a notification plugin would), once.
    warnings = [m for m in r["messages"] if "unavailable" in m["msg"]]
    assert len(warnings) == 1 and warnings[0]["level"] == WARN, context
    assert warnings[0]["msg"].startswith("Zero-Latency: Default model "), context
    assert "using the bundled" in warnings[0]["msg"], context
    # ... and in full in :checkhealth.
    health = "\n".join(r["health"])
    assert "WARNING server message" in health and "using the bundled" in health, context

    # Without a server attached, :checkhealth asks `zl status --json` and shows the same.
    health_cli = "\n".join(r["health_cli"])
    assert "no server attached; asked: " in health_cli and " status --json " in health_cli, context
    bundled = re.search(r"using the bundled (\S+) instead", warnings[0]["msg"])
    assert bundled and f"model in use: {bundled[1]} (" in health_cli, context
    store_lines = [line for line in r["health_cli"] if f"workspace {ws}: store " in line]
    assert len(store_lines) == 1 and str(store) in store_lines[0], context
    assert ", 2 files, " in store_lines[0] and "ERROR" not in health_cli, context

    # :ZlStatus never says "0 files, 0 chunks" for this indexed workspace, whatever the state.
    assert r["status_lines"], context
    assert not [line for line in r["status_lines"] if " 0 files, 0 chunks" in line], context
    assert "0 files" not in r["format_loading"] and "[loading]" in r["format_loading"], context
    assert r["format_indexing"].startswith(
        "Zero-Latency [indexing] 120 files, 26,100 chunks (412/26,100 embedded)"), context


def _drain(fd: int, sink: bytearray) -> None:
    """Read the terminal's output so Neovim's TUI never blocks writing to a full pty."""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        sink.extend(data[-65536:])


def test_neovim_fallback_warning_raises_no_hit_enter_prompt(tmp_path: Path) -> None:
    nvim, why = _find_nvim()
    if nvim is None:
        pytest.skip(why)
    ws, store = _indexed_workspace(tmp_path)
    out = tmp_path / "probe.json"
    env = {**_env(tmp_path, ws, store, out), "TERM": "xterm-256color"}
    sock = tmp_path / "nvim.sock"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    tui = subprocess.Popen(
        [nvim, "-u", "NONE", "-i", "NONE", "-n", "--listen", str(sock),
         "--cmd", f"set rtp^={PLUGIN}", "-c", f"luafile {PLUGIN / 'tests' / 'prompt.lua'}"],
        cwd=ws, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    screen = bytearray()
    reader = threading.Thread(target=_drain, args=(master, screen), daemon=True)
    reader.start()
    r, context = _probe(nvim, "probe.lua", tui, master, sock, out, env, TIMEOUT_S, tmp_path)
    assert "error" not in r, context
    # The warning was shown (it is in :messages), at WARN, and Neovim never waited at a
    # "Press ENTER" prompt for it.
    assert r["blocked"] is None, context
    assert "Zero-Latency: Default model " in r["history"], context
    assert r["mode_after"]["mode"] != "r", context
    # :ZlStatus on the 80x24 TUI: a float with the status, no hit-enter prompt (issue 23).
    assert r["status_float"] and r["status_float"][0].startswith("Zero-Latency ["), context
    assert any(line.startswith("model ") for line in r["status_float"]), context
    assert not r["mode_after_status"]["blocking"], context
    # A search that finds nothing says so and why, on one line, with no prompt either.
    assert re.search(r"Zero-Latency: (nothing for .*: )?(no good match \(\d+ weaker passages? left "
                     r"out\)|no passage matches)", r["empty_search"]), context
    assert not r["empty_search"].endswith("…"), context  # whole: it fits the echo area
    assert not r["mode_after_search"]["blocking"], context


def _probe(nvim: str, script: str, tui: subprocess.Popen[bytes], master: int, sock: Path,
           out: Path, env: dict[str, str], timeout: float,
           tmp_path: Path) -> tuple[dict[str, Any], str]:
    """Run a probe (clients/neovim/tests/`script`) against the TUI at `sock`, then end the
    TUI; its result and a failure context (the result, the probe's stderr, the LSP log)."""
    try:
        probe = subprocess.run(
            [nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n",
             "-l", str(PLUGIN / "tests" / script), str(sock), str(out)],
            env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        tui.wait(timeout=60)
    finally:
        if tui.poll() is None:
            tui.kill()
            tui.wait()
        os.close(master)
    lsp_log = tmp_path / "home" / "state" / "nvim" / "lsp.log"
    assert out.is_file(), f"no probe result\n{probe.stderr[-4000:]}\n{_tail(lsp_log)}"
    result: dict[str, Any] = json.loads(out.read_text())
    return result, (f"{json.dumps(result, indent=1)}\n--- probe stderr ---\n"
                    f"{probe.stderr[-2000:]}\n--- lsp.log ---\n{_tail(lsp_log)}")


def _tui(nvim: str, ws: Path, env: dict[str, str],
         sock: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Neovim's real terminal UI in an 80x24 pty, set up by tests/prompt.lua (it opens
    docs/keys.md, which starts the server), listening on `sock`; the pty's master fd."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    tui = subprocess.Popen(
        [nvim, "-u", "NONE", "-i", "NONE", "-n", "--listen", str(sock),
         "--cmd", f"set rtp^={PLUGIN}", "-c", f"luafile {PLUGIN / 'tests' / 'prompt.lua'}"],
        cwd=ws, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    threading.Thread(target=_drain, args=(master, bytearray()), daemon=True).start()
    return tui, master


def test_neovim_empty_search_during_a_first_index_says_why(tmp_path: Path) -> None:
    """Issue 23: ":ZlSearch 12 s into the first index gives an empty quickfix and no message".
    A first index of 40 notes (~200 chunks) with the backfill held at 1 chunk/s by the
    workspace's .zero-latency.toml: once the run reports its embedding phase, gibberish is
    searched in the 80x24 TUI. The message that says why comes at once (not after the
    backfill, minutes later), on one line, names the partial index, and raises no prompt."""
    nvim, why = _find_nvim()
    if nvim is None:
        pytest.skip(why)
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / "docs").mkdir()
    (ws / "docs" / "keys.md").write_text(KEYS_MD)
    for n in range(40):
        sections = "\n\n".join(
            f"## Part {k}\n\nNote {n} describes step {k} of the release train: who signs "
            f"the build, where the artefacts go and how the rollback is rehearsed."
            for k in range(4))
        (ws / "docs" / f"note-{n:03}.md").write_text(f"# Release note {n}\n\n{sections}\n")
    (ws / ".zero-latency.toml").write_text("backfillChunksPerSecond = 1\n")
    store = tmp_path / "store"
    out = tmp_path / "probe.json"
    env = {**_env(tmp_path, ws, store, out), "TERM": "xterm-256color",
           "ZL_E2E_INIT": json.dumps({"storePath": str(store), "model": "bundled"})}
    sock = tmp_path / "nvim.sock"
    tui, master = _tui(nvim, ws, env, sock)
    r, context = _probe(nvim, "first_index_probe.lua", tui, master, sock, out, env,
                        TIMEOUT_S * 2, tmp_path)
    assert "error" not in r and r["blocked"] is None, context
    assert "chunks embedded" in r["progress_before"], context
    # Why, at once: while the backfill still runs (it waited for nothing), naming the
    # partial index.
    assert r["progress_after"], context
    assert re.search(r"Zero-Latency: (nothing for .*: )?(no good match yet \(\d+% embedded, "
                     r"\d+ weaker left out\)|no match yet \(\d+% of \d+ chunks embedded\))",
                     r["empty_search"]), context
    assert not r["empty_search"].endswith("…"), context  # whole: it fits the echo area
    assert not r["mode_after_search"]["blocking"], context
