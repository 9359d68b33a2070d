"""LSP base-protocol framing (`Content-Length` headers) that a broken client cannot wedge.

pygls's reader matches one exact header spelling, trusts any Content-Length and, on a frame it
cannot use, keeps reading the following messages as the body of the bad one: the server stays
alive but never answers again. This parser is written here, not taken from a library, because it
has to do what no LSP library we know of does: resynchronise. Header names are
case-insensitive and lines may end in LF alone; a Content-Length that is missing, not a number,
negative or over `MAX_BODY_BYTES` is reported and the stream skips to the next header; a body
that turns out shorter than announced (a complete JSON value followed by the next header) is
cut there, and what is left of a body longer than announced is dropped up to the next header,
even where it runs into that header on one line. Every problem becomes a `FramingError` the
caller answers as the JSON-RPC spec says (-32700 / -32600 with a null id), and reading goes
on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

#: Larger bodies are refused without being buffered (a 10^12 Content-Length must not allocate).
MAX_BODY_BYTES = 64 * 1024 * 1024
#: A header block longer than this with no blank line after it is garbage.
MAX_HEADER_BYTES = 8 * 1024

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN_START = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Frame:
    """One message body, exactly as framed."""

    body: bytes


@dataclass(frozen=True)
class FramingError:
    """A frame that could not be used; `message_id` when the body still named one."""

    message: str
    code: int = -32700  # ParseError; -32600 InvalidRequest when the body was readable
    message_id: int | str | None = None


class FrameParser:
    """Feed bytes in, take frames and framing errors out, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._body_length: int | None = None  # set while waiting for a body
        self._skipping = False  # after an error: discard up to the next Content-Length
        self._scanned = 0  # how much of a partial body was searched for a next header

    def feed(self, data: bytes) -> list[Frame | FramingError]:
        self._buffer += data
        out: list[Frame | FramingError] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def _next(self) -> Frame | FramingError | None:
        if self._skipping and not self._resync():
            return None
        if self._body_length is None:
            return self._read_headers()
        return self._read_body(self._body_length)

    def _resync(self) -> bool:
        match = _CONTENT_LENGTH.search(self._buffer)
        if match is None:
            # Keep a tail that may be the start of a header split across reads.
            del self._buffer[:max(0, len(self._buffer) - 32)]
            return False
        del self._buffer[:match.start()]
        self._skipping = False
        return True

    def _fail(self, message: str, code: int = -32700,
              message_id: int | str | None = None) -> FramingError:
        self._body_length = None
        self._scanned = 0
        self._skipping = True
        return FramingError(message, code, message_id)

    def _read_headers(self) -> Frame | FramingError | None:
        del self._buffer[:len(self._buffer) - len(self._buffer.lstrip(b"\r\n"))]
        if not self._buffer:
            return None
        if not _TOKEN_START.match(self._buffer):
            # Not a header: a body sent with no header, or noise. Say so, with the id when it
            # is a readable request so that its sender is not left waiting; a body still
            # arriving is waited for (up to the header limit).
            complete = _leading_json(bytes(self._buffer))
            if (not complete and bytes(self._buffer[:1]) in (b"{", b"[")
                    and len(self._buffer) <= MAX_HEADER_BYTES
                    and not _CONTENT_LENGTH.search(self._buffer)):
                return None
            return self._fail("a message arrived without a Content-Length header", -32700,
                              _id_of(_leading_json(bytes(self._buffer))))
        end = _HEADER_END.search(self._buffer)
        glued = _CONTENT_LENGTH.search(self._buffer, 1, end.start() if end else len(self._buffer))
        if glued is not None and self._buffer[glued.start() - 1] not in b"\r\n":
            # The rest of a body whose Content-Length was too small, stuck to the next header
            # ('...status"}Content-Length: 52'): read as a header line it would take that
            # header with it. Drop what comes before the header, and read on from there.
            del self._buffer[:glued.start()]
            return FramingError("bytes that are not a message came before a header (a "
                                "Content-Length smaller than its body?): dropped")
        if end is None:
            if len(self._buffer) > MAX_HEADER_BYTES:
                return self._fail("header block too long, or no blank line after the headers")
            return None
        length: int | None = None
        offset = 0
        for line in bytes(self._buffer[:end.start()]).splitlines(keepends=True):
            offset += len(line)
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.fullmatch(name.strip()):
                del self._buffer[:offset]  # the next line may be a good header: resync there
                return self._fail(f"malformed header line {_show(line.strip())}")
            if name.strip().lower() == b"content-length":
                text = value.strip()
                if not text.isdigit():
                    del self._buffer[:end.end()]
                    return self._fail(f"Content-Length is not a number: {_show(text)}")
                length = int(text)
        del self._buffer[:end.end()]
        if length is None:
            return self._fail("a message arrived without a Content-Length header")
        if length == 0:
            return self._fail("Content-Length is 0: an empty message")
        if length > MAX_BODY_BYTES:
            return self._fail(f"Content-Length {length} is over the limit of "
                              f"{MAX_BODY_BYTES} bytes")
        self._body_length = length
        return self._read_body(length)

    def _read_body(self, length: int) -> Frame | FramingError | None:
        if len(self._buffer) >= length:
            body = bytes(self._buffer[:length])
            shorter = self._announced_too_much(body)
            if shorter is None:
                del self._buffer[:length]
                self._body_length = None
                self._scanned = 0
                return Frame(body)
            return self._cut_short(shorter, length)
        # Not all there yet. If what is there is a complete message followed by the next
        # header, the Content-Length was too large: waiting would eat the next messages.
        # (Searched incrementally: a large body arrives in many reads.)
        start = max(0, self._scanned - 32)
        self._scanned = len(self._buffer)
        if _CONTENT_LENGTH.search(self._buffer, start) is None:
            return None
        shorter = self._announced_too_much(bytes(self._buffer))
        if shorter is not None:
            return self._cut_short(shorter, length)
        return None

    def _announced_too_much(self, data: bytes) -> int | None:
        """Where a complete JSON value ends in `data`, when a Content-Length header follows."""
        header = _CONTENT_LENGTH.search(data)
        if header is None:
            return None
        try:
            _, end = _DECODER.raw_decode(data[:header.start()].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return len(data[:header.start()].decode("utf-8")[:end].encode("utf-8"))

    def _cut_short(self, end: int, announced: int) -> FramingError:
        body = bytes(self._buffer[:end])
        del self._buffer[:end]
        message_id = _id_of(body)
        return self._fail(f"Content-Length {announced} does not match the message "
                          f"({end} bytes): message dropped", -32600, message_id)


def _leading_json(data: bytes) -> bytes:
    """The complete JSON value at the start of `data`, if there is one."""
    text = data.decode("utf-8", "replace")
    try:
        _, end = _DECODER.raw_decode(text.lstrip())
    except ValueError:
        return b""
    return text.lstrip()[:end].encode("utf-8")


def _id_of(body: bytes) -> int | str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    found = data.get("id") if isinstance(data, dict) else None
    return found if isinstance(found, int | str) and not isinstance(found, bool) else None


def _show(data: bytes) -> str:
    """A short, printable quote of client bytes for an error message."""
    text = data[:40].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > 40 else ""))
