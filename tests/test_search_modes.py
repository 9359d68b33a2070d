"""Search modes have one definition (config.SearchMode); everything else derives from it or,
where it cannot (the store's typed query plan, the wire schema), is checked against it here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from zero_latency import cli, config, mcp_server, store
from zero_latency.engine import Engine

ROOT = Path(__file__).resolve().parents[1]


def test_every_mode_list_is_the_one_definition() -> None:
    modes = get_args(config.SearchMode)
    assert config.SEARCH_MODES == modes == ("hybrid", "semantic", "keyword")
    assert get_args(store.Mode) == modes
    assert get_args(get_type_hints(Engine.search)["mode"]) == modes
    assert mcp_server.Mode is config.SearchMode
    parser = cli._parser()
    assert parser.parse_args(["search", "q"]).mode == config.DEFAULT_SEARCH_MODE == "hybrid"
    for mode in modes:
        assert parser.parse_args(["search", "q", "--mode", mode]).mode == mode
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "q", "--mode", "fuzzy"])


def test_the_schema_lists_the_same_modes() -> None:
    defs = json.loads((ROOT / "protocol" / "schema.json").read_text())["$defs"]
    modes = list(config.SEARCH_MODES)
    assert defs["SearchParams"]["properties"]["mode"]["enum"] == modes
    assert defs["SearchResult"]["properties"]["mode"]["enum"] == modes
    assert defs["StatusResult"]["properties"]["searchModes"]["items"]["enum"] == modes


def test_the_schema_holds_queries_to_the_same_limits() -> None:
    search = json.loads((ROOT / "protocol" / "schema.json").read_text())["$defs"]["SearchParams"]
    assert search["properties"]["query"]["maxLength"] == config.MAX_QUERY_CHARS
    assert search["properties"]["limit"]["maximum"] == config.MAX_LIMIT
    assert cli._parser().parse_args(["search", "q"]).limit == config.DEFAULT_LIMIT
