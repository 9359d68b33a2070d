"""How many tokens a model's tokenizer makes of a text: the chunker's budget (chunking.py).

The chunker counts every block, every line of an oversized one and every heading path of a
document, and the Hugging Face tokenizer is the keyword pass's largest single cost (~0.2 ms
per chunk, a third of chunking on the tldr pages). For a tokenizer that splits words at
whitespace and never looks across it (a WordPiece/BERT pipeline: the bundled MiniLM,
gte-small), a text's count is the sum of its whitespace-separated words' counts, so each
distinct word is counted by the tokenizer once and remembered (`WordTokenCount`). That is the
tokenizer's own count, not an estimate: the words are counted by the tokenizer itself, and
whether a tokenizer qualifies is decided from its pipeline and then checked on probe texts.
Any other tokenizer (byte-level BPE, SentencePiece, anything unknown) counts whole texts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

TokenCount = Callable[[str], int]

#: Normalizers that act on each character (or a character and its combining marks) and never
#: join or split across whitespace, and pre-tokenizers that split at whitespace and drop it.
_PER_CHARACTER_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD",
                              "StripAccents"}
_WHITESPACE_SPLITTERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
#: Every character Python's `str.split()` splits at: each is checked to be a boundary for the
#: tokenizer too (BertNormalizer deletes some control characters, e.g. a form feed, which
#: joins the words around them: a text holding one is counted whole).
_PYTHON_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
#: Texts checked against the whole-text count before the word counts are trusted.
_PROBES = (
    "Hello, world! Ownership rules: each value has an owner.\n\n  fn main() { x += 1; }",
    "naïve café — Straße ÉCOLE 東京タワー 한국어 문서 Привет, мир",
    "[CLS] [MASK] ##ing un-believable snake_case CamelCase 3.14159 https://example.com/a?b=c",
)
#: Words remembered per counter: a corpus's vocabulary stays well under this (measured: 62k
#: distinct words in tldr-pages, 129k in peps); past it the memory starts over.
MAX_WORDS = 500_000


def model_token_count(tokenizer: Any) -> TokenCount:
    """How many tokens a `tokenizers.Tokenizer` (untruncated) makes of a text, without the
    special ones: by words (`WordTokenCount`) where its pipeline allows, else whole texts
    through `encode_batch_fast` (it skips the offsets that `encode` computes: the same
    counts for 14 % less CPU)."""
    def whole(text: str) -> int:
        return len(tokenizer.encode_batch_fast([text], add_special_tokens=False)[0])

    joining = _joining_whitespace(tokenizer, whole)
    if joining is None:
        return whole
    return WordTokenCount(whole, joining)


class WordTokenCount:
    """A text's token count as the sum of its words' (`str.split()`), each distinct word
    counted once by `whole`; a text holding a character of `joining` (whitespace to Python
    that the tokenizer deletes instead of splitting at) is counted whole."""

    def __init__(self, whole: TokenCount, joining: str) -> None:
        self._whole = whole
        self._joining = re.compile(f"[{re.escape(joining)}]") if joining else None
        self._words: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if self._joining is not None and self._joining.search(text):
            return self._whole(text)
        words = self._words
        total = 0
        for word in text.split():
            found = words.get(word)
            if found is None:
                if len(words) >= MAX_WORDS:
                    words.clear()
                found = words[word] = self._whole(word)
            total += found
        return total


def _joining_whitespace(tokenizer: Any, whole: TokenCount) -> str | None:
    """The Python whitespace characters the tokenizer does not split at, when it is one whose
    counts add up over whitespace-separated words; None when it is not (or cannot be told)."""
    try:
        config = json.loads(tokenizer.to_str())
    except Exception:  # not a `tokenizers.Tokenizer`: count whole texts
        return None
    splitters = _step_types(config.get("pre_tokenizer"))
    if not (_step_types(config.get("normalizer")) <= _PER_CHARACTER_NORMALIZERS
            and splitters and splitters <= _WHITESPACE_SPLITTERS
            and not any(any(c.isspace() for c in str(added.get("content", "")))
                        for added in config.get("added_tokens") or [])):
        return None
    joining = "".join(c for c in _PYTHON_WHITESPACE
                      if whole(f"a{c}b") != whole("a") + whole("b"))
    if any(sum(whole(w) for w in text.split()) != whole(text) for text in _PROBES
           if not any(c in text for c in joining)):
        return None
    return joining


def _step_types(step: dict[str, Any] | None) -> set[str]:
    """The types of a normalizer's or pre-tokenizer's steps (a Sequence's, flattened)."""
    if step is None:
        return set()
    if step.get("type") == "Sequence":
        inner = step.get("normalizers") or step.get("pretokenizers") or []
        return set().union(*(_step_types(s) for s in inner)) if inner else set()
    return {str(step.get("type"))}
