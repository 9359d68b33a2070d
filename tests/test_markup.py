"""No markup junk (issue 15): what is embedded, keyword-indexed and shown is the readable text,
while chunks keep the exact line ranges of the file. Markdown (rust-book style: HTML comments,
empty anchors, reference links, mdBook includes, fences), reStructuredText (roles, directives,
substitutions, targets) and Python docstrings; then the real Rust book through the real engine
and the bundled model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from zero_latency import chunking
from zero_latency.chunking import chunk_document, normalise_newlines
from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.markup import readable_lines

from .conftest import need_corpus


def words(text: str) -> int:
    return len(text.split())


#: What must not be read: comments, anchors, mdBook directives, fences, link syntax, HTML tags
#: (`Mutex<T>` is text, not a tag).
JUNK = re.compile(r"<!--|-->|<a id=|\{\{#|```|\]\[|\]\(|</?(?:a|span|Listing|div|img)\b[^>]*>")

RUST_BOOK_LIKE = """\
<!-- Old headings. Do not remove or links may break. -->

<a id="sharing-a-mutext-between-multiple-threads"></a>

## Shared Access to `Mutex<T>`

Now let's share a value between threads using [`Mutex<T>`][mutex]<!-- ignore -->,
as in the [Go documentation](https://go.dev/doc) and the [unsized types][dst].
See <span class="caption">the listing</span> below.

<Listing number="16-13" file-name="src/main.rs" caption="Ten threads sharing a `Mutex<T>`">

```rust,ignore
{{#rustdoc_include ../listings/ch16/listing-16-13/src/main.rs}}
```

</Listing>

```rust
let counter = Arc::new(Mutex::new(0));
```

{{#include ../listings/ch16/output.txt}}

<!-- Old headings. Do not remove or links may break. -->

<a id="atomic-reference-counting-with-arct"></a>

[mutex]: ../std/sync/struct.Mutex.html
"""


def test_markdown_markup_is_dropped_and_lines_stay_where_they_are() -> None:
    readable = readable_lines(RUST_BOOK_LIKE, "markdown")
    lines = RUST_BOOK_LIKE.split("\n")
    assert len(readable) == len(lines)
    by_line = dict(enumerate(readable))
    # Comments, anchors, fence markers, includes, the reference definition: gone.
    for i, line in enumerate(lines):
        if line.startswith(("<!--", "<a id", "```", "{{#", "[mutex]:", "</Listing>")):
            assert by_line[i] == "", (i, line, by_line[i])
    # Link syntax reduced to its text, on the line it was on; inline HTML and comments out.
    assert readable[6] == ("Now let's share a value between threads using Mutex<T>,")
    assert readable[7] == "as in the Go documentation and the unsized types."
    assert readable[8] == "See the listing below."
    assert readable[4] == "Shared Access to Mutex<T>"
    # A figure's caption is prose; code stays (without its fence).
    assert readable[10] == "Ten threads sharing a Mutex<T>"
    assert readable[19] == "let counter = Arc::new(Mutex::new(0));"


def test_markup_only_regions_never_become_chunks() -> None:
    chunks = chunk_document(RUST_BOOK_LIKE, "markdown", words, 40, 4)
    assert chunks
    for chunk in chunks:
        assert chunk.heading_path == ("Shared Access to Mutex<T>",), chunk  # read, too
        assert not JUNK.search(chunk.text), chunk.text
        assert "Old headings" not in chunk.text
    # The line ranges are the file's: the first chunk starts at the heading, not at the
    # comment block above it, and the trailing comment/anchor/definition lines are in none.
    assert chunks[0].start_line == 4
    assert max(c.end_line for c in chunks) <= 21
    only_markup = "<!-- Old headings. Do not remove -->\n\n<a id=\"x\"></a>\n"
    assert chunk_document(only_markup, "markdown", words) == []


RST = """\
Introduction
============

This follows :pep:`8` and :pep:`the docstring PEP <257>`, see :rfc:`2822`,
:class:`~typing.Sequence` and :func:`!len`, `Sphinx <https://sphinx.dev>`_ and
`multiline if-statements`_, |name| and ``literal *text*`` [#]_ [2]_.

.. |name| replace:: the substituted text

.. note:: Read this first.
   It matters.

.. code-block:: python
   :linenos:

   x = compute()

.. _`multiline if-statements`:

.. A comment that no reader sees
   and its second line.

.. image:: diagram.png
   :alt: unused

Example::

    literal block
"""


def test_rst_roles_substitutions_and_directives_read_as_text() -> None:
    readable = readable_lines(RST, "restructuredtext")
    assert len(readable) == len(RST.split("\n"))
    text = "\n".join(readable)
    assert readable[1] == ""  # the adornment
    assert readable[3] == "This follows PEP 8 and the docstring PEP, see RFC 2822,"
    assert readable[4] == "Sequence and len, Sphinx and"
    assert readable[5] == "multiline if-statements, the substituted text and literal *text*."
    assert readable[9] == "Read this first." and readable[10].strip() == "It matters."
    assert readable[15].strip() == "x = compute()"
    assert readable[25] == "Example:" and readable[27].strip() == "literal block"
    for gone in ("..", "::", ":pep:", "replace", "linenos", "comment", "diagram.png", "_`"):
        assert gone not in text, (gone, text)


def test_python_docstrings_lose_quotes_and_markup() -> None:
    source = (
        'def rotate(keys):\n'
        '    r"""Rotate the signing :class:`~keys.Key` objects.\n'
        '\n'
        '    :param keys: the ``Key`` list, see :pep:`484`.\n'
        '    """\n'
        '    return keys\n'
    )
    (chunk,) = chunk_document(source, "python", words)
    assert (chunk.start_line, chunk.end_line) == (1, 5)
    assert chunk.heading_path == ("rotate",)
    assert chunk.text.split() == ("Rotate the signing Key objects. param keys: the Key list, "
                                  "see PEP 484.").split()


def test_rust_book_hits_are_readable_and_old_heading_blocks_are_not_hits(
        tmp_path: Path) -> None:
    book = need_corpus("rust-book")
    workspace = tmp_path / "book"
    workspace.mkdir()
    # The concurrency chapters (where the issue was seen) and neighbours with the same
    # comment + anchor blocks, includes and reference links.
    chapters = sorted(p for p in book.glob("ch1[56]-*.md"))
    assert sum("Old headings" in p.read_text() for p in chapters) >= 4
    for path in chapters:
        shutil.copy(path, workspace / path.name)
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        engine.open_workspace(workspace)
        engine.index([workspace])
        old = engine.search("Old headings", limit=100, mode="keyword")["hits"]
        assert not [h for h in old if "Old headings" in h["snippet"]], old[:3]
        assert len(old) < 20, f"{len(old)} keyword hits for words that are only in comments"
        result = engine.search("how do I share data between threads", limit=10)
        assert result["hits"]
        for hit in result["hits"]:
            assert not JUNK.search(hit["snippet"]), hit["snippet"]
            assert "<!-- ignore -->" not in hit["snippet"] and "{{#" not in hit["snippet"]
        for hit in result["hits"][:3]:
            assert hit["headingPath"], hit  # a real section, not "(no heading)" at line 1
        top = result["hits"][0]
        assert top["uri"].endswith(("ch16-03-shared-state.md", "ch16-01-threads.md",
                                    "ch16-02-message-passing.md")), top
        # Exact line ranges: the hit's first line is in the file where it says.
        lines = (workspace / Path(top["path"]).name).read_text().split("\n")
        first = lines[top["range"]["start"]["line"]]
        assert first.strip() and not first.startswith(("<!--", "<a id")), first
    finally:
        engine.close()


MARKUP_PIECES = ["<!--", "-->", "<a id=\"x\">", "</a>", "<div>", "</div>", "<script>", "```",
                 "~~~", "{{#include a.rs}}", "[t][r]", "[t](u)", "![alt](i.png)", "`", "``",
                 ":pep:`8`", ":role:`t <x>`", "|sub|", ".. ", ".. note::", "::", "   ", "\n",
                 "\n\n", "# ", "=====", "* ", "1. ", "> ", "word", '"""', "'''", "\\", "&amp;"]


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(MARKUP_PIECES) | st.text(max_size=8), max_size=60))
def test_any_input_keeps_its_line_count_and_chunks_stay_in_range(pieces: list[str]) -> None:
    text = normalise_newlines("".join(pieces))  # as the indexer gives it
    line_count = len(text.split("\n"))
    for language in ("markdown", "restructuredtext", "python", "plaintext"):
        readable = readable_lines(text, language, [(0, line_count)])
        assert len(readable) == line_count, language
        for chunk in chunk_document(text, language, words, 32, 4):
            assert 0 <= chunk.start_line < chunk.end_line <= line_count
            assert chunk.text.strip()


def test_an_index_chunked_by_an_older_version_is_rechunked_without_re_embedding(
        engine: Engine, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stands for an index built before this chunker (no other way to get one here).
    monkeypatch.setattr(chunking, "CHUNKER_VERSION", 1)
    engine.open_workspace(workspace)
    first = engine.index([workspace])
    assert first.indexedFiles == 5 and first.embeddedChunks == first.chunks
    monkeypatch.undo()  # the current chunker
    upgraded = engine.index([workspace])
    assert upgraded.indexedFiles == 5 and upgraded.unchangedFiles == 0, upgraded
    assert upgraded.embeddedChunks == 0, "same chunk text: vectors reused by content hash"
    again = engine.index([workspace])
    assert again.unchangedFiles == 5 and again.indexedFiles == 0, again


def test_text_nested_deeper_than_the_parser_goes_is_still_read() -> None:
    # markdown-it-py stops at its maxNesting: those lines are in no token, but are text.
    text = "".join(f"{'>' * 50} level {i}\n" for i in range(3)) + "\n" + "- " * 500 + "deep list\n"
    assert readable_lines(text, "markdown") == [
        "level 0", "level 1", "level 2", "", "deep list", ""]
    # ... while a reference definition (also in no token) stays out.
    assert readable_lines("Text.\n\n[ref]: https://example.com\n", "markdown")[2] == ""
