"""One table of languages (languages.py): the rest of the project derives from it, and what
cannot (the wire schema, the MCP tool's type, the Neovim plugin's file types) is checked here
against it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

from zero_latency import chunking, config, mcp_server
from zero_latency.config import Settings
from zero_latency.files import WorkspaceFilter
from zero_latency.languages import LANGUAGE_IDS, LANGUAGE_SPECS, SUFFIXES, language_for, spec

ROOT = Path(__file__).resolve().parents[1]


def test_the_schema_lists_exactly_the_table_s_languages() -> None:
    schema = json.loads((ROOT / "protocol" / "schema.json").read_text())
    languages = schema["$defs"]["SearchParams"]["properties"]["languages"]
    assert tuple(languages["items"]["enum"]) == LANGUAGE_IDS
    assert languages["maxItems"] == len(LANGUAGE_IDS)


def test_the_mcp_tool_offers_exactly_the_table_s_languages() -> None:
    assert get_args(mcp_server.Language) == LANGUAGE_IDS


def neovim_default_filetypes() -> set[str]:
    """The `filetypes = { … }` default in the plugin's init.lua, read as text."""
    lua = (ROOT / "clients" / "neovim" / "lua" / "zero_latency" / "init.lua").read_text()
    found = re.search(r"^\s*filetypes\s*=\s*\{(.*?)\}", lua, re.M | re.S)
    assert found, "init.lua has no default filetypes table"
    return set(re.findall(r'"([^"]+)"', found.group(1)))


def test_neovim_attaches_to_every_indexed_language() -> None:
    """Each language the server indexes (by its LSP id) is a Neovim file type the plugin
    attaches to by default, so an unsaved buffer of any indexed type is searched live."""
    filetypes = neovim_default_filetypes()
    for language in LANGUAGE_SPECS:
        missing = set(language.vim_filetypes) - filetypes
        assert not missing, (f"{language.id} (LSP {', '.join(language.lsp_ids)}): Neovim "
                             f"file types {sorted(missing)} are not in init.lua's defaults")


def test_the_rest_is_derived_from_the_table(tmp_path: Path) -> None:
    assert config.LANGUAGES == LANGUAGE_IDS
    assert config.DEFAULT_INCLUDE_EXTENSIONS == SUFFIXES
    walk = WorkspaceFilter(tmp_path, Settings())
    for language in LANGUAGE_SPECS:
        for suffix in language.suffixes:
            name = f"docs/Read{suffix.upper()}"
            assert language_for(name) == chunking.language_for(name) == language.id
            assert walk.wants(name), name
    assert language_for("main.rs") is None and not walk.wants("main.rs")
    assert spec("no-such-language").id == "plaintext"


def test_each_language_is_chunked_by_its_own_splitter() -> None:
    text = "Title\n=====\n\nIntro para.\n\n# not a heading here\n"
    by_language = {language: chunking.chunk_document(text, language, lambda t: len(t.split()),
                                                      256, 0)
                   for language in LANGUAGE_IDS}
    assert by_language["restructuredtext"][0].heading_path == ("Title",)
    assert by_language["markdown"][-1].heading_path == ("not a heading here",)
    assert all(not c.heading_path for c in by_language["plaintext"])
    assert by_language["python"][0].text.startswith("Title"), "unparsable: paragraphs"
    (docstring,) = chunking.chunk_document('def f():\n    """Rotate the keys."""\n', "python",
                                           lambda t: len(t.split()), 256, 0)
    assert docstring.heading_path == ("f",) and docstring.text.strip() == "Rotate the keys."
