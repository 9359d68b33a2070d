"""The document languages zero-latency indexes: one table, from which everything else is
derived (the suffixes the walk takes, the language a hit carries and a search filters by,
the CLI's choices, how a file is split into blocks and read). The wire schema's enum and the
editors' file types are checked against it by tests/test_languages.py.

Adding a file type is one `LanguageSpec` here (or one more suffix on an existing one); a new
kind of structure also needs its splitter in chunking.py and, if it has markup, its readable
text in markup.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath

from . import chunking, markup
from .chunking import Block

#: A document's text (newlines normalised) and its lines, to blocks with line ranges.
Splitter = Callable[[str, list[str]], Iterable[Block]]
#: A document's text and its blocks' line spans, to one readable string per line.
Readable = Callable[[str, Sequence[tuple[int, int]]], list[str]]


@dataclasses.dataclass(frozen=True)
class LanguageSpec:
    id: str  #: the language a hit carries, a search filters by and the schema's enum lists
    suffixes: tuple[str, ...]  #: lower-case file suffixes (the walk takes these by default)
    chunker: Splitter  #: how the file splits into blocks (chunking.py packs them)
    #: LSP `languageId`s editors give these files (VS Code's and LSP's own identifiers)
    lsp_ids: tuple[str, ...]
    #: Neovim 'filetype' values of these files (the Neovim client attaches to these buffers)
    vim_filetypes: tuple[str, ...]
    #: The readable text, line for line (markup.py); plain text reads as itself.
    readable: Readable = lambda text, spans: text.split("\n")
    #: A heading as a reader sees it (markup resolved).
    heading: Callable[[str], str] = lambda title: title


def _paragraphs(text: str, lines: list[str]) -> Iterable[Block]:
    return chunking.paragraph_blocks(lines, 0, len(lines), ())


LANGUAGE_SPECS: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        "markdown", (".md", ".markdown", ".mdx"),
        chunker=lambda text, lines: chunking.markdown_blocks(text),
        lsp_ids=("markdown", "mdx"), vim_filetypes=("markdown", "markdown.mdx", "mdx"),
        readable=lambda text, spans: markup.markdown_readable(text),
        heading=markup.markdown_heading),
    LanguageSpec(
        "restructuredtext", (".rst",),
        chunker=lambda text, lines: chunking.rst_blocks(lines),
        lsp_ids=("restructuredtext",), vim_filetypes=("rst",),
        readable=lambda text, spans: markup.rst_readable(text),
        heading=markup.rst_heading),
    LanguageSpec(
        "python", (".py",),
        chunker=lambda text, lines: chunking.python_blocks(text),
        lsp_ids=("python",), vim_filetypes=("python",),
        readable=markup.python_readable,  # the docstrings' spans; other lines read empty
        heading=markup.rst_heading),  # docstrings are reStructuredText by convention
    LanguageSpec(
        "plaintext", (".txt", ".text", ".adoc", ".org"),
        chunker=_paragraphs,
        lsp_ids=("plaintext", "asciidoc", "org"),
        vim_filetypes=("text", "asciidoc", "asciidoctor", "org")),
)
#: What a file whose suffix is not in the table is read as (an `include` glob can add one).
FALLBACK = LANGUAGE_SPECS[-1]

LANGUAGE_IDS: tuple[str, ...] = tuple(spec.id for spec in LANGUAGE_SPECS)
SUFFIXES: tuple[str, ...] = tuple(s for spec in LANGUAGE_SPECS for s in spec.suffixes)
_BY_ID = {spec.id: spec for spec in LANGUAGE_SPECS}
_BY_SUFFIX = {suffix: spec for spec in LANGUAGE_SPECS for suffix in spec.suffixes}


def language_for(path: str) -> str | None:
    """The language of a file by its suffix; None for a file type that is not indexed."""
    spec = _BY_SUFFIX.get(PurePosixPath(path).suffix.lower())
    return spec.id if spec is not None else None


def spec(language: str) -> LanguageSpec:
    """The spec of a language id (an unknown id reads as plain text)."""
    return _BY_ID.get(language, FALLBACK)
