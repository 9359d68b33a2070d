"""The readable text of a document, line for line: what is embedded, keyword-indexed and shown.

Chunks keep the exact line ranges of the file (a hit opens where its text is), but the text
stored for a chunk is what a reader sees, not the markup around it: HTML comments and empty
anchors dropped, links reduced to their text, mdBook `{{#include …}}` directives and code-fence
markers out, reStructuredText roles, substitutions, targets and directive syntax resolved to
their text, docstring quotes removed. Each function here returns one string per line of the
document (a line that is only markup becomes ""), so a line range maps to readable text with
no offsets to track, and a region that is only markup reads as empty and never becomes a chunk.

Markdown goes through markdown-it-py's token stream (the same CommonMark parser the chunker
uses); HTML inside it through the standard library's HTMLParser. reStructuredText is resolved
by patterns: docutils is not a dependency (see chunking.rst_blocks), and the constructs that
matter for reading are a short, stable list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html.parser import HTMLParser

from markdown_it import MarkdownIt
from markdown_it.token import Token

from .languages import spec

#: mdBook preprocessor directives: `{{#include file.rs}}`, `{{#rustdoc_include …}}`, `{{#title …}}`.
_MDBOOK_DIRECTIVE = re.compile(r"\{\{#[^{}\n]*\}\}")
#: Link syntax markdown-it leaves as text when the reference is not defined in the file
#: (mdBook resolves some across files): `[text][ref]`, `[text][]`.
_UNRESOLVED_REF_LINK = re.compile(r"\[([^\[\]\n]+)\]\[[^\[\]\n]*\]")
#: HTML attributes whose values are prose a reader sees (a figure's caption, an image's alt).
_TEXT_ATTRIBUTES = ("caption", "alt", "title")


class _TextOnly(MarkdownIt):
    """markdown-it that keeps link destinations as written: only a link's text is read here,
    and normalising every URL (percent-encoding, punycode) was a third of the inline pass's
    time on a line with a link (every tldr page ends with one): 3% of a chunking worker's
    CPU on tldr pages. Still checked by `validateLink` (a `javascript:` link stays text);
    the chunks of every file in ../shared's corpora (39,229) are the same."""

    def normalizeLink(self, url: str) -> str:
        return url


_md = _TextOnly("commonmark").enable("table")
#: Blocks only: inline markup is parsed per paragraph below, where its cost can be bounded.
_md_blocks = _TextOnly("commonmark").enable("table").disable("inline")
#: A paragraph longer than this is read as plain text: markdown-it's inline pass is quadratic
#: on some inputs (400 KB of "[" took 27 s), and no real paragraph is this long.
MAX_INLINE_CHARS = 20_000


def readable_lines(text: str, language: str,
                   spans: Sequence[tuple[int, int]] = ()) -> list[str]:
    """One readable string per line of `text` (newlines already normalised), by the language's
    spec (languages.py). `spans` are the (start, end) line ranges of Python docstrings; other
    Python lines read as empty."""
    return spec(language).readable(text, spans)


def readable_heading(title: str, language: str) -> str:
    """A section title as a reader sees it (`Using `Arc<T>`` reads "Using Arc<T>")."""
    return spec(language).heading(title)


def markdown_heading(title: str) -> str:
    inline = _md.parseInline(title)
    return _clean_text(" ".join(_inline_lines(inline[0].children or []))) if inline else title


def rst_heading(title: str) -> str:
    return " ".join(_rst_inline(title, {}).split())


# --- Markdown --------------------------------------------------------------------------------


def markdown_parse(text: str) -> tuple[list[Token], dict[str, object]]:
    """markdown-it-py's block tokens and env (the reference definitions it collected): one
    parse serves both the chunk boundaries (chunking.markdown_blocks) and the readable text."""
    env: dict[str, object] = {}
    return _md_blocks.parse(text, env), env


def markdown_readable(text: str, tokens: list[Token] | None = None,
                      env: dict[str, object] | None = None) -> list[str]:
    """Readable Markdown lines from markdown-it-py's block tokens (pass them and their env
    when already parsed)."""
    lines = text.split("\n")
    out = [""] * len(lines)
    if tokens is None or env is None:
        tokens, env = markdown_parse(text)
    prefix = ""  # an ordered list item's number, put before its first line
    for token in tokens:
        if token.type == "list_item_open" and token.info:
            prefix = f"{token.info}{token.markup} "
        elif token.type == "inline" and token.map is not None:
            children = token.children
            if (not children and len(token.content) <= MAX_INLINE_CHARS
                    and _INLINE_MARKUP.search(token.content)):
                children = _parse_inline(token.content, env)
            parts = (_inline_lines(children) if children
                     else token.content.split("\n"))
            for k, line in enumerate(parts):
                _put(out, token.map[0] + k, prefix + _clean_text(line) if k == 0 else
                     _clean_text(line))
            prefix = ""
        elif token.type in ("fence", "code_block") and token.map is not None:
            first = token.map[0] + (1 if token.type == "fence" else 0)  # fence markers out
            for k, line in enumerate(token.content.split("\n")[:-1]):
                _put(out, first + k, _MDBOOK_DIRECTIVE.sub("", line).rstrip())
        elif token.type == "html_block" and token.map is not None:
            for k, line in enumerate(html_text_lines(token.content)):
                _put(out, token.map[0] + k, _clean_text(line))
    _beyond_nesting(lines, tokens, out)
    return out


#: Leaf tokens that account for every line of their map (table_open: the delimiter row too).
_LEAVES = {"inline", "fence", "code_block", "html_block", "hr", "table_open", "heading_open"}
#: Container markers at the start of a line (block quotes, list items).
_CONTAINER_MARKERS = re.compile(r"^(?:[ \t]*(?:>|(?:[*+-]|\d{1,9}[.)])(?=[ \t]|$)))*[ \t]*")
_REFERENCE_DEFINITION = re.compile(r"^\[[^\]]+\]:")


def _beyond_nesting(lines: list[str], tokens: list[Token], out: list[str]) -> None:
    """Text markdown-it-py stopped parsing (containers nested deeper than its maxNesting) is
    not in any token: read those lines without their container markers, so no text is lost."""
    covered = bytearray(len(lines))
    for token in tokens:
        if token.type in _LEAVES and token.map is not None:
            covered[token.map[0]:token.map[1]] = b"\x01" * (min(token.map[1], len(lines))
                                                            - token.map[0])
    for token in tokens:
        if token.level != 0 or token.nesting != 1 or token.map is None:
            continue
        for i in range(token.map[0], min(token.map[1], len(lines))):
            if not covered[i] and lines[i].strip():
                rest = _CONTAINER_MARKERS.sub("", lines[i], count=1)
                if not _REFERENCE_DEFINITION.match(rest):
                    _put(out, i, _clean_text(rest))


#: The characters that start inline markup in commonmark mode (escapes, code spans, emphasis,
#: links, images, autolinks, inline HTML, entities). Content without any parses to its own
#: lines (line breaks' surrounding spaces aside, which _clean_text collapses anyway): it is
#: read as is, without the inline parser.
_INLINE_MARKUP = re.compile(r"[\\`*_\[\]!<&]")


def _parse_inline(content: str, env: dict[str, object]) -> list[Token]:
    """The inline tokens of one block's content: markdown-it's inline parser called directly
    (what `parseInline` runs, without building a core state and running the core chain per
    paragraph, a third of the keyword pass on the tldr pages). The core chain's only other
    effects in commonmark mode: newline/NUL normalisation (the block parse already did it) and
    `text_join`, which turns `text_special` (escapes) into text: `_inline_lines` reads
    `text_special` as text instead."""
    children: list[Token] = []
    _md.inline.parse(content, _md, env, children)
    return children


def _inline_lines(children: list[Token]) -> list[str]:
    """The text of an inline token, split where the source line breaks: emphasis, link and
    image syntax dropped (their text kept), inline HTML (comments, anchors, spans) dropped."""
    lines = [""]
    for child in children:
        if child.type in ("softbreak", "hardbreak"):
            lines.append("")
        elif child.type in ("text", "text_special", "code_inline"):
            lines[-1] += child.content
        elif child.type == "image":
            lines[-1] += " ".join(_inline_lines(child.children or []))
    return lines


def _clean_text(line: str) -> str:
    line = _MDBOOK_DIRECTIVE.sub("", line)
    line = _UNRESOLVED_REF_LINK.sub(r"\1", line)
    return " ".join(line.split()) if line.strip() else ""


def _put(out: list[str], index: int, text: str) -> None:
    if 0 <= index < len(out) and text:
        out[index] = f"{out[index]} {text}" if out[index] else text  # table cells share a line


class _HtmlText(HTMLParser):
    """Text and prose attributes of an HTML fragment by line; comments and tags dropped."""

    def __init__(self, line_count: int) -> None:
        super().__init__(convert_charrefs=True)
        self.lines = [""] * line_count
        self.in_code = False  # inside <script> or <style>: not prose

    def _add(self, text: str) -> None:
        line = self.getpos()[0] - 1
        for k, piece in enumerate(text.split("\n")):
            if piece.strip() and 0 <= line + k < len(self.lines):
                self.lines[line + k] += piece

    def handle_data(self, data: str) -> None:
        if not self.in_code:
            self._add(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.in_code = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.in_code = True
        for name, value in attrs:
            if name in _TEXT_ATTRIBUTES and value:
                self._add(f" {value.replace('`', '')} ")


def html_text_lines(html: str) -> list[str]:
    parser = _HtmlText(len(html.split("\n")))
    parser.feed(html)
    if parser.rawdata.lstrip().startswith("<"):  # an unclosed comment or tag: not text
        parser.rawdata = ""
    parser.close()
    return parser.lines


# --- reStructuredText ------------------------------------------------------------------------

_RST_EXPLICIT = re.compile(r"^(\s*)\.\.(\s|$)")
_RST_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:.+-]+)::(.*)$")
_RST_SUBSTITUTION_DEF = re.compile(r"^\s*\.\.\s+\|([^|\n]+)\|\s+([\w:.+-]+)::\s*(.*)$")
_RST_SUBSTITUTION_DEFS = re.compile(r"^[ \t]*\.\.[ \t]+\|([^|\n]+)\|[ \t]+([\w:.+-]+)::[ \t]*(.*)$",
                                    re.M)
_RST_FOOTNOTE = re.compile(r"^(\s*)\.\.\s+\[[^\]\n]+\]\s*(.*)$")
_RST_ANONYMOUS_TARGET = re.compile(r"^\s*__\s")
_RST_OPTION = re.compile(r"^\s+:[\w .-]+:(\s|$)")
_RST_ADORNMENT_LINE = re.compile(r"^([!-/:-@\[-`{-~])\1{3,}\s*$")
_RST_FIELD = re.compile(r"^([ \t]*):(\w[^:`\n]*):(?=[ \t]|$)", re.M)
_RST_LITERAL_MARKER = re.compile(r"([ \t]*)::[ \t]*$", re.M)
#: Directives whose body is not prose (file lists, raw output, includes): dropped with it.
_RST_DROP_BODY = {"toctree", "include", "literalinclude", "raw", "highlight", "contents",
                  "sectnum", "meta", "index", "image", "target-notes", "footer", "header"}
#: Directives whose argument is a title or text a reader sees.
_RST_TITLED = {"note", "warning", "attention", "caution", "danger", "error", "hint",
               "important", "tip", "admonition", "topic", "sidebar", "rubric", "epigraph",
               "seealso", "deprecated", "versionadded", "versionchanged", "figure",
               "table", "list-table", "csv-table"}

_RST_LITERAL = re.compile(r"``(.+?)``", re.S)
_RST_PEP_ROLE = re.compile(r":(pep|rfc):`(\d+)(#[^`]*)?`", re.I)
_RST_ROLE_NAME = re.compile(r":[\w:.+-]+:(?=`)")
#: `title <target>`_ (also a role's explicit title, once the role name is gone).
_RST_TITLED_REF = re.compile(r"`([^`<]+?)\s*<[^`>]*>`(?:__?)?", re.S)
_RST_REFERENCE = re.compile(r"`([^`]+)`(?:__?)?", re.S)
_RST_FOOTNOTE_REF = re.compile(r"\[(?:\d+|#[\w.-]*|\*|[A-Za-z][\w.-]*)\]_(?!\w)")
_RST_SUBSTITUTION = re.compile(r"\|(\S(?:[^|\n]*\S)?)\|(?:__?)?(?![\w|])")
_RST_STRONG = re.compile(r"\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*(?![\w*])")
_RST_EMPHASIS = re.compile(r"\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?![\w*])")


def rst_readable(text: str) -> list[str]:
    """Readable reStructuredText lines: explicit markup (comments, targets, substitution
    definitions, directive lines and their options) dropped, directive bodies kept unless
    they are not prose, inline markup (roles, literals, references, substitutions, emphasis)
    reduced to its text."""
    lines = text.split("\n")
    substitutions = {m[1]: m[3] for m in _RST_SUBSTITUTION_DEFS.finditer(text)
                     if m[2] == "replace"}
    kept = _rst_drop_explicit_markup(lines)
    return _rst_inline("\n".join(kept), substitutions).split("\n")


def _rst_drop_explicit_markup(lines: list[str]) -> list[str]:
    out = list(lines)
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        first = line.lstrip()[:1]
        if first.isalnum() or not first:  # plain text (most lines): nothing to drop
            i += 1
            continue
        explicit = _RST_EXPLICIT.match(line)
        if _RST_ADORNMENT_LINE.match(line) or line.strip() == "::":
            out[i] = ""
        elif _RST_ANONYMOUS_TARGET.match(line):
            out[i] = ""
            i = _skip_body(lines, i, len(line) - len(line.lstrip()), out)
            continue
        elif explicit:
            indent = len(explicit[1])
            directive = _RST_DIRECTIVE.match(line)
            footnote = _RST_FOOTNOTE.match(line)
            if directive and not _RST_SUBSTITUTION_DEF.match(line):
                name = directive[2].lower().split(":")[-1]
                out[i] = directive[3].strip() if name in _RST_TITLED else ""
                if name in _RST_DROP_BODY:
                    i = _skip_body(lines, i, indent, out)
                    continue
                i += 1
                while i < n and _RST_OPTION.match(lines[i]):  # :option: lines, then the body
                    out[i] = ""
                    i += 1
                continue
            if footnote:  # its text is prose: keep it, without the label
                out[i] = f"{footnote[1]}{footnote[2]}"
            else:  # a comment, a target or a substitution definition: not read
                out[i] = ""
                i = _skip_body(lines, i, indent, out)
                continue
        i += 1
    return out


def _skip_body(lines: list[str], i: int, indent: int, out: list[str]) -> int:
    """Blank the lines indented under explicit markup at `i`; the index after them."""
    i += 1
    while i < len(lines) and (not lines[i].strip()
                              or len(lines[i]) - len(lines[i].lstrip()) > indent):
        out[i] = ""
        i += 1
    return i


def _same_lines(replace: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
    """A substitution that keeps the line count (line ranges must not move)."""

    def keep(match: re.Match[str]) -> str:
        text = replace(match)
        missing = match[0].count("\n") - text.count("\n")
        return text + "\n" * missing if missing > 0 else text

    return keep


def _rst_inline(text: str, substitutions: dict[str, str]) -> str:
    literals: list[str] = []

    def hold(match: re.Match[str]) -> str:  # literal text is left exactly as written
        literals.append(match[1])
        return f"\x00{len(literals) - 1}\x00"

    def unless_inside_word(group: int | Callable[[re.Match[str]], str],
                           ) -> Callable[[re.Match[str]], str]:
        """Inline markup starts after a space or punctuation, not inside a word (`a*b*c`):
        checked here rather than by a look-behind, which would defeat the regex engine's
        literal-prefix search (five times slower on the PEPs)."""

        def replace(match: re.Match[str]) -> str:
            before = match.string[match.start() - 1] if match.start() else " "
            if before.isalnum() or before in "_*|\\":
                return match[0]
            return group(match) if callable(group) else match[group]

        return replace

    text = _RST_LITERAL.sub(hold, text)
    text = _RST_PEP_ROLE.sub(lambda m: f"{m[1].upper()} {m[2]}", text)
    text = _RST_ROLE_NAME.sub("", text)
    text = _RST_TITLED_REF.sub(_same_lines(lambda m: m[1]), text)
    text = _RST_REFERENCE.sub(_same_lines(lambda m: _role_target(m[1])), text)
    if "]_" in text:  # footnote references go, with the space before them
        text = re.sub("[ \t]*\x01", "", _RST_FOOTNOTE_REF.sub("\x01", text))
    text = _RST_SUBSTITUTION.sub(unless_inside_word(lambda m: substitutions.get(m[1], m[1])),
                                 text)
    text = _RST_STRONG.sub(unless_inside_word(1), text)
    text = _RST_EMPHASIS.sub(unless_inside_word(1), text)
    text = _RST_FIELD.sub(r"\1\2:", text)  # ":param x: …" reads "param x: …"
    # "Example::" introduces a literal block and reads "Example:"; a lone " ::" goes.
    text = _RST_LITERAL_MARKER.sub(_literal_marker, text)
    return re.sub("\x00(\\d+)\x00", lambda m: literals[int(m[1])], text)


def _literal_marker(match: re.Match[str]) -> str:
    before = match.string[match.start() - 1] if match.start() else "\n"
    return ":" if not match[1] and not before.isspace() else ""


def _role_target(target: str) -> str:
    """`~module.Class` shows as `Class`, `!name` as `name` (Sphinx's conventions)."""
    target = target.strip().lstrip("!")
    if target.startswith("~"):
        return target[1:].rsplit(".", 1)[-1]
    return target


# --- Python docstrings -----------------------------------------------------------------------

_DOCSTRING_OPEN = re.compile(r"^(\s*)[rRuUbBfF]{0,2}(\"\"\"|'''|\"|')")


def python_readable(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """Docstring lines without their quotes, read as reStructuredText (the usual docstring
    markup: roles, literals, field lists); lines outside `spans` read as empty."""
    lines = text.split("\n")
    out = [""] * len(lines)
    for start, end in spans:
        body = list(lines[start:end])
        if not body:
            continue
        opened = _DOCSTRING_OPEN.match(body[0])
        quote = opened[2] if opened else '"""'
        if opened:
            body[0] = body[0][:len(opened[1])] + body[0][opened.end():]
        last = body[-1].rstrip()
        if last.endswith(quote):
            body[-1] = last[: -len(quote)]
        for k, line in enumerate(rst_readable("\n".join(body))):
            out[start + k] = line
    return out
