"""The query path's faster keyword evidence gives what the plain definitions give: the share
of query terms found (`term_share`) and the snippet's term matches (`_matcher`, and its one
regular expression over a text) against `_matches`, the light stem match, word by word; the
BM25 share read from the chunk's stored sparse vector (no text analysed at search time) against
the share of the query's terms among that vector's terms, and against `SparseEncoder.evidence`
of the text BM25 was given; evidence worked out on demand as it was worked out for every hit
(issue 22: hybrid as cheap as semantic). Whole result lists before/after:
benchmarks/search_modes.py --record / --compare."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from zero_latency import search
from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.indexer import chunk_languages
from zero_latency.sparse import SparseEncoder, query_languages
from zero_latency.stores import StoredHit
from zero_latency.stores.base import embedding_text

from .conftest import need_corpus


def _reference_share(text: str, terms: list[str]) -> float:
    if not terms:
        return 0.0
    words = {w.lower() for w in search._WORD.findall(text)}
    return sum(1 for t in terms if any(search._matches(w, [t]) for w in words)) / len(terms)


def test_term_share_and_matcher_equal_the_plain_stem_match() -> None:
    rng = random.Random(22)
    for alphabet in ("abc", "abcde", "aéK", "aBcD"):
        def word(alphabet: str = alphabet) -> str:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9)))

        for _ in range(3000):
            terms = [t.lower() for t in dict.fromkeys(word() for _ in range(rng.randint(0, 6)))]
            words = [word() for _ in range(rng.randint(0, 40))]
            # Any separators, and space around the text (its snippet scans it stripped).
            text = rng.choice(["", " ", "\n  "]) + "".join(
                w + rng.choice([" ", ", ", ".\n", "-", "\n\n"]) for w in words)
            assert search.term_share(text, terms) == _reference_share(text, terms)
            matches = search._matcher(tuple(terms))
            for w in words:
                assert matches(w.lower()) == search._matches(w.lower(), terms)


def test_term_share_examples() -> None:
    assert search.term_share("Rotating the keys daily", ["rotate", "daily"]) == 1.0
    assert search.term_share("rotated", ["rotate"]) == 1.0
    assert search.term_share("rotational", ["rotate"]) == 0.0  # more than 3 letters longer
    assert search.term_share("Rotate", ["rotate", "daily"]) == 0.5
    assert search.term_share("nothing here", []) == 0.0



def _texts() -> list[str]:
    """Real chunk-sized texts (English prose and code from the Rust book, tldr pages in
    English, German, Korean, Russian and Chinese) and made-up ones where sentences, list items
    and paragraphs meet words and punctuation."""
    texts: list[str] = []
    for chapter in sorted(need_corpus("rust-book").glob("ch0*.md"))[:6]:
        body = chapter.read_text(encoding="utf-8")
        texts += [body[i : i + 1200] for i in range(0, min(len(body), 12_000), 1200)]
    tldr = need_corpus("tldr-pages")
    texts += [p.read_text(encoding="utf-8") for p in sorted((tldr / "common").glob("*.md"))[:40]]
    for folder in sorted(need_corpus("tldr-pages-i18n").glob("pages.*")):
        texts += [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*/*.md"))[:15]]
    rng = random.Random(22)
    parts = ["ab", "abc. ", "Abcd! ", "\n", "\n\n", "\n- ", "\n1. ", " ", "é", "x_y", "-", "?"]
    texts += ["".join(rng.choice(parts) for _ in range(60)) for _ in range(300)]
    return texts


def _queries(texts: list[str]) -> list[list[str]]:
    """Query terms as search makes them, from words of the texts (some cut to a stem, some
    lengthened), a word found in none, and a few made for the made-up texts."""
    rng = random.Random(22)
    words = [w.lower() for t in texts for w in search._WORD.findall(t)]
    queries = [[], ["ab"], ["abcd", "abc"], ["xy", "x_y"]]
    for _ in range(60):
        picked = [rng.choice(words) for _ in range(rng.randint(1, 6))]
        picked += [w[:-1] for w in picked if len(w) > 4 and rng.random() < 0.3]
        picked += [w + "s" for w in picked if rng.random() < 0.2] + ["zzyzx"]
        queries.append(search.query_terms(" ".join(picked)))
    return queries


def test_the_snippet_from_one_pass_equals_the_word_by_word_snippet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts()
    queries = _queries(texts)
    pairs = [(t, q) for i, t in enumerate(texts) for q in queries[i % 7 :: 7]]
    fast = [search.make_snippet(t, q) for t, q in pairs]
    monkeypatch.setattr(search._Matcher, "words", lambda self, text: None)
    search._matcher.cache_clear()
    assert fast == [search.make_snippet(t, q) for t, q in pairs]
    search._matcher.cache_clear()


def test_lower_casing_keeps_every_word_where_it_was() -> None:
    """What `_lowered` relies on: a character that lowers to one character is a word character
    exactly when its lower case is (every code point of this Python's Unicode tables)."""
    for code in range(0x110000):
        c = chr(code)
        lowered = c.lower()
        if len(lowered) == 1:
            assert bool(search._WORD.match(c)) == bool(search._WORD.match(lowered)), hex(code)
    assert search._lowered("Straße ΣΟΦΙΑ") is None  # capital sigma lowers by its context
    assert search._lowered("İstanbul") is None  # one character lowers to two
    assert search._lowered("Größe Kelvin \u212a") == "größe kelvin k"


#: Queries in the five languages of `_texts`' pages, and an English one of the Rust book's.
_EVIDENCE_QUERIES = ["archive files", "Dateien archivieren", "압축 파일", "архив файлы", "压缩文件",
                     "ownership borrowing references", "list the contents of a directory"]


def _evidence_workspace(root: Path) -> None:
    """Real pages (tldr in five languages, Rust-book chapters) in a fresh workspace."""
    real = _texts()[:-300]  # not the made-up ones
    for i, text in enumerate(real[::3]):
        (root / f"page{i:03}.md").write_text(text, encoding="utf-8")


def test_the_bm25_share_is_the_share_of_query_terms_in_the_stored_sparse_vector(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk's BM25 share, read from the real store (the first hits' in one read, the
    others' one by one), is the share of the query's terms (for the chunk's language) among
    its stored sparse vector's terms, which are the analysis of what BM25 was given
    (`SparseEncoder.evidence` of its heading path or title and text), whatever languages
    the query was analysed for (the query's terms are reused where that analysis is the
    chunk language's); and a hybrid search analyses no chunk's text."""
    ws = tmp_path / "ws"
    ws.mkdir()
    _evidence_workspace(ws)
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        index = engine.open_workspace(ws)
        engine.index([ws])
        store, sparse = index.store, SparseEncoder()
        ids = [pid for state in index.files.values() for pid in state.chunk_ids]
        payloads = store.payloads(ids)
        vectors = store.sparse_vectors(ids)
        assert set(vectors) == set(payloads) == set(ids) and len(ids) > 50
        shares: set[float] = set()
        workspace = query_languages(chunk_languages([index]))
        assert len(workspace) > 1
        for query, languages in itertools.product(
                _EVIDENCE_QUERIES, [workspace, [], ["en"], ["de"], ["ko", "en"]]):
            wanted = search._EvidenceTerms(sparse, query, languages,
                                           sparse.query(query, languages))
            stored = search._StoredTerms(store, ids, 10)
            for pid in ids:
                hit = search._hit(index, StoredHit(pid, 0.0, payloads[pid]))
                got = search._bm25_share(wanted, hit, stored)()
                terms = sparse.evidence_terms(query, hit.lang)
                have = set(vectors[pid].indices)
                assert got == (sum(1 for t in terms if t in have) / len(terms) if terms
                               else 0.0), (query, pid)
                assert got == sparse.evidence(embedding_text(payloads[pid]), query, hit.lang)
                shares.add(got)
        assert {0.0, 1.0} < shares and any(0 < x < 1 for x in shares)  # every case met

        def analyse(self: SparseEncoder, text: str) -> object:
            raise AssertionError(f"a chunk's text analysed at search time: {text[:40]!r}")

        monkeypatch.setattr(SparseEncoder, "analyse", analyse)
        for query in _EVIDENCE_QUERIES:
            assert engine.search(query, limit=30, mode="hybrid")["hits"], query
    finally:
        engine.close()


def test_evidence_is_worked_out_only_when_asked_and_as_before() -> None:
    asked: list[str] = []

    def part(name: str, value: float) -> Callable[[], float]:
        def get() -> float:
            asked.append(name)
            return value
        return get

    some = search.Evidence(part("words", 0.5), part("bm25", 0.25))
    assert some.positive() and asked == ["bm25"]  # a BM25 term found: the words not split
    assert some.value() == 0.5 and asked == ["bm25", "words"]
    assert some.value() == 0.5 and asked == ["bm25", "words"]  # once each
    asked.clear()
    every = search.Evidence(part("words", 0.5), part("bm25", 1.0))
    assert every.value() == 1.0 and asked == ["bm25"]  # every term found: words cannot add
    asked.clear()
    none = search.Evidence(part("words", 0.25), part("bm25", 0.0))
    assert none.positive() and asked == ["bm25", "words"]
    assert not search.Evidence(part("w", 0.0), part("b", 0.0)).positive()
    assert search.Evidence(part("w", 0.75), None).value() == 0.75  # no BM25 side: the words
    merged = search.Evidence.either(search.Evidence.settled(0.25), none)
    assert merged.share() == 0.25 and merged.value() == 0.25
    assert search.Evidence.either(search.Evidence.settled(0.0),
                                  search.Evidence(part("w", 0.0), part("b", 0.5))).value() == 0.5
    assert search.Evidence.either(search.Evidence(part("w", 0.5), part("b", 0.0)),
                                  search.Evidence(part("w", 0.0), part("b", 0.25))).value() == 0.5
    # The same value in whatever order the sides are asked: the better of the two.
    rng = random.Random(22)
    for _ in range(200):
        words, bm25 = rng.choice([0.0, 0.25, 0.5, 1.0]), rng.choice([0.0, 0.25, 0.5, 1.0])
        first = search.Evidence(part("w", words), part("b", bm25))
        assert first.positive() == (max(words, bm25) > 0)
        assert first.value() == search.Evidence(part("w", words), part("b", bm25)).value() \
            == max(words, bm25)
    hit = search.Hit(uri="", path="", start=0, end=1, score=0.0, heading=[], text="",
                     language="plaintext", root="")
    assert hit.evidence == 0.0
    hit.evidence = 0.5
    assert hit.keyword.value() == hit.evidence == 0.5


def test_a_query_word_with_a_combining_mark_counts_as_the_words_see_it() -> None:
    """"İstanbul" lower-cases to "i" + U+0307 + "stanbul": a word of a text, split by the mark,
    never equals it, so it is not found (as `_matches` word by word), in the share the hit's
    keyword evidence and its snippet's search share."""
    terms = search.query_terms("İstanbul")
    assert terms == ["i\u0307stanbul"]
    text = "From i\u0307stanbul to Ankara"
    assert search.term_share(text, terms) == _reference_share(text, terms) == 0.0
