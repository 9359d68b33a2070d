"""A real Neovim, the real plugin and the real `zl serve` on a workspace whose store is damaged:
the plugin reads RequestFailed's `data.kind` (protocol/spec.md "Errors", revision 1.1), says what
failed and offers `:ZlIndex!`, which rebuilds the store. The driver is
clients/neovim/tests/errors.lua; Neovim is found as in test_neovim_e2e.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from zero_latency.config import Settings
from zero_latency.engine import Engine

from .test_neovim_e2e import KEYS_MD, PLUGIN, _find_nvim, _server_cmd, _tail, _text

DRIVER = PLUGIN / "tests" / "errors.lua"
TIMEOUT_S = 240  # model load and two index runs on a loaded machine; normally ~20 s


def test_neovim_names_a_damaged_store_and_rebuilds_it(tmp_path: Path) -> None:
    nvim, why = _find_nvim()
    if nvim is None:
        pytest.skip(why)
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / "docs").mkdir()
    (ws / "docs" / "keys.md").write_text(KEYS_MD)
    store = tmp_path / "store"
    engine = Engine(Settings(model="bundled", storePath=str(store)))
    try:  # a real store for the workspace, then its metadata damaged
        engine.open_workspace(ws)
        engine.index([ws])
        meta = engine.store_path(ws) / "zl-store.json"
    finally:
        engine.close()
    meta.write_text("{ not json")

    home = tmp_path / "home"
    out = tmp_path / "result.json"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "ZL_CONFIG": str(tmp_path / "no-config.toml"),
        "HF_HUB_OFFLINE": "1",
        "ZL_E2E_OUT": str(out),
        "ZL_E2E_WS": str(ws),
        "ZL_E2E_CMD": json.dumps(_server_cmd()),
        "ZL_E2E_INIT": json.dumps({"storePath": str(store), "model": "bundled"}),
        "ZL_E2E_QUERY": "rotate the signing keys",
    }
    argv = [nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n",
            "--cmd", f"set rtp^={PLUGIN}", "-c", f"luafile {DRIVER}"]
    try:
        proc = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"nvim did not finish within {TIMEOUT_S} s\n{_text(err.stderr)}")
    lsp_log = home / "state" / "nvim" / "lsp.log"
    assert out.is_file(), f"no result\n{proc.stderr[-4000:]}\n{_tail(lsp_log)}"
    r = json.loads(out.read_text())
    context = f"{json.dumps(r, indent=1)}\n--- lsp.log ---\n{_tail(lsp_log)}"
    assert "error" not in r, context

    # Only RequestFailed carries a kind; an unknown kind is a plain failure with its message.
    assert r["kind_of_not_initialized"] is None, context
    assert "(server not initialized): early" in r["text_of_not_initialized"], context
    assert r["kind_of_unknown"] is None and r["text_of_unknown"].endswith(": new"), context

    # :ZlIndex on the damaged store: RequestFailed, kind storeCorrupt, shown with the way out.
    error = r["index_error"]
    assert error["code"] == -32803 and error["data"] == {"kind": "storeCorrupt"}, context
    assert r["index_error_kind"] == "storeCorrupt", context
    shown = [m["msg"] for m in r["messages"] if "docs/index failed" in m["msg"]]
    assert len(shown) == 1, context
    assert "(store damaged)" in shown[0] and "corrupt" in shown[0], context
    assert shown[0].endswith("(:ZlIndex! rebuilds it)"), context

    # :ZlIndex! rebuilds it; search answers again.
    assert r["force_error"] is None and r["force_result"]["indexedFiles"] == 1, context
    assert r["search_error"] is None and r["search_hits"] > 0, context
