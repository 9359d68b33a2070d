"""Structure-aware chunking: Markdown by headings, reStructuredText by sections, Python by
docstrings, plain text by paragraphs (which language uses which splitter: languages.py).

Every splitter first turns a document into *blocks* (a paragraph, a list, a code fence, a
docstring) that carry their exact line range and the heading path above them; one packer then
groups consecutive blocks of one section into chunks that fit the model's token budget, with a
small overlap between the pieces of a section that needs several. Lines are 0-based and
`end_line` is exclusive, matching LSP ranges (`{start: (start_line, 0), end: (end_line, 0)}`).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from markdown_it import MarkdownIt
from markdown_it.token import Token

from .languages import language_for as language_for  # the indexer's and server's lookup
from .languages import spec
from .token_count import TokenCount

#: Hard cap per file so one generated monster cannot swamp the index (documented limit).
MAX_CHUNKS_PER_FILE = 2000
#: Bumped when the same file would chunk differently (2: readable text, markup.py). The
#: indexer records it with each file, so an index built by an older version is re-chunked on
#: the next run (vectors of unchanged chunk text are reused, not re-embedded). 3: a chunk
#: starts at its first readable line (its text's lines map to file lines one to one).
CHUNKER_VERSION = 3


@dataclasses.dataclass(frozen=True)
class Block:
    start_line: int
    end_line: int  # exclusive
    heading_path: tuple[str, ...]
    atomic: bool = False  # a code fence: kept whole where it fits


@dataclasses.dataclass(frozen=True)
class Chunk:
    start_line: int
    end_line: int  # exclusive
    heading_path: tuple[str, ...]
    text: str  # the lines of the file this chunk covers
    #: The model's tokens in the text and its heading path, as the chunker counted them (0:
    #: not counted): the backfill embeds chunks of like length together.
    tokens: int = 0

    def embedding_text(self, title: str) -> str:
        """What the model sees: the heading path (or the document title) gives context."""
        context = " > ".join(self.heading_path) if self.heading_path else title
        return f"{context}\n\n{self.text}" if context else self.text

    def content_hash(self, title: str) -> str:
        return hashlib.blake2b(self.embedding_text(title).encode(), digest_size=16).hexdigest()


def normalise_newlines(text: str) -> str:
    """LSP counts lines at \\n, \\r\\n and \\r; so do we (str.splitlines counts more)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def chunk_document(text: str, language: str, count_tokens: TokenCount,
                   max_tokens: int = 256, overlap_tokens: int = 32) -> list[Chunk]:
    """Split a document (newlines already normalised) into chunks that fit `max_tokens`."""
    lines = text.split("\n")
    language_spec = spec(language)
    if language_spec.analyse is not None:
        blocks, readable = language_spec.analyse(text, lines)
        readable, blocks = readable_blocks(text, language, blocks, readable)
    else:
        readable, blocks = readable_blocks(text, language,
                                           list(language_spec.chunker(text, lines)))
    chunks = pack(blocks, readable, _memoised(count_tokens), max_tokens, overlap_tokens)
    return chunks[:MAX_CHUNKS_PER_FILE]


def _memoised(count_tokens: TokenCount) -> TokenCount:
    """One document's token counts, each text counted once: the packer asks for every block
    and heading path twice or more (three quarters of the tokenizer calls on the tldr pages).
    Per document, so the memory goes with it."""
    counts: dict[str, int] = {}

    def count(text: str) -> int:
        found = counts.get(text)
        if found is None:
            found = counts[text] = count_tokens(text)
        return found

    return count


def readable_blocks(text: str, language: str, blocks: list[Block],
                    readable: list[str] | None = None) -> tuple[list[str], list[Block]]:
    """The document's readable lines (markup.py: what is embedded, indexed and shown; pass
    them when already read) and the blocks that have any readable text: a region that is only
    markup (HTML comments, anchors, include directives) never becomes a chunk. Line numbers
    are unchanged."""
    from .markup import readable_heading, readable_lines

    if readable is None:
        readable = readable_lines(text, language, [(b.start_line, b.end_line) for b in blocks])
    titles: dict[str, str] = {}  # each heading once: a section has many blocks
    paths: dict[tuple[str, ...], tuple[str, ...]] = {}  # and each heading path

    def heading(title: str) -> str:
        if title not in titles:
            titles[title] = readable_heading(title, language) or title
        return titles[title]

    def heading_path(path: tuple[str, ...]) -> tuple[str, ...]:
        found = paths.get(path)
        if found is None:
            found = paths[path] = tuple(map(heading, path))
        return found

    return readable, [Block(b.start_line, b.end_line, heading_path(b.heading_path), b.atomic)
                      for b in blocks
                      if any(line.strip() for line in readable[b.start_line:b.end_line])]


def document_title(path: str, chunks: list[Chunk]) -> str:
    """The first heading, or the file name: prepended to chunks that have no heading path."""
    for chunk in chunks:
        if chunk.heading_path:
            return chunk.heading_path[0]
    return PurePosixPath(path).stem.replace("-", " ").replace("_", " ")


# --- splitters -------------------------------------------------------------------------------

#: Block structure only: the inline pass (links, emphasis, brackets) is never used here and is
#: where markdown-it goes quadratic (400 KB of `[` took 27 s, 100 KB of `![` 13 s; without it
#: 0.02 s). Heading titles come from the inline token's raw `content`, set by the block pass.
_md = MarkdownIt("commonmark").enable("table").disable("inline")


def markdown_blocks(text: str, tokens: list[Token] | None = None) -> Iterator[Block]:
    """Top-level Markdown blocks with line maps from markdown-it-py (a CommonMark parser);
    `tokens`: its block tokens of `text` when already parsed (markup.markdown_parse)."""
    path: list[tuple[int, str]] = []  # (level, title)
    tokens = tokens if tokens is not None else _md.parse(text)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.level != 0 or token.map is None or token.nesting == -1:
            i += 1
            continue
        start, end = token.map
        if token.type == "heading_open":
            level = int(token.tag[1:])
            title = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title))
            yield Block(start, end, tuple(t for _, t in path))
        else:
            yield Block(start, end, tuple(t for _, t in path),
                        atomic=token.type in {"fence", "code_block"})
        i += 1


_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")


def rst_blocks(lines: list[str]) -> Iterator[Block]:
    """reStructuredText sections by their adornment lines, paragraphs inside.

    Hand-rolled on purpose: docutils is a large dependency whose node line numbers are
    unreliable for sections and literal blocks, while section titles are a simple, stable
    pattern (a title line with an under- and optional overline of one punctuation character;
    levels follow the order in which styles first appear).
    """
    styles: list[tuple[str, bool]] = []
    path: list[tuple[int, str]] = []
    n = len(lines)
    body_start = 0
    i = 0
    while i < n:
        title_at, style, consumed = _rst_title(lines, i)
        if title_at is None or style is None:
            i += 1
            continue
        yield from paragraph_blocks(lines, body_start, i, tuple(t for _, t in path))
        if style not in styles:
            styles.append(style)
        level = styles.index(style)
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, lines[title_at].strip()))
        yield Block(i, i + consumed, tuple(t for _, t in path))
        i += consumed
        body_start = i
    yield from paragraph_blocks(lines, body_start, n, tuple(t for _, t in path))


def _rst_title(lines: list[str], i: int) -> tuple[int | None, tuple[str, bool] | None, int]:
    n = len(lines)
    line = lines[i]
    over = _RST_ADORNMENT.match(line)
    if over and i + 2 < n and lines[i + 1].strip() and _RST_ADORNMENT.match(lines[i + 2]):
        title = lines[i + 1].strip()
        if lines[i + 2].strip() == line.strip() and len(line.strip()) >= len(title):
            return i + 1, (line.strip()[0], True), 3
    if (line.strip() and not _RST_ADORNMENT.match(line) and not line[:1].isspace()
            and i + 1 < n and (i == 0 or not lines[i - 1].strip())):
        under = _RST_ADORNMENT.match(lines[i + 1])
        if under and len(lines[i + 1].rstrip()) >= len(line.rstrip()):
            return i, (lines[i + 1].strip()[0], False), 2
    return None, None, 0


def paragraph_blocks(lines: list[str], start: int, end: int,
                     heading_path: tuple[str, ...]) -> Iterator[Block]:
    """Runs of non-blank lines."""
    i = start
    while i < end:
        if not lines[i].strip():
            i += 1
            continue
        j = i
        while j < end and lines[j].strip():
            j += 1
        yield Block(i, j, heading_path)
        i = j


def python_blocks(text: str) -> Iterator[Block]:
    """Docstrings of the module, classes and functions (source code itself is left out: the
    prose is what a docs search is for). Falls back to paragraphs when the file won't parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # RecursionError/MemoryError: generated code nests too deep for the parser (a 12 KB
        # `x = 1+1+...` of 6,000 terms); its text is still indexed, by paragraphs.
        lines = text.split("\n")
        yield from paragraph_blocks(lines, 0, len(lines), ())
        return

    def visit(node: ast.AST, path: tuple[str, ...]) -> Iterator[Block]:
        body = getattr(node, "body", None)
        if isinstance(body, list) and body:
            first = body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str) and first.end_lineno is not None):
                yield Block(first.lineno - 1, first.end_lineno, path)
            for child in body:
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    yield from visit(child, (*path, child.name))

    yield from visit(tree, ())


# --- packing ---------------------------------------------------------------------------------


def pack(blocks: list[Block], lines: list[str], count_tokens: TokenCount,
         max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Group consecutive blocks of one section into chunks of at most `max_tokens`.

    The heading path is counted in the budget since it is embedded with the chunk. A block
    too big for a chunk is split by lines (a code fence only when it cannot fit whole). When a
    section needs several chunks, each new one starts with the previous one's last block if
    that block is within `overlap_tokens`.
    """
    chunks: list[Chunk] = []
    current: list[tuple[Block, int]] = []

    def flush() -> None:
        if current:
            first, last = current[0][0], current[-1][0]
            tokens = (sum(t for _, t in current)
                      + count_tokens(" > ".join(first.heading_path)))
            chunks.append(_make_chunk(lines, first.start_line, last.end_line, first.heading_path,
                                      tokens))

    for block in _split_oversized(blocks, lines, count_tokens, max_tokens):
        tokens = count_tokens(_text(lines, block.start_line, block.end_line))
        budget = max_tokens - count_tokens(" > ".join(block.heading_path))
        same_section = bool(current) and current[0][0].heading_path == block.heading_path
        used = sum(t for _, t in current)
        if same_section and used + tokens <= budget:
            current.append((block, tokens))
            continue
        flush()
        carry = current[-1] if same_section and current else None
        current = []
        if carry and carry[1] <= overlap_tokens and carry[1] + tokens <= budget:
            current.append(carry)
        current.append((block, tokens))
    flush()
    return [c for c in chunks if c.text.strip()]


def _split_oversized(blocks: list[Block], lines: list[str], count_tokens: TokenCount,
                     max_tokens: int) -> Iterator[Block]:
    for block in blocks:
        budget = max(16, max_tokens - count_tokens(" > ".join(block.heading_path)))
        if count_tokens(_text(lines, block.start_line, block.end_line)) <= budget:
            yield block
            continue
        start = block.start_line
        while start < block.end_line:
            end = start + 1
            used = count_tokens(lines[start])
            while end < block.end_line:
                more = count_tokens(lines[end]) + 1
                if used + more > budget:
                    break
                used += more
                end += 1
            yield Block(start, end, block.heading_path)
            start = end


def _text(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start:end])


#: A chunk's stored text is cut here: one giant line (minified or generated text) cannot be
#: split by lines, and the model truncates far earlier anyway.
MAX_CHUNK_CHARS = 8000


def _make_chunk(lines: list[str], start: int, end: int, heading_path: tuple[str, ...],
                tokens: int) -> Chunk:
    # The chunk starts at its first readable line, so line i of its text is file line start+i
    # (search.py maps the snippet's sentence back to its line: a hit's matchRange).
    while start < end - 1 and lines[start] == "":
        start += 1
    return Chunk(start, end, heading_path, _text(lines, start, end).strip("\n")[:MAX_CHUNK_CHARS],
                 tokens)
