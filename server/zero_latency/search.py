"""Search: one Qdrant query per workspace (dense + BM25 fused in the store), then hits people
can use: at most one per chunk, adjacent chunks of one file merged, a snippet centred on the
sentence that best matches the query with the query terms marked."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from typing import Any

from .config import LANGUAGES, MAX_LIMIT, MAX_QUERY_CHARS
from .embedder import Embedder
from .errors import InvalidParamsError
from .files import glob_spec
from .indexer import WorkspaceIndex
from .sparse import SparseEncoder
from .stores import HYBRID_FUSION, Fusion, Mode, PathFilter, StoredHit

SNIPPET_CHARS = 240
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*+#>|]|\s*\d+\.)")
_STOPWORDS = frozenset(
    "a an and are as at be by do does for from how i in is it of on or the to what when where "
    "which who why with".split()
)


@dataclasses.dataclass
class Hit:
    uri: str
    path: str
    start: int
    end: int
    score: float
    heading: list[str]
    text: str
    language: str
    root: str
    source: str = "disk"  # "buffer": the text is an editor's unsaved buffer
    embedded: bool = True  # False: the chunk has no dense vector yet (keyword match only)

    def to_wire(self, terms: list[str]) -> dict[str, Any]:
        snippet, marks = make_snippet(self.text, terms)
        return {
            "uri": self.uri,
            "range": {"start": {"line": self.start, "character": 0},
                      "end": {"line": self.end, "character": 0}},
            "score": round(self.score, 6),
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
    sparse_q = sparse.query(query) if effective != "semantic" else None
    hits: list[Hit] = []
    coverage = _coverage(indexes) if embedder is not None else None
    for index in indexes:
        only: list[str] | None = None
        never: list[str] = []
        if include_spec is not None or exclude_spec is not None:
            paths = list(index.files)
            only = [p for p in paths if include_spec.match_file(p)] if include_spec else None
            never = [p for p in paths if exclude_spec.match_file(p)] if exclude_spec else []
        where = PathFilter(only=only, never=never, languages=languages)
        found = index.store.query(dense, sparse_q, effective, limit * 2, where, fusion)
        embedded = (set(index.store.vectors([h.id for h in found]))
                    if coverage is not None and index.counts().pending else None)
        hits += [_hit(index, h, embedded) for h in found]
    hits.sort(key=lambda h: h.score, reverse=True)
    merged = merge_adjacent(hits)[:limit]
    terms = query_terms(query)
    result: dict[str, Any] = {
        "hits": [h.to_wire(terms) for h in merged],
        "elapsedMs": round((time.perf_counter() - started) * 1000, 2),
        "mode": effective,
    }
    if coverage is not None:
        result["coverage"] = coverage
        notice = notice or _partial_notice(effective, coverage)
    if notice:
        result["notice"] = notice
    return result


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


def _hit(index: WorkspaceIndex, stored: StoredHit, embedded: set[str] | None = None) -> Hit:
    p = stored.payload
    path = p.get("path", "")
    return Hit(
        uri=(index.root / path).as_uri(), path=path, start=p.get("start", 0),
        end=p.get("end", 0), score=stored.score, heading=list(p.get("heading") or []),
        text=p.get("text", ""), language=p.get("language", "plaintext"),
        root=str(index.root), source="buffer" if path in index.overlays else "disk",
        embedded=embedded is None or stored.id in embedded,
    )


def merge_adjacent(hits: list[Hit]) -> list[Hit]:
    """Fold a hit into a better one from the same file when their line ranges touch."""
    out: list[Hit] = []
    for hit in hits:  # best first
        for kept in out:
            if kept.uri == hit.uri and hit.start <= kept.end and kept.start <= hit.end:
                if hit.start < kept.start:
                    kept.text = hit.text + "\n" + kept.text
                elif hit.end > kept.end:
                    kept.text = kept.text + "\n" + hit.text
                kept.start, kept.end = min(kept.start, hit.start), max(kept.end, hit.end)
                break
        else:
            out.append(dataclasses.replace(hit))
    return out


def make_snippet(text: str, terms: list[str]) -> tuple[str, list[dict[str, int]]]:
    """A window of the chunk around its best sentence, and where the query terms are in it
    (offsets in UTF-16 code units, as LSP clients count)."""
    flat = text.strip()
    if not flat:
        return "", []
    best_start, best_score = 0, -1.0
    pos = 0
    for piece in _SENTENCE_END.split(flat):
        start = flat.find(piece, pos)
        if start < 0:
            continue
        pos = start + len(piece)
        words = [w.lower() for w in _WORD.findall(piece)]
        score = sum(1.0 for w in words if _matches(w, terms)) + (0.5 if not words else 0)
        if score > best_score:
            best_start, best_score = start, score
    start = best_start if best_score > 0 else 0
    snippet = flat[start : start + SNIPPET_CHARS]
    if start + SNIPPET_CHARS < len(flat):
        cut = snippet.rfind(" ")
        snippet = (snippet[:cut] if cut > SNIPPET_CHARS // 2 else snippet) + "…"
    if start > 0:
        snippet = "…" + snippet
    snippet = " ".join(snippet.split())
    marks = []
    for m in _WORD.finditer(snippet):
        if _matches(m.group().lower(), terms):
            marks.append({"start": _utf16_len(snippet[: m.start()]),
                          "length": _utf16_len(m.group())})
    return snippet, marks


def _matches(word: str, terms: list[str]) -> bool:
    # A light stem match: "rotating" marks for "rotate", "keys" for "key".
    return any(word == t or (len(t) >= 4 and word[: len(t) - 1] == t[:-1]
                             and len(word) <= len(t) + 3) for t in terms)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
