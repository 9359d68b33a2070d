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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .chunking import Block

#: A document's text (newlines normalised) and its lines, to blocks with line ranges.
Splitter = Callable[[str, list[str]], Iterable["Block"]]
#: A document's text and its blocks' line spans, to one readable string per line.
Readable = Callable[[str, Sequence[tuple[int, int]]], list[str]]
#: Blocks and readable lines from one parse (what `chunker` then `readable` give).
Analyse = Callable[[str, list[str]], tuple[list["Block"], list[str]]]


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
    #: Where one parse yields both the blocks and the readable text (Markdown: parsing each
    #: file twice was a third of the keyword pass on the tldr pages), used instead of
    #: `chunker` + `readable`, with the same result.
    analyse: Analyse | None = None


# The splitters and readers, imported when first used: this module is read by config.py, which
# every command loads, and markdown-it would cost each of them ~0.1 s (chunking.py and
# markup.py also import this module).

def _markdown_blocks(text: str, lines: list[str]) -> Iterable[Block]:
    from .chunking import markdown_blocks

    return markdown_blocks(text)


def _rst_blocks(text: str, lines: list[str]) -> Iterable[Block]:
    from .chunking import rst_blocks

    return rst_blocks(lines)


def _python_blocks(text: str, lines: list[str]) -> Iterable[Block]:
    from .chunking import python_blocks

    return python_blocks(text)


def _paragraphs(text: str, lines: list[str]) -> Iterable[Block]:
    from .chunking import paragraph_blocks

    return paragraph_blocks(lines, 0, len(lines), ())


def _markdown_readable(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    from .markup import markdown_readable

    return markdown_readable(text)


def _markdown_analyse(text: str, lines: list[str]) -> tuple[list[Block], list[str]]:
    from .chunking import markdown_blocks
    from .markup import markdown_parse, markdown_readable

    tokens, env = markdown_parse(text)
    return list(markdown_blocks(text, tokens)), markdown_readable(text, tokens, env)


def _rst_readable(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    from .markup import rst_readable

    return rst_readable(text)


def _docstrings_readable(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """The docstrings' lines (spans), read as reStructuredText; other lines read empty."""
    from .markup import python_readable

    return python_readable(text, spans)


def _markdown_heading(title: str) -> str:
    from .markup import markdown_heading

    return markdown_heading(title)


def _rst_heading(title: str) -> str:
    from .markup import rst_heading

    return rst_heading(title)


LANGUAGE_SPECS: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        "markdown", (".md", ".markdown", ".mdx"),
        chunker=_markdown_blocks,
        lsp_ids=("markdown", "mdx"), vim_filetypes=("markdown", "markdown.mdx", "mdx"),
        readable=_markdown_readable, heading=_markdown_heading, analyse=_markdown_analyse),
    LanguageSpec(
        "restructuredtext", (".rst",),
        chunker=_rst_blocks,
        lsp_ids=("restructuredtext",), vim_filetypes=("rst",),
        readable=_rst_readable, heading=_rst_heading),
    LanguageSpec(
        "python", (".py",),
        chunker=_python_blocks,
        lsp_ids=("python",), vim_filetypes=("python",),
        readable=_docstrings_readable,
        heading=_rst_heading),  # docstrings are reStructuredText by convention
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
    spec = _BY_SUFFIX.get(suffix_of(path).lower())
    return spec.id if spec is not None else None


def suffix_of(path: str) -> str:
    """`PurePosixPath(path).suffix` without making a path (the walk asks per file)."""
    name = path[path.rfind("/") + 1:]
    if not name or name == ".":  # a trailing separator or `.`: pathlib's parsing decides
        return PurePosixPath(path).suffix
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def spec(language: str) -> LanguageSpec:
    """The spec of a language id (an unknown id reads as plain text)."""
    return _BY_ID.get(language, FALLBACK)
