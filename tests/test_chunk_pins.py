"""Chunk output pinned on real corpus files: the chunker was made faster (one Markdown parse for
blocks and readable text, inline parsing only where there is inline markup, token counts
reused), and its output must not move.

There is no independent slow path to compare against, so the digests below were computed
once with the chunker before the speed-up (CHUNKER_VERSION 2; version 3's change, a chunk
starting at its first readable line, leaves these files as they were) on four real files: a
Rust-book chapter (Markdown with code fences and mdBook includes), a PEP
(reStructuredText) and two tldr pages (Markdown lists; one with a backslash escape). Each
digest covers every chunk's start line, end line, heading path and readable text, and the
document title. A change that moves any of them fails here; if that change is meant, it also
needs a CHUNKER_VERSION bump. (The whole of rust-book, peps and tldr-pages chunked identically
before and after too, 8,273 files, again after version 3: checked by hand, too slow for the
suite.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from zero_latency.chunking import (
    CHUNKER_VERSION,
    chunk_document,
    document_title,
    language_for,
    normalise_newlines,
)
from zero_latency.engine import Engine

from .conftest import need_corpus

PINS = {
    ("rust-book", "ch04-01-what-is-ownership.md"):
        "6d97004336f8c45721701446544b3fa0ecbbe05e7bc1ec58d820d22c98f74026",
    ("peps", "pep-0008.rst"):
        "c0c814925ce188011da6935c6eaaa3f87be1a536eb3eab3798daf1416f3ab2ee",
    ("tldr-pages", "common/tar.md"):
        "39943fb31ea36bf780f8bba6be96e92941c1d2b7b4bcdf8764f2edbf74fc024f",
    ("tldr-pages", "common/acme.sh.md"):  # a backslash escape in inline text
        "f30db003ed52748beb085df5395054a9fd511b0a33420f96d78d2976bc98c130",
}


def chunk_digest(corpus: Path, rel: str, engine: Engine) -> str:
    embedder = engine.load_model()
    assert embedder is not None
    text = normalise_newlines((corpus / rel).read_text(encoding="utf-8"))
    language = language_for(rel)
    assert language is not None
    chunks = chunk_document(text, language, embedder.count_tokens,
                            min(256, embedder.max_tokens), 32)
    pinned = (document_title(rel, chunks),
              [(c.start_line, c.end_line, c.heading_path, c.text) for c in chunks])
    return hashlib.sha256(repr(pinned).encode()).hexdigest()


@pytest.mark.parametrize(("corpus", "rel"), list(PINS))
def test_chunks_of_real_files_are_unchanged(corpus: str, rel: str, engine: Engine) -> None:
    assert CHUNKER_VERSION == 3, "a new chunker version: recompute these pins"
    assert chunk_digest(need_corpus(corpus), rel, engine) == PINS[(corpus, rel)]
