"""Hybrid search during the dense backfill (pass 2 of indexing): a chunk still waiting for its
dense vector is not ranked below embedded chunks for lacking it, and once nothing is pending the
store's own fusion answers, unchanged. Real bundled model, real Qdrant Edge store, the real
backfill stopped through its CancelToken (no mock, no sleep)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.errors import CancelledError
from zero_latency.indexer import CancelToken
from zero_latency.protocol import result_errors
from zero_latency.search import TERM_WEIGHT
from zero_latency.stores import PathFilter

from .animal_notes import ANIMALS, animal_note

QUERY = "keyctl rotate signing keys"
ANSWER = ("# Rotating the signing keys\n\nTo rotate the signing keys, run `keyctl rotate --all` "
          "and restart the gateway. keyctl prints the new key id.\n")
#: About the same subject, in other words (none says keyctl): embedded first.
NEIGHBOURS = {
    "vault.md": "# Key storage\n\nSigning keys live in the vault and never leave it. The security "
                "team rotates them every quarter.\n",
    "certs.md": "# Certificates\n\nCertificates are issued by the internal authority and renewed "
                "by a nightly job before they expire.\n",
    "tokens.md": "# Service tokens\n\nTokens issued to services expire after an hour; a service "
                 "asks the gateway for a new one.\n",
    "rotation.md": "# Secret rotation\n\nEvery secret has an owner who rotates it on schedule; "
                   "a leaked secret is revoked at once and replaced.\n",
    "gateway.md": "# Gateway\n\nThe gateway terminates TLS for every service and checks each "
                  "request's signature.\n",
}


def test_an_unembedded_best_keyword_match_tops_hybrid_then_the_store_fuses(
        tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "keys.md").write_text(ANSWER)
    for name, text in NEIGHBOURS.items():
        (ws / name).write_text(text)
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store"),
                             backfillPaused=True))
    try:
        index = engine.open_workspace(ws)
        engine.index([ws])  # the keyword pass only
        # Embed the neighbours (opened files come first) and stop there: keys.md waits.
        for name in NEIGHBOURS:
            index.note_opened(name)
        cancel = CancelToken()
        want = len(NEIGHBOURS)

        def progressed(done: int, total: int, seconds: float) -> None:
            if done >= want:
                cancel.cancel()

        with contextlib.suppress(CancelledError):
            index.backfill(progressed, cancel)
        answer_ids = list(index.files["keys.md"].chunk_ids)
        assert index.store.vectors(answer_ids) == {}, "keys.md must still wait for its vector"
        counts = index.store.counts()
        assert 0 < counts.embedded < counts.chunks, counts

        result = engine.search(QUERY, limit=5, mode="hybrid")
        assert result_errors("docs/search", result) == [], result
        assert "coverage" in result, result
        top = result["hits"][0]
        assert top["path"] == "keys.md" and top["embedded"] is False, result["hits"]
        # Its 0–1 score reads like a good match's, not a keyword-only token share (at most
        # TERM_WEIGHT = 0.2 before): compared below with the score its vector earns it.
        estimated = top["score"]
        assert estimated > 0.5, top

        # Backfill to the end: nothing pending, and hybrid is the store's own fusion again
        # (same hits, same order, the store's raw scores).
        index.backfill()
        assert index.store.counts().pending == 0
        result = engine.search(QUERY, limit=5, mode="hybrid")
        assert "coverage" not in result, result
        assert engine.embedder is not None
        dense = engine.embedder.embed_query(QUERY)
        fused = index.store.query(dense, engine.sparse.query(QUERY), "hybrid", 10, PathFilter())
        by_path: dict[str, float] = {}
        for stored in fused:
            by_path.setdefault(stored.payload["path"], round(stored.score, 6))
        shown = [(h["path"], h["rawScore"]) for h in result["hits"]]
        assert shown == [(p, s) for p, s in by_path.items() if p in dict(shown)], (shown, by_path)
        assert result["hits"][0]["path"] == "keys.md" and result["hits"][0]["embedded"]
        # The estimate is nearer what the vector earns than the old keyword-only ceiling was.
        earned = result["hits"][0]["score"]
        assert abs(earned - estimated) < abs(earned - TERM_WEIGHT), (earned, estimated)
    finally:
        engine.close()


def test_a_pending_chunk_with_the_query_s_rare_word_tops_its_embedded_near_duplicates(
        tmp_path: Path) -> None:
    """Notes alike but for the animal: the embedded ones all share the query's common words,
    so one BM25 share. The pending notes that also hold its rare word come first (the line
    through the embedded candidates was flat, and a pending note was given their mean dense
    share: below the best near-duplicate's)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    wanted = ("pangolin", "tapir", "ibis")  # their notes come last and wait for their vectors

    def write_notes(animals: list[str]) -> None:
        for n, animal in enumerate(ANIMALS * 2):
            if animal in animals:
                (ws / f"note-{n:03}.md").write_text(animal_note(n, animal))

    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store"),
                             backfillPaused=True))
    try:
        index = engine.open_workspace(ws)
        write_notes([a for a in ANIMALS if a not in wanted])
        engine.index([ws])  # the keyword pass
        index.backfill()  # every chunk embedded
        write_notes(list(wanted))
        engine.index([ws])  # the keyword pass only: the new notes wait for their vectors
        counts = index.store.counts()
        assert counts.pending == 6 * 5 and counts.chunks == 40 * 5, counts
        for animal in wanted:
            result = engine.search(f"the {animal} forages", limit=10, mode="hybrid")
            assert result_errors("docs/search", result) == [], result
            assert "coverage" in result, result
            top = result["hits"][0]
            assert animal in top["snippet"] and top["embedded"] is False, result["hits"][:3]
    finally:
        engine.close()
