"""The chunker's token counts by words (token_count.py) are the tokenizer's own counts: on the
real bundled tokenizer, on every text the chunker asks about in real files of every language
in ../shared, on the whitespace the tokenizer deletes rather than splits at, and a tokenizer
whose counts do not add up over words (byte-level BPE) still counts whole texts."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from zero_latency.chunking import chunk_document, language_for, normalise_newlines
from zero_latency.models import BUNDLED_TOKENIZER
from zero_latency.token_count import WordTokenCount, model_token_count

from .conftest import need_corpus

#: Real files: English Markdown with code, reStructuredText, and tldr pages in German,
#: Chinese, Korean and Russian (CJK text has no spaces between words).
FILES = [
    ("rust-book", "ch04-01-what-is-ownership.md"),
    ("rust-book", "ch16-01-threads.md"),
    ("peps", "pep-0008.rst"),
    ("tldr-pages", "common/tar.md"),
]
I18N_LANGUAGES = ["de", "zh", "ko", "ru"]


def bundled_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(BUNDLED_TOKENIZER))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def whole_count(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def chunker_texts(path: Path, count: WordTokenCount) -> list[str]:
    """Every text the chunker counts while it chunks `path` (blocks, lines, heading paths)."""
    asked: list[str] = []

    def recording(text: str) -> int:
        asked.append(text)
        return count(text)

    language = language_for(path.name)
    assert language is not None
    chunk_document(normalise_newlines(path.read_text(encoding="utf-8")), language,
                   recording, 256, 32)
    return asked


def i18n_files() -> list[Path]:
    root = need_corpus("tldr-pages-i18n")
    found = []
    for lang in I18N_LANGUAGES:
        folder = root / f"pages.{lang}"
        pages = sorted(folder.rglob("*.md")) if folder.is_dir() else []
        found += pages[:40]
    if not found:
        pytest.skip(f"no tldr pages in {I18N_LANGUAGES} under {root}")
    return found


def test_the_bundled_tokenizer_is_counted_by_words_and_each_count_is_its_own() -> None:
    tokenizer = bundled_tokenizer()
    count = model_token_count(tokenizer)
    assert isinstance(count, WordTokenCount), "a BERT tokenizer's counts add up over words"
    paths = [need_corpus(corpus) / rel for corpus, rel in FILES] + i18n_files()
    checked = 0
    for path in paths:
        for text in chunker_texts(path, count):
            assert count(text) == whole_count(tokenizer, text), (path, text[:200])
            checked += 1
    assert checked > 500


@pytest.mark.parametrize("space", ["\f", "\v", "\x1c", "\x1f", "\x85"])
def test_whitespace_the_tokenizer_deletes_is_counted_whole(space: str) -> None:
    """BertNormalizer deletes these control characters (Python splits at them): the words
    around one are one word to the model."""
    tokenizer = bundled_tokenizer()
    count = model_token_count(tokenizer)
    text = f"page{space}break and{space}more words{space}here"
    assert whole_count(tokenizer, text) != sum(whole_count(tokenizer, w) for w in text.split())
    assert count(text) == whole_count(tokenizer, text)


def test_spaces_the_tokenizer_splits_at_are_counted_by_words() -> None:
    tokenizer = bundled_tokenizer()
    count = model_token_count(tokenizer)
    for space in [" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000"]:
        text = f"ownership{space}rules{space}每个值都有一个所有者"
        assert count(text) == whole_count(tokenizer, text), repr(space)


def test_a_byte_level_tokenizer_counts_whole_texts(tmp_path: Path) -> None:
    """Byte-level BPE marks a word that follows a space (`Ġ`): a word counted alone is not
    counted as it is in its text, so such a tokenizer never goes by words."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = need_corpus("rust-book") / "ch04-01-what-is-ownership.md"
    trainer = trainers.BpeTrainer(vocab_size=600, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train([str(corpus)], trainer)
    count = model_token_count(tokenizer)
    assert not isinstance(count, WordTokenCount)
    text = corpus.read_text(encoding="utf-8")[:2000]
    assert count(text) == whole_count(tokenizer, text)


def test_the_word_memory_starts_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    import zero_latency.token_count as token_count

    monkeypatch.setattr(token_count, "MAX_WORDS", 8)
    tokenizer = bundled_tokenizer()
    count = model_token_count(tokenizer)
    assert isinstance(count, WordTokenCount)
    text = " ".join(f"word{n}" for n in range(50))
    assert count(text) == whole_count(tokenizer, text)
    assert len(count._words) <= 8
    assert count(text) == whole_count(tokenizer, text)
