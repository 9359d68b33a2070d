"""Search: one Qdrant query per workspace (dense + BM25 fused in the store, DBSF), then hits
people can use: at most one per chunk, adjacent chunks of one file merged, a snippet centred on the
sentence that best matches the query with the query terms marked, the line range of that
sentence (`matchRange`), a 0–1 `score` in every mode, and no hit below the relevance floor.

Scores. The store's own scores are not comparable across modes or queries (BM25 is unbounded,
DBSF fusion rescales each query's candidates to its own distribution, so a nonsense query's
best candidate still scores near the top). What is absolute is the cosine similarity between the
query and a chunk's dense vector: the floor and the 0–1 score are built on it, and keyword mode
(no query vector) saturates its BM25 score instead. The figures are chosen, with what each costs
in recall, by `python benchmarks/floor.py` (SciFact training queries and a docs corpus).

During the backfill (chunks still without a dense vector) hybrid does not use the store's
fusion, which gives such a chunk only its BM25 share, so embedded chunks crowd out better
keyword matches (SciFact nDCG@10 at 50 % coverage 0.69, below keyword-only 0.81). It asks the
store for the two candidate lists and fuses them here (`fuse_partial`: DBSF with the missing
dense share imputed), then reads the payloads of the hits kept; nothing pending, the store's
path runs unchanged. Figures: benchmarks/coverage_quality.py.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from .config import LANGUAGES, MAX_LIMIT, MAX_QUERY_CHARS
from .embedder import Embedder
from .errors import InvalidParamsError
from .files import glob_spec
from .indexer import WorkspaceIndex, chunk_languages
from .sparse import (
    NEUTRAL,
    SparseEncoder,
    detect_scored,
    evidence_in,
    query_languages,
    query_profiles,
    script_language,
)
from .stores import (
    HYBRID_FUSION,
    Fusion,
    Mode,
    PathFilter,
    SparseVec,
    Store,
    StoredHit,
    Vector,
    candidate_depth,
)

SNIPPET_CHARS = 240
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*+#>|]|\s*\d+\.)")
_STOPWORDS = frozenset(
    "a an and are as at be by do does for from how i in is it of on or the to what when where "
    "which who why with".split()
)


#: The relevance floor: a hit whose chunk's cosine similarity to the query is below this is
#: left out in semantic and hybrid mode, unless every query term is in it (above_floor).
#: Chosen by benchmarks/floor.py; see FLOOR_EVIDENCE there.
COSINE_FLOOR = 0.30
#: The 0–1 score maps cosine linearly from COSINE_ZERO (score 0) to COSINE_FULL (score 1).
COSINE_ZERO = 0.10
COSINE_FULL = 0.75
#: Keyword mode's score: BM25 / (BM25 + KEYWORD_HALF), half at a typical one-term match.
KEYWORD_HALF = 5.0
#: Hybrid's score: this much of it is the share of query terms found in the chunk.
TERM_WEIGHT = 0.2
#: Hybrid's dense share, against the BM25 share, for a chunk or a query in a language the model
#: does not cover: UNCOVERED_DENSE_WEIGHTS by language, else UNCOVERED_DENSE_WEIGHT. Measured by
#: `benchmarks/languages.py --dense-weights` (tldr pages, bundled English MiniLM, per-language
#: keyword analysis v4), hybrid MRR@10. 300 pages, 100 queries, at 0.5 / 0.7 / 0.85 / 1.0:
#: de 0.816 / 0.821 / 0.825 / 0.826, ru 0.720 / 0.756 / 0.790 / 0.767. 600 pages, 300
#: queries, at 0.3 / 0.4 / 0.5 / 0.6 / 0.7 / 1.0: zh 0.644 / 0.648 / 0.663 / 0.663 / 0.666 /
#: 0.649, ko 0.707 / 0.707 / 0.708 / 0.703 / 0.699 / 0.675 (keyword 0.599 and 0.668). In an
#: alphabet the English model's subwords still carry names, commands and cognates (German and
#: Russian semantic MRR 0.68 and 0.59, beside keyword 0.73 and 0.59): full weight. Chinese,
#: Japanese and Korean text is a string of characters it was never trained to relate
#: (semantic 0.38 and 0.45): half, and so for Thai, Lao, Khmer and Burmese, written without
#: spaces, whose every run the model's WordPiece vocabulary reads as one [UNK] (a Thai page's
#: vector is that token's: it sat at cosine 0.95 to a two-character Chinese query). Below 1.0
#: the weighting applies per chunk and query language (`_dense_weights`); at 1.0 the store
#: fuses, as for a covered language.
UNCOVERED_DENSE_WEIGHT = 1.0
UNCOVERED_DENSE_WEIGHTS: dict[str, float] = dict.fromkeys(
    ("zh", "ja", "ko", "th", "lo", "km", "my"), 0.5)


def uncovered_weight(language: str) -> float:
    """The dense share of a chunk or query in `language`, which the model does not cover."""
    return UNCOVERED_DENSE_WEIGHTS.get(language, UNCOVERED_DENSE_WEIGHT)


#: The fastText probability above which a Latin-script query is taken to be in the language
#: detected (a short query's language is hard to tell: below it, the model is trusted).
QUERY_LANGUAGE_CONFIDENCE = 0.8


class Evidence:
    """A hit's keyword evidence: the better of the share of the query's terms found among the
    chunk's words (`term_share`, light stemming) and among its BM25 terms (which match in any
    language). Worked out only when something asks (the floor, for a hit under the cosine
    floor; the 0–1 score of a returned hybrid hit): most candidates are never asked. The BM25
    side first: it reads terms the store holds, where the words side scans the chunk's text."""

    __slots__ = ("_bm25", "_full", "_keyed", "_share", "_words")

    def __init__(self, words: Callable[[], float], bm25: Callable[[], float] | None) -> None:
        self._words: Callable[[], float] | None = words
        self._bm25 = bm25
        self._share: float | None = None
        self._keyed: float | None = None
        self._full: float | None = None

    @classmethod
    def settled(cls, value: float) -> Evidence:
        evidence = cls(lambda: value, None)
        evidence._share = evidence._keyed = evidence._full = value
        return evidence

    @classmethod
    def either(cls, a: Evidence, b: Evidence) -> Evidence:
        """The evidence of two merged hits: the better of the two."""
        return cls(lambda: max(a.share(), b.share()), lambda: max(a.keyed(), b.keyed()))

    def share(self) -> float:
        """The share found among the words: a lower bound of `value`."""
        if self._share is None:
            assert self._words is not None
            self._share, self._words = self._words(), None
        return self._share

    def keyed(self) -> float:
        """The share found among the BM25 terms (0 without them): a lower bound of `value`,
        cheaper."""
        if self._keyed is None:
            self._keyed = self._bm25() if self._bm25 is not None else 0.0
            self._bm25 = None
        return self._keyed

    def value(self) -> float:
        if self._full is None:
            keyed = self.keyed()
            # Every term found: the words' share (at most 1) cannot add.
            self._full = keyed if keyed >= 1.0 else max(keyed, self.share())
        return self._full

    def positive(self) -> bool:
        """`value() > 0`, from the BM25 terms alone where they hold a term."""
        return self.keyed() > 0 or self.share() > 0


@dataclasses.dataclass
class Hit:
    uri: str
    path: str
    start: int
    end: int
    score: float  # the store's raw score: the ranking within one mode
    heading: list[str]
    text: str  # readable text; its line i is file line `text_line + i`
    language: str
    root: str
    source: str = "disk"  # "buffer": the text is an editor's unsaved buffer
    embedded: bool = True  # False: the chunk has no dense vector yet (keyword match only)
    text_line: int = -1  # -1: `start`
    id: str = ""
    relevance: float = 0.0  # the 0–1 score shown
    cosine: float | None = None  # to the query's vector, where both have one
    #: An un-embedded chunk's cosine as hybrid's partial fusion imputes it (see fuse_partial).
    estimate: float | None = None
    lang: str = NEUTRAL  # the natural language of the chunk (its keyword analysis)
    title: str = ""  # the document's title (its BM25 terms include it and the heading path)
    #: The share of the query's terms that the chunk holds (`evidence`), worked out when asked.
    keyword: Evidence = dataclasses.field(default_factory=lambda: Evidence.settled(0.0),
                                          repr=False, compare=False)
    #: Its 0–1 score, worked out when it is returned (`settle`); None: `relevance` as set.
    rate: Callable[[], float] | None = dataclasses.field(default=None, repr=False,
                                                          compare=False)

    @property
    def evidence(self) -> float:
        """The share of the query's terms that the chunk's words or BM25 terms hold."""
        return self.keyword.value()

    @evidence.setter
    def evidence(self, value: float) -> None:
        self.keyword = Evidence.settled(value)

    def settle(self) -> None:
        """Work out the 0–1 score of a hit that is returned."""
        if self.rate is not None:
            self.relevance, self.rate = self.rate(), None

    def to_wire(self, terms: list[str] | QueryMatches) -> dict[str, Any]:
        snippet, marks, (first, last) = make_snippet(self.text, terms)
        base = self.start if self.text_line < 0 else self.text_line
        match_start, match_end = base + first[0], base + last[0]
        if not self.start <= match_start < self.end:  # a stale payload: never outside range
            match_start, match_end, first = self.start, self.start, (0, 0)
        match_end = min(max(match_end, match_start), self.end - 1)
        return {
            "uri": self.uri,
            "range": {"start": {"line": self.start, "character": 0},
                      "end": {"line": self.end, "character": 0}},
            "matchRange": {"start": {"line": match_start, "character": first[1]},
                           "end": {"line": match_end + 1, "character": 0}},
            "score": round(self.relevance, 4),
            "rawScore": round(self.score, 6),
            "headingPath": self.heading,
            "snippet": snippet,
            "highlights": marks,
            "language": self.language,
            "path": self.path,
            "source": self.source,
            "embedded": self.embedded,
        }


def query_terms(query: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(query)]
    return [w for w in dict.fromkeys(words) if w not in _STOPWORDS and len(w) > 1]


def search(indexes: Sequence[WorkspaceIndex], embedder: Embedder | None, sparse: SparseEncoder,
           query: str, limit: int = 10, mode: Mode = "hybrid",
           include: Sequence[str] = (), exclude: Sequence[str] = (),
           fusion: Fusion = HYBRID_FUSION,
           languages: Sequence[str] | None = None) -> dict[str, Any]:
    """Blocking search across workspace indexes; returns the docs/search result shape."""
    started = time.perf_counter()
    query = query.strip()
    if not query:
        raise InvalidParamsError("query: must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidParamsError(f"query: longer than {MAX_QUERY_CHARS} characters")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParamsError(f"limit: must be between 1 and {MAX_LIMIT}")
    # Every parameter is checked before any work (the query embedding) is done.
    for name, globs in (("include", include), ("exclude", exclude)):
        for glob in globs:
            if glob.startswith(("/", "\\")) or ".." in glob.replace("\\", "/").split("/"):
                raise InvalidParamsError(f"{name}: {glob!r} is not a workspace-relative glob")
    if languages is not None:
        unknown = sorted(set(languages) - set(LANGUAGES))
        if unknown:
            raise InvalidParamsError(f"languages: unknown {', '.join(map(repr, unknown))} "
                                     f"(known: {', '.join(LANGUAGES)})")
    include_spec, exclude_spec = glob_spec(list(include)), glob_spec(list(exclude))
    effective: Mode = mode
    notice = None
    if embedder is None and mode != "keyword":
        effective = "keyword"
        notice = "no embedding model is loaded: keyword results only"
    dense = embedder.embed_query(query) if embedder is not None and effective != "keyword" else None
    chunk_langs = chunk_languages(indexes)
    analysed_for = query_languages(chunk_langs)
    sparse_q = sparse.query(query, analysed_for)
    covered = embedder.languages if embedder is not None else None
    query_weight = query_dense_weight(query, covered)
    uncovered = covered is not None and any(
        lang not in covered and lang != NEUTRAL and uncovered_weight(lang) < 1.0
        for lang in chunk_langs)
    terms = query_terms(query)
    matches = QueryMatches(terms)  # the evidence and the snippet of a hit scan its text once
    hits: list[Hit] = []
    wanted = _EvidenceTerms(sparse, query, analysed_for, sparse_q)
    coverage = _coverage(indexes) if embedder is not None else None
    for index in indexes:
        only: list[str] | None = None
        never: list[str] = []
        if include_spec is not None or exclude_spec is not None:
            paths = list(index.files)
            only = [p for p in paths if include_spec.match_file(p)] if include_spec else None
            never = [p for p in paths if exclude_spec.match_file(p)] if exclude_spec else []
        where = PathFilter(only=only, never=never, languages=languages)
        pending = coverage is not None and index.counts().pending > 0
        weighed = query_weight < 1.0 or uncovered
        if ((pending or weighed) and effective == "hybrid" and dense is not None
                and sparse_q.indices):
            weights = (_dense_weights(covered, query_weight) if weighed else None)
            found, cosines = _partial_hybrid(index, dense, sparse_q, limit * 2, where, weights)
        else:
            read = index.store.query(dense, sparse_q if effective != "semantic" else None,
                                     effective, limit * 2, where, fusion)
            found = [_hit(index, h) for h in read]
            cosines = _cosines(index, found, dense, effective)
        if pending:
            # Which hits have a dense vector yet: the store scored a cosine for those only.
            have = (set(cosines) if effective != "keyword"
                    else set(index.store.vectors([h.id for h in found])))
            for hit in found:
                hit.embedded = hit.id in have
        stored = _StoredTerms(index.store, [h.id for h in found], limit)
        for hit in found:
            hit.cosine = cosines.get(hit.id)
            hit.keyword = Evidence(functools.partial(matches.share, hit.text),
                                   _bm25_share(wanted, hit, stored))
            hit.rate = functools.partial(_rate, effective, hit.score,
                                         hit.cosine if hit.embedded else hit.estimate,
                                         hit.keyword)
        hits += found
    hits.sort(key=lambda h: h.score, reverse=True)
    merged = merge_adjacent(hits)
    kept = floor(effective, merged, trust_cosine=query_weight >= 1.0, limit=limit)
    for hit in kept[:limit]:
        hit.settle()
    monotone(kept[:limit])
    result: dict[str, Any] = {
        "hits": [h.to_wire(matches) for h in kept[:limit]],
        "elapsedMs": round((time.perf_counter() - started) * 1000, 2),
        "mode": effective,
    }
    if coverage is not None:
        result["coverage"] = coverage
        notice = notice or _partial_notice(effective, coverage)
    below = min(limit, len(merged)) - min(limit, len(kept))
    if below:
        result["belowFloor"] = below
    if notice:
        result["notice"] = notice
    return result


def query_dense_weight(query: str, covered: frozenset[str] | None) -> float:
    """The query's dense share: 1.0 where the model's vectors cover its language (any
    language for a multilingual model, None), else `uncovered_weight` of that language. A
    query with letters outside the Latin script is covered when fastText is fairly sure of a
    covered language, a Latin-script one unless it is confident of a language the model does
    not cover."""
    if covered is None:
        return 1.0
    found = detect_scored(query)
    if not found:
        return 1.0
    top, score = found[0]
    if all(ord(c) < 0x250 for c in query if c.isalpha()):  # Latin script
        if top in covered or score < QUERY_LANGUAGE_CONFIDENCE:
            return 1.0
        return uncovered_weight(top)
    if top in covered and score >= 0.5:
        return 1.0
    if score < 0.5:  # unsure: its script tells
        top = script_language(query) or top
    return uncovered_weight(top) if top not in covered else UNCOVERED_DENSE_WEIGHT


def _dense_weights(covered: frozenset[str] | None,
                   query_weight: float) -> Callable[[str], float]:
    def weight(lang: str) -> float:
        chunk = (1.0 if covered is None or lang in covered or lang == NEUTRAL
                 else uncovered_weight(lang))
        return min(chunk, query_weight)
    return weight


def _coverage(indexes: Sequence[WorkspaceIndex]) -> dict[str, int] | None:
    """`{files, keywordChunks, embeddedChunks}` while any chunk waits for its dense vector
    (the backfill, pass 2 of indexing, is still running or paused); None once all have one."""
    counts = [index.counts() for index in indexes]
    if not any(c.pending for c in counts):
        return None
    return {"files": sum(len(index.files) for index in indexes),
            "keywordChunks": sum(c.chunks for c in counts),
            "embeddedChunks": sum(c.embedded for c in counts)}


def _partial_notice(mode: Mode, coverage: dict[str, int]) -> str | None:
    embedded, total = coverage["embeddedChunks"], coverage["keywordChunks"]
    share = f"{embedded:,} of {total:,} chunks ({embedded * 100 // max(total, 1)}%)"
    if mode == "semantic":
        return (f"semantic results come from the {share} embedded so far; the rest is still "
                "being embedded (keyword search covers every file)")
    if mode == "hybrid":
        return (f"meaning is matched in the {share} embedded so far, keywords in every file; "
                "results improve as embedding goes on")
    return None


def _cosines(index: WorkspaceIndex, found: list[Hit], dense: Vector | None,
             mode: Mode) -> dict[str, float]:
    """Each hit's cosine similarity to the query: the store's own score in semantic mode;
    in hybrid mode (whose fused score is not one) scored by the store for these hits."""
    if dense is None:
        return {}
    if mode == "semantic":
        return {h.id: h.score for h in found}
    return index.store.cosines(dense, [h.id for h in found])


def _partial_hybrid(index: WorkspaceIndex, dense: Vector, sparse_q: SparseVec, limit: int,
                    where: PathFilter, weights: Callable[[str], float] | None = None
                    ) -> tuple[list[Hit], dict[str, float]]:
    """Hybrid while some chunks still wait for their dense vector, or where the model does not
    cover every language of the query and the workspace: the dense and the BM25 candidate lists
    (as deep as the store's own prefetches, ids and scores only) fused here by `fuse_partial`,
    then the payloads of the `limit` best. `weights`: a chunk's dense weight by its language
    (then every candidate's language is read first). Also returns the cosine of every hit
    that has a vector (a hit without one is not embedded yet)."""
    depth = candidate_depth(limit)
    dense_list = index.store.query(dense, None, "semantic", depth, where, payload=False)
    sparse_list = index.store.query(None, sparse_q, "keyword", depth, where, payload=False)
    cosines = {h.id: h.score for h in dense_list}
    # A keyword candidate outside the dense list either has no vector yet or one too far from
    # the query to be among the dense candidates: the store scores it if it has one.
    cosines.update(index.store.cosines(dense, [h.id for h in sparse_list
                                               if h.id not in cosines]))
    dense_weight: dict[str, float] | None = None
    if weights is not None:
        candidates = list(dict.fromkeys([h.id for h in dense_list] + [h.id for h in sparse_list]))
        lowest = weights(NEUTRAL)  # the query's own weight: no chunk's language raises it
        if lowest <= min([UNCOVERED_DENSE_WEIGHT, *UNCOVERED_DENSE_WEIGHTS.values()]):
            # every chunk's weight: no language to read
            dense_weight = dict.fromkeys(candidates, lowest)
        else:  # every candidate's language (that field only)
            langs = index.store.payloads(candidates, fields=["lang"])
            dense_weight = {pid: weights(str(p.get("lang", NEUTRAL)))
                            for pid, p in langs.items()}
    fused = fuse_partial([(h.id, h.score) for h in dense_list],
                         [(h.id, h.score) for h in sparse_list], cosines,
                         dense_weight)[:limit]
    payloads = index.store.payloads([pid for pid, _, _ in fused])
    hits = []
    for pid, score, estimate in fused:
        if pid in payloads:
            hit = _hit(index, StoredHit(pid, score, payloads[pid]))
            hit.estimate = estimate
            hits.append(hit)
    return hits, {h.id: cosines[h.id] for h in hits if h.id in cosines}


#: How strongly `fuse_partial`'s line through the embedded BM25 candidates is pulled toward
#: slope 1 (a pending chunk's dense share rises with its BM25 share): as much as that much
#: spread of their BM25 shares (sum of squares) would weigh. Without it, candidates that all
#: have one BM25 share (near-duplicates that share the query's common words) made the line
#: flat, and a pending chunk that alone held the query's rare word was imputed their mean
#: dense share: 60 near-duplicate notes on 20 animals, "the pangolin forages" and 39 more
#: queries, at coverages of 5 to 95 % (as an order embeds them): a note of the queried animal
#: first in 741 of 760 cases in file-name order, 693 in longest-first order; with the prior,
#: 760 in both. SciFact's nDCG@10 gained too (see fuse_partial).
SLOPE_PRIOR = 3.0


def dbsf_scale(scores: Sequence[float]) -> tuple[float, float]:
    """Qdrant's distribution-based normalisation of one candidate list, as its DBSF fusion
    does it: `(score - low) / span` with low = mean - 3σ, span = 6σ (sample σ; not clipped, so
    an outlier at the top scores above 1). One score: 0.5; all equal: 0.5."""
    n = len(scores)
    if n < 2:
        return (scores[0] - 0.5, 1.0) if n else (0.0, 1.0)
    mean = sum(scores) / n
    sigma = (sum((s - mean) ** 2 for s in scores) / (n - 1)) ** 0.5
    if sigma == 0.0:
        return mean - 0.5, 1.0
    return mean - 3 * sigma, 6 * sigma


def fuse_partial(dense: Sequence[tuple[str, float]], sparse: Sequence[tuple[str, float]],
                 cosines: dict[str, float], weights: dict[str, float] | None = None
                 ) -> list[tuple[str, float, float | None]]:
    """Hybrid's fusion while the backfill runs: `(id, score, estimated cosine)` best first.
    `cosines`: every candidate that has a dense vector, its cosine to the query. `weights`:
    a candidate's dense share is multiplied by its weight (1 where absent): the model does
    not cover its language or the query's.

    DBSF as the store does it (each list normalised by `dbsf_scale`, the two shares summed),
    except that a chunk is never scored as if its vector had been looked at and found far from
    the query. An embedded chunk found by BM25 alone gets the dense share of its real cosine;
    a chunk with no vector yet gets the dense share that embedded candidates with its BM25
    share have in this query: a least-squares line through (BM25 share, dense share) of the
    embedded BM25 candidates, its slope pulled toward 1 by `SLOPE_PRIOR` (fewer than 3 of
    them: its own BM25 share). Its estimated cosine is that share mapped back through the
    dense list's scale (for the 0–1 score).

    Chosen on SciFact (benchmarks/coverage_quality.py; tune half, confirmed on the holdout
    half). nDCG@10 at 25/50/75 % coverage, holdout: the line without the prior 0.803/0.814/
    0.829; the imputed share being the chunk's own BM25 share 0.803/0.804/0.821; the store's
    DBSF ~0.69 at 50 %; keyword-only 0.800, full coverage 0.835. The prior, scored offline on
    the same candidate lists, holdout, random order / longest chunks first: 0.817/0.822/0.839
    and 0.814/0.831/0.840 against 0.804/0.816/0.837 and 0.814/0.826/0.840 for the bare line."""
    d_low, d_span = dbsf_scale([s for _, s in dense])
    s_low, s_span = dbsf_scale([s for _, s in sparse])
    fused = {pid: (score - d_low) / d_span for pid, score in dense}
    shares = [(pid, (score - s_low) / s_span) for pid, score in sparse]
    known = [(share, (cosines[pid] - d_low) / d_span) for pid, share in shares if pid in cosines]
    slope, offset = 1.0, 0.0  # too few embedded candidates: its own BM25 share
    if len(known) >= 3:
        mean_x = sum(x for x, _ in known) / len(known)
        mean_y = sum(y for _, y in known) / len(known)
        spread_x = sum((x - mean_x) ** 2 for x, _ in known)
        moment = sum((x - mean_x) * (y - mean_y) for x, y in known)
        slope = (moment + SLOPE_PRIOR) / (spread_x + SLOPE_PRIOR)
        offset = mean_y - slope * mean_x
    estimates: dict[str, float] = {}
    weight = (weights or {}).get
    for pid in fused:
        fused[pid] *= weight(pid, 1.0)
    for pid, share in shares:
        if pid in cosines:
            dense_share = (cosines[pid] - d_low) / d_span
            if weights is not None and pid not in fused:
                # A language the model does not cover: a keyword match whose vector is far
                # from the query's is not sunk below every dense candidate (the store's DBSF
                # gives a candidate outside its dense list 0, not less). A Chinese query's one
                # keyword hit came 100th of 100 and was cut: hybrid answered nothing.
                dense_share = max(dense_share, 0.0)
            fused[pid] = weight(pid, 1.0) * dense_share + share
        else:
            imputed = slope * share + offset
            fused[pid] = weight(pid, 1.0) * imputed + share
            estimates[pid] = d_low + imputed * d_span
    ranked = sorted(fused.items(), key=lambda item: item[1], reverse=True)
    return [(pid, score, estimates.get(pid)) for pid, score in ranked]


def relevance(mode: Mode, raw: float, cosine: float | None, terms_found: float) -> float:
    """The 0–1 score of a hit: calibrated cosine (semantic), saturated BM25 (keyword), mostly
    cosine with a share for the query terms found (hybrid). A hybrid hit whose chunk has no
    vector yet is given the cosine `fuse_partial` imputes to it (so it reads like an embedded
    hit of equal rank, not like a bare keyword match); with none, the term share only."""
    if mode == "keyword":
        return max(raw, 0.0) / (max(raw, 0.0) + KEYWORD_HALF)
    if cosine is None:
        return TERM_WEIGHT * terms_found if mode == "hybrid" else 0.0
    semantic = min(max((cosine - COSINE_ZERO) / (COSINE_FULL - COSINE_ZERO), 0.0), 1.0)
    if mode == "semantic":
        return semantic
    return (1 - TERM_WEIGHT) * semantic + TERM_WEIGHT * terms_found


def _rate(mode: Mode, raw: float, cosine: float | None, evidence: Evidence) -> float:
    """`relevance`, asking for the keyword evidence only in hybrid mode (the others ignore it)."""
    return relevance(mode, raw, cosine, evidence.value() if mode == "hybrid" else 0.0)


def _bm25_share(wanted: _EvidenceTerms, hit: Hit, stored: _StoredTerms) -> Callable[[], float]:
    """The share of the query's BM25 terms (analysed once per chunk language: `wanted`) that
    the hit's chunk holds, as BM25 was given it (its stored sparse vector: the text is not
    analysed again), when called."""
    lang, pid = hit.lang, hit.id

    def share() -> float:
        return evidence_in(stored(pid), wanted(lang))
    return share


class _EvidenceTerms:
    """The query's BM25 terms that keyword evidence looks for in a chunk, by the chunk's
    language (`SparseEncoder.evidence_terms`), each analysed once per search. Where a
    language's profiles are those the query was already analysed for (`SparseEncoder.query`
    analyses for English and the profiles of the languages it is given: an English chunk in
    an English workspace), that analysis' terms are these: the query is not analysed again
    (~0.3 ms of a hybrid search, issue 22)."""

    __slots__ = ("_analysed", "_by_language", "_profiles", "_query", "_sparse")

    def __init__(self, sparse: SparseEncoder, query: str, languages: Sequence[str],
                 analysed: SparseVec) -> None:
        self._sparse, self._query, self._analysed = sparse, query, analysed
        self._profiles = query_profiles(languages)
        self._by_language: dict[str, list[int]] = {}

    def __call__(self, language: str) -> list[int]:
        terms = self._by_language.get(language)
        if terms is None:
            if query_profiles((language,)) == self._profiles:
                terms = list(self._analysed.indices)
            else:
                terms = self._sparse.evidence_terms(self._query, language)
            self._by_language[language] = terms
        return terms


class _StoredTerms:
    """The BM25 terms of one index's hits, read from the store when first asked (~8 µs a
    chunk, where analysing its text again took ~0.3 ms): at the first question those of the
    first `first` hits (the ones that are shown, unless merging or the floor drops some) in
    one read, then any other hit's alone. Hybrid asks about ~35 of its 60 hits at limit 30
    (every hit shown, a few below the cosine floor further down), not all (issue 22)."""

    __slots__ = ("_first", "_ids", "_sets", "_store")

    def __init__(self, store: Store, ids: list[str], first: int | None = None) -> None:
        self._store, self._ids, self._first = store, ids, first
        self._sets: dict[str, frozenset[int]] | None = None

    def __call__(self, pid: str) -> frozenset[int]:
        if self._sets is None:
            self._sets = {}
            self._read([*self._ids[: self._first], pid])
        elif pid not in self._sets:
            self._read([pid])
        return self._sets[pid]

    def _read(self, ids: list[str]) -> None:
        assert self._sets is not None
        found = self._store.sparse_vectors(list(dict.fromkeys(ids)))
        for pid in ids:  # a chunk not stored (or without terms) holds none
            vector = found.get(pid)
            self._sets[pid] = frozenset(vector.indices) if vector is not None else frozenset()


#: Chunks whose words are kept for the next queries: a chunk found again (the next query as
#: one types, a larger limit, another mode) is not split into words again.
CHUNKS_CACHED = 1024


@functools.lru_cache(maxsize=CHUNKS_CACHED)
def _chunk_words(text: str) -> frozenset[str]:
    """The lower-cased words of a chunk's text (`term_share`)."""
    lowered = _lowered(text)
    if lowered is not None:  # the same words, found in one pass
        return frozenset(_WORD.findall(lowered))
    return frozenset(w.lower() for w in _WORD.findall(text))


def _lowered(text: str) -> str | None:
    """`text` lower-cased where that keeps its words where they were (each character lowers
    to one, and only capital sigma lowers by its context): its words are then the lower-cased
    words of `text`, at the same offsets. None where it would not."""
    if text.isascii():
        return text.lower()
    lowered = text.lower()
    return lowered if len(lowered) == len(text) and "\u03a3" not in text else None


@functools.lru_cache(maxsize=CHUNKS_CACHED)
def _chunk_sorted(text: str) -> tuple[str, ...]:
    """`_chunk_words`, sorted: only a term not found as a word needs them (its stem match)."""
    return tuple(sorted(_chunk_words(text)))


#: Hybrid hits kept when none reaches the floor: the best few with keyword evidence (a
#: nonsense query's stray word matches return no more than this).
NO_GOOD_MATCH_HITS = 3


def floor(mode: Mode, merged: list[Hit], trust_cosine: bool = True,
          limit: int | None = None) -> list[Hit]:
    """The hits kept, best first. In hybrid mode only the tail that has neither keyword
    evidence nor the floor's cosine is cut: a hit the fused ranking puts high because its words
    match is kept whatever its cosine (the old floor dropped such relevant hits: SciFact
    nDCG@10 0.738 -> 0.729); no hit reaching `above_floor` (no good match): at most
    NO_GOOD_MATCH_HITS with keyword evidence. `trust_cosine` False (the model does not cover
    the query's language): keyword evidence only. `limit`: the first that many only (what a
    search returns; the hits after them are not judged, which costs their keyword evidence)."""

    def first(keep: Callable[[Hit], bool], most: int | None = limit) -> list[Hit]:
        return list(itertools.islice((h for h in merged if keep(h)), most))

    if mode != "hybrid":
        return first(lambda h: above_floor(mode, h))
    if not trust_cosine:
        return first(lambda h: h.keyword.positive())
    if not any(above_floor(mode, h) for h in merged):
        return first(lambda h: h.keyword.positive(),
                     min(NO_GOOD_MATCH_HITS, limit or NO_GOOD_MATCH_HITS))
    # As `above_floor(mode, h) or evidence > 0`: every other way above_floor admits a hit
    # implies evidence. The cosine first, then the chunk's BM25 terms; its words last.
    return first(lambda h: (h.cosine is not None and h.cosine >= COSINE_FLOOR)
                 or h.keyword.positive())


def monotone(hits: list[Hit]) -> None:
    """Make the 0–1 scores non-increasing down the list without changing its order (the
    ranking's): each run of hits whose scores contradict the order gets their mean (pool
    adjacent violators, the isotonic fit)."""
    blocks: list[list[float]] = []  # [sum, count]
    for hit in hits:
        blocks.append([hit.relevance, 1.0])
        while len(blocks) > 1 and (blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]):
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    i = 0
    for total, count in blocks:
        for _ in range(int(count)):
            hits[i].relevance = total / count
            i += 1


def above_floor(mode: Mode, hit: Hit) -> bool:
    """Keyword hits always match a term. A semantic or hybrid hit needs COSINE_FLOOR, unless
    it holds every query term (a long section whose one sentence answers dilutes its vector;
    an exact name the model does not know), or, in hybrid mode, has no vector yet (then any
    query term found will do)."""
    if mode == "keyword":
        return True
    cosine = hit.cosine
    if cosine is not None and cosine >= COSINE_FLOOR:
        return True
    if cosine is None and mode == "hybrid":
        return hit.keyword.positive()
    return hit.keyword.value() >= 1.0


def term_share(text: str, terms: list[str]) -> float:
    """The share of the query terms that occur in `text` (light stemming, as highlighted)."""
    return QueryMatches(terms).share(text)


class QueryMatches:
    """The words that match the query's terms (`_matches`) in the texts of one search's hits,
    each text scanned once: a hybrid hit that is returned asks it twice, for its keyword
    evidence (`share`) and for its snippet (`make_snippet`). Scanning for the evidence on its
    own took ~0.35 ms of a SciFact search at limit 30, none of which semantic mode spends
    (issue 22). One per search: nothing is kept from one search to the next."""

    __slots__ = ("_by_word", "_found", "_whole", "matcher", "terms")

    def __init__(self, terms: list[str]) -> None:
        self.terms = terms
        self.matcher = _matcher(tuple(terms))
        self._found: dict[str, list[tuple[int, str]] | None] = {}
        self._by_word: dict[str, frozenset[str]] = {}
        # A lower-cased query word can hold a combining mark, which splits a text's word in
        # two: the share is then counted from the text's words (as `_matches` sees them).
        self._whole = all(_WORD.fullmatch(t) for t in terms)

    def in_text(self, text: str) -> list[tuple[int, str]] | None:
        """Each matching word of `text`, lower-cased, and where it starts (`_Matcher.words`);
        None where lower-casing the text would move its words."""
        if text not in self._found:
            self._found[text] = self.matcher.words(text)
        return self._found[text]

    def share(self, text: str) -> float:
        """`term_share` of `text`."""
        if not self.terms:
            return 0.0
        found = self.in_text(text) if self._whole else None
        if found is None:
            return _share_by_words(text, self.terms)
        matched: set[str] = set()
        for word in {word for _, word in found}:
            matched |= self._terms_of(word)
        return len(matched) / len(self.terms)

    def _terms_of(self, word: str) -> frozenset[str]:
        """The terms a matching word matches (`_matches`), worked out once per search: the
        same words come back in hit after hit."""
        terms = self._by_word.get(word)
        if terms is None:
            terms = self._by_word[word] = frozenset(t for t in self.terms
                                                    if _matches(word, [t]))
        return terms


def _share_by_words(text: str, terms: list[str]) -> float:
    """`term_share` from the text's words, where lower-casing it would move them."""
    words = _chunk_words(text)
    ordered: tuple[str, ...] | None = None
    found = 0
    for t in terms:
        if t in words:
            found += 1
        elif len(t) >= 4:
            # The stem match (`_matches`): a word that starts with all but the term's last
            # letter and is at most 3 letters longer; such words are adjacent when sorted.
            if ordered is None:
                ordered = _chunk_sorted(text)
            stem, longest = t[:-1], len(t) + 3
            i = bisect.bisect_left(ordered, stem)
            while i < len(ordered) and ordered[i].startswith(stem):
                if len(ordered[i]) <= longest:
                    found += 1
                    break
                i += 1
    return found / len(terms)


def _hit(index: WorkspaceIndex, stored: StoredHit) -> Hit:
    p = stored.payload
    path = str(p.get("path", ""))
    start = int(p.get("start", 0))
    return Hit(
        uri=(index.root / path).as_uri(), path=path, start=start,
        end=int(p.get("end", 0)), score=stored.score, heading=list(p.get("heading") or []),
        text=str(p.get("text", "")), language=str(p.get("language", "plaintext")),
        lang=str(p.get("lang", NEUTRAL)), title=str(p.get("title", "")),
        root=str(index.root), source="buffer" if path in index.overlays else "disk",
        text_line=start, id=stored.id,
    )


def merge_adjacent(hits: list[Hit]) -> list[Hit]:
    """Fold a hit into a better one from the same file when their line ranges touch. The
    text is rebuilt line by line (overlapping chunks share lines), so its lines still map
    to file lines; the better hit's score and relevance stand."""
    out: list[Hit] = []
    for hit in hits:  # best first
        for kept in out:
            if kept.uri == hit.uri and hit.start <= kept.end and kept.start <= hit.end:
                lines = _lines_by_number(kept)
                for number, line in _lines_by_number(hit).items():
                    lines.setdefault(number, line)
                first, last = min(lines), max(lines)
                kept.text = "\n".join(lines.get(i, "") for i in range(first, last + 1))
                kept.text_line = first
                kept.start, kept.end = min(kept.start, hit.start), max(kept.end, hit.end)
                if kept.cosine is None or (hit.cosine is not None and hit.cosine > kept.cosine):
                    kept.cosine = hit.cosine
                kept.keyword = Evidence.either(kept.keyword, hit.keyword)
                break
        else:
            out.append(dataclasses.replace(hit))
    return out


def _lines_by_number(hit: Hit) -> dict[int, str]:
    base = hit.start if hit.text_line < 0 else hit.text_line
    return {base + i: line for i, line in enumerate(hit.text.split("\n"))}


def make_snippet(text: str, terms: list[str] | QueryMatches
                 ) -> tuple[str, list[dict[str, int]], tuple[tuple[int, int], tuple[int, int]]]:
    """A window of the chunk around its best sentence, where the query terms are in it
    (offsets in UTF-16 code units, as LSP clients count), and where that sentence is in
    `text`: its first and last (line, UTF-16 column). `terms`: the query's, or the search's
    `QueryMatches` (which may have scanned `text` already)."""
    lead = len(text) - len(text.lstrip())
    flat = text.strip()
    if not flat:
        return "", [], ((0, 0), (0, 0))
    query = terms if isinstance(terms, QueryMatches) else QueryMatches(terms)
    matches = query.matcher
    in_text = query.in_text(text)
    # Where the matching words start in `flat` (stripping moves no word, only the offsets).
    found = [at - lead for at, _ in in_text] if in_text is not None else None
    best_start, best_end, best_score = 0, 0, -1.0
    pos = 0
    for piece in _SENTENCE_END.split(flat):
        start = flat.find(piece, pos)
        if start < 0:
            continue
        pos = start + len(piece)
        if found is not None and _whole_words(flat, start, pos):
            # The matching words of the sentence: those of the text that start inside it.
            score = (bisect.bisect_left(found, pos) - bisect.bisect_left(found, start)
                     + (0.5 if _WORD.search(piece) is None else 0))
        else:
            words = [w.lower() for w in _WORD.findall(piece)]
            score = sum(1.0 for w in words if matches(w)) + (0.5 if not words else 0)
        if score > best_score:
            best_start, best_end, best_score = start, start + len(piece.rstrip()), score
    if best_score <= 0:
        best_start, best_end = 0, len(flat.split("\n", 1)[0])
    start = best_start
    snippet = flat[start : start + SNIPPET_CHARS]
    if start + SNIPPET_CHARS < len(flat):
        cut = snippet.rfind(" ")
        snippet = (snippet[:cut] if cut > SNIPPET_CHARS // 2 else snippet) + "…"
    if start > 0:
        snippet = "…" + snippet
    snippet = " ".join(snippet.split())
    marks = []
    marked = matches.starts(snippet)
    if marked is not None:  # the matching words' offsets, found in one pass
        for first in marked:
            word = _WORD.match(snippet, first)
            assert word is not None
            marks.append({"start": _utf16_len(snippet[:first]), "length": _utf16_len(word.group())})
    else:
        for m in _WORD.finditer(snippet):
            if matches(m.group().lower()):
                marks.append({"start": _utf16_len(snippet[: m.start()]),
                              "length": _utf16_len(m.group())})
    return snippet, marks, (_line_col(text, lead + start), _line_col(text, lead + best_end))


def _whole_words(text: str, start: int, end: int) -> bool:
    """Whether no word of `text` crosses either end of `text[start:end]` (then its words are
    those of the slice)."""
    return ((start == 0 or not _WORD.match(text, start - 1))
            and (end >= len(text) or not _WORD.match(text, end)))


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """(line, UTF-16 column) of a character offset in `text`."""
    before = text[:offset]
    line_start = before.rfind("\n") + 1
    return before.count("\n"), _utf16_len(before[line_start:])


def _matches(word: str, terms: list[str]) -> bool:
    # A light stem match: "rotating" marks for "rotate", "keys" for "key".
    return any(word == t or (len(t) >= 4 and word[: len(t) - 1] == t[:-1]
                             and len(word) <= len(t) + 3) for t in terms)



class _Matcher:
    """`_matches(word, terms)` for many words of one query: the terms in a set, the stem
    match as one look-up per stem length (the longest word a stem allows)."""

    def __init__(self, terms: tuple[str, ...]) -> None:
        self.exact = frozenset(terms)
        stems: dict[int, dict[str, int]] = {}
        for t in terms:
            if len(t) >= 4:
                longest = stems.setdefault(len(t) - 1, {})
                longest[t[:-1]] = max(longest.get(t[:-1], 0), len(t) + 3)
        self.stems = list(stems.items())
        self.seen: dict[str, bool] = {}
        # The same test as one regular expression over a text's words: a term, or a term's
        # stem and at most 4 more letters, as a whole word.
        forms = sorted({re.escape(t[:-1]) + r"\w{0,4}" if len(t) >= 4 else re.escape(t)
                        for t in terms})
        self.pattern = (re.compile(r"(?<!\w)(?:" + "|".join(forms) + r")(?!\w)")
                        if forms else None)

    def words(self, text: str) -> list[tuple[int, str]] | None:
        """The words of `text` that match, lower-cased, and where each starts, found in one
        pass where its lower-casing keeps every word where it was (`_lowered`); None: ask
        word by word."""
        if self.pattern is None:
            return []
        lowered = _lowered(text)
        return (None if lowered is None
                else [(m.start(), m.group()) for m in self.pattern.finditer(lowered)])

    def starts(self, text: str) -> list[int] | None:
        """Where the words of `text` that match start (`words`)."""
        found = self.words(text)
        return None if found is None else [at for at, _ in found]

    def __call__(self, word: str) -> bool:
        known = self.seen.get(word)
        if known is None:
            n = len(word)
            known = word in self.exact or any(k <= n <= longest.get(word[:k], -1)
                                              for k, longest in self.stems)
            if len(self.seen) < 50_000:
                self.seen[word] = known
        return known


@functools.lru_cache(maxsize=64)
def _matcher(terms: tuple[str, ...]) -> _Matcher:
    return _Matcher(terms)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def related(indexes: Sequence[WorkspaceIndex], vector: Vector,
            own: tuple[WorkspaceIndex, str] | None, limit: int = 10) -> dict[str, Any]:
    """Passages most similar to `vector` (a chunk's), from files other than `own` (its
    workspace and path): the docs/related hits, under the same floor as semantic search."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParamsError(f"limit: must be between 1 and {MAX_LIMIT}")
    hits: list[Hit] = []
    for index in indexes:
        never = [own[1]] if own is not None and own[0] is index else []
        found = [_hit(index, h) for h in index.store.query(
            vector, None, "semantic", limit * 2, PathFilter(never=never))]
        for hit in found:
            hit.cosine = hit.score
            hit.relevance = relevance("semantic", hit.score, hit.score, 0.0)
        hits += found
    hits.sort(key=lambda h: h.score, reverse=True)
    merged = merge_adjacent(hits)
    kept = [h for h in merged if above_floor("semantic", h)]
    result: dict[str, Any] = {"hits": [h.to_wire([]) for h in kept[:limit]]}
    below = min(limit, len(merged)) - min(limit, len(kept))
    if below:
        result["belowFloor"] = below
    return result
