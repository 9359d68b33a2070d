"""Search in the languages people write docs in (issue 21): per-language keyword analysis, a
dense share weighed by the model's languages, a floor that keeps keyword evidence, scores that
agree with the order. Real bundled model, real Qdrant Edge store."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import qdrant_edge as qe

from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.errors import CancelledError
from zero_latency.indexer import CancelToken
from zero_latency.stores import ChunkPoint, SparseVec

from .conftest import need_corpus

DOCS = {
    "zh.md": "# 归档\n\n使用相对路径从目录创建一个压缩文件并将其写入磁盘。\n",
    "ja.md": "# 圧縮\n\nディレクトリからファイルを圧縮して保存します。\n",
    "th.md": "# บีบอัด\n\nสร้างไฟล์บีบอัดจากไดเรกทอรีและบันทึกลงดิสก์\n",
    "de.md": "# Archive\n\nErstelle ein mit gzip komprimiertes Archiv aus mehreren Dateien.\n",
    "mixed.md": "# 安装\n\n使用 `pip install requests` 安装软件包，然后运行程序。\n"
                "配置文件保存在用户目录中。\n",
    "en.md": "# Backups\n\nCopy the database to the backup volume every night and keep "
             "seven copies.\n",
}
#: A query word inside an unsegmented sentence (zh, ja, th) or inflected (de: Datei/Dateien).
KEYWORD_QUERIES = {"压缩": "zh.md", "圧縮": "ja.md", "ไฟล์": "th.md", "Datei": "de.md"}


def _paths(result: dict[str, object]) -> list[str]:
    return [h["path"] for h in result["hits"]]  # type: ignore[attr-defined, index]


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, Settings]:
    ws = tmp_path / "ws"
    ws.mkdir()
    for name, text in DOCS.items():
        (ws / name).write_text(text, encoding="utf-8")
    return ws, Settings(model="bundled", storePath=str(tmp_path / "store"))


def test_words_inside_unsegmented_or_inflected_text_are_found_in_keyword_mode(
        mixed: tuple[Path, Settings]) -> None:
    ws, settings = mixed
    engine = Engine(settings)
    try:
        engine.open_workspace(ws)
        engine.index([ws])
        for query, path in KEYWORD_QUERIES.items():
            for mode in ("keyword", "hybrid"):
                found = _paths(engine.search(query, mode=mode))  # type: ignore[arg-type]
                assert found and found[0] == path, (query, mode, found)
        # An English query over a mixed-language file: its English words match.
        for mode in ("keyword", "hybrid"):
            found = _paths(engine.search("pip install requests", mode=mode))  # type: ignore[arg-type]
            assert found and found[0] == "mixed.md", (mode, found)
        # And its Chinese ones.
        assert _paths(engine.search("配置文件", mode="keyword"))[0] == "mixed.md"
    finally:
        engine.close()


def test_an_old_store_is_reanalysed_on_open_with_nothing_embedded_again(
        mixed: tuple[Path, Settings]) -> None:
    ws, settings = mixed
    engine = Engine(settings)
    try:
        index = engine.open_workspace(ws)
        engine.index([ws])
        # Make it a store as the previous version wrote it: every text analysed as English,
        # file hashes naming only the chunker.
        english = qe.Bm25(qe.Bm25Config(k=0.9, b=0.4, avg_len=150.0, language="english"))
        ids = [pid for state in index.files.values() for pid in state.chunk_ids]
        payloads = index.store.payloads(ids)
        vectors = index.store.vectors(ids)
        points = []
        for pid, payload in payloads.items():
            old = dict(payload)
            old.pop("lang", None)
            old["file_hash"] = str(old["file_hash"]).split("+bm25v")[0]
            vec = english.embed_document(f"{old.get('title', '')}\n{old.get('text', '')}")
            points.append(ChunkPoint(id=pid, dense=vectors.get(pid),
                                     sparse=SparseVec(list(vec.indices), list(vec.values)),
                                     payload=old))  # type: ignore[arg-type]
        index.store.upsert(points)
        index.store.flush()
    finally:
        engine.close()
    engine = Engine(settings)
    try:
        index = engine.open_workspace(ws)
        assert engine.search("压缩", mode="keyword")["hits"] == []  # the old analysis
        report = engine.index([ws])
        assert report.embeddedChunks == 0, report
        assert index.store.counts().pending == 0
        assert _paths(engine.search("压缩", mode="keyword"))[0] == "zh.md"
        again = engine.index([ws])
        assert again.unchangedFiles == len(DOCS), again
    finally:
        engine.close()


def _known_items(n: int) -> dict[str, tuple[str, str]]:
    src = need_corpus("tldr-pages-i18n") / "pages.ko" / "common"
    out: dict[str, tuple[str, str]] = {}
    for f in sorted(src.glob("*.md")):
        lines = f.read_text(encoding="utf-8").splitlines()
        query = " ".join(ln[1:].strip() for ln in lines
                         if ln.startswith(">") and "://" not in ln and "정보" not in ln)
        body = "\n".join(ln for ln in lines if not ln.startswith(("#", ">"))).strip()
        if query and body and f.stem[0].isalnum():
            out[f.stem] = (query, body)
    # A description shared by several pages ("see `adb connect`") has no one known item.
    shared = {q for q, _ in out.values() if sum(q == o for o, _ in out.values()) > 1}
    return dict(list((k, v) for k, v in out.items() if v[0] not in shared)[:n])


def _mrr(engine: Engine, items: dict[str, tuple[str, str]], mode: str) -> float:
    total = 0.0
    for name, (query, _) in items.items():
        ranked = [Path(p).stem for p in _paths(engine.search(query, limit=10,
                                                             mode=mode))]  # type: ignore[arg-type]
        total += 1 / (ranked.index(name) + 1) if name in ranked else 0.0
    return total / len(items)


def test_korean_hybrid_ranks_known_items_at_least_as_well_as_keyword(tmp_path: Path) -> None:
    items = _known_items(120)
    ws = tmp_path / "ko"
    ws.mkdir()
    for name, (_, body) in items.items():
        (ws / f"{name}.md").write_text(body + "\n", encoding="utf-8")
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        engine.open_workspace(ws)
        engine.index([ws])
        keyword, hybrid = _mrr(engine, items, "keyword"), _mrr(engine, items, "hybrid")
        assert hybrid >= keyword, (hybrid, keyword)
    finally:
        engine.close()


def test_scores_never_rise_down_a_list_in_any_mode_during_partial_coverage_too(
        tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    src = need_corpus("rust-book")
    for name in ("ch04-01-what-is-ownership.md", "ch04-02-references-and-borrowing.md",
                 "ch08-01-vectors.md"):
        (ws / name).write_text((src / name).read_text(encoding="utf-8"), encoding="utf-8")
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store"),
                             backfillPaused=True))
    queries = ["ownership rules", "how do references borrow a value", "vector push",
               "dangling reference"]

    def check(stage: str) -> None:
        for query in queries:
            for mode in ("keyword", "semantic", "hybrid"):
                scores = [h["score"] for h in engine.search(
                    query, limit=20, mode=mode)["hits"]]  # type: ignore[arg-type]
                assert scores == sorted(scores, reverse=True), (stage, query, mode, scores)

    try:
        index = engine.open_workspace(ws)
        engine.index([ws])  # keyword pass only
        check("nothing embedded")
        index.note_opened("ch04-01-what-is-ownership.md")
        cancel = CancelToken()

        def progressed(done: int, total: int, seconds: float) -> None:
            if done >= 5:
                cancel.cancel()

        with contextlib.suppress(CancelledError):
            index.backfill(progressed, cancel)
        assert index.store.counts().pending > 0
        check("partly embedded")
        index.backfill()
        check("all embedded")
    finally:
        engine.close()


def test_the_floor_keeps_keyword_evidence_and_cuts_nonsense(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "ops.md").write_text(
        "# Operations handbook\n\nThe night shift checks the dashboards, answers pages and "
        "writes a short report for the morning team. Escalations go to the duty manager, who "
        "decides whether to wake the owners. The frobnicator restarts on its own.\n")
    (ws / "food.md").write_text("# Lunch\n\nThe canteen serves soup and bread at noon.\n")
    (ws / "bikes.md").write_text("# Bicycle repair\n\nTo fix a flat tyre, take the wheel off "
                                 "and glue a patch over the hole.\n")
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        engine.open_workspace(ws)
        engine.index([ws])
        query = "frobnicator calibration drift"
        # Its cosine is under the floor (semantic mode leaves it out), one of three terms is in
        # it: the old floor dropped it, hybrid now keeps it.
        assert "ops.md" not in _paths(engine.search(query, mode="semantic"))
        assert _paths(engine.search(query, mode="hybrid"))[:1] == ["ops.md"]
        for nonsense in ("zzqxqv blorft", "zzqxqv soup wibble"):
            for mode in ("hybrid", "semantic"):
                hits = engine.search(nonsense, limit=20, mode=mode)["hits"]  # type: ignore[arg-type]
                assert len(hits) <= 3, (nonsense, mode, _paths({"hits": hits}))
        assert engine.search("zzqxqv", mode="hybrid")["hits"] == []
    finally:
        engine.close()
