"""Keyword retrieval: BM25 sparse vectors from Qdrant Edge's own encoder.

Documents carry term-frequency weights with BM25's saturation (k) and length normalisation
(b); Qdrant applies IDF at query time (the sparse vector is configured with `Modifier.Idf`),
so one store answers keyword, semantic and hybrid queries.
"""

from __future__ import annotations

import qdrant_edge as qe

from .stores.base import SparseVec

# k1 and b as in the usual BM25 baselines (Anserini's defaults); avg_len in the encoder's
# tokens, close to what a 256-model-token chunk holds.
BM25_K = 0.9
BM25_B = 0.4
BM25_AVG_LEN = 150.0


class SparseEncoder:
    def __init__(self, k: float = BM25_K, b: float = BM25_B,
                 avg_len: float = BM25_AVG_LEN) -> None:
        self._bm25 = qe.Bm25(qe.Bm25Config(k=k, b=b, avg_len=avg_len, language="english"))

    def document(self, text: str) -> SparseVec:
        vec = self._bm25.embed_document(text)
        return SparseVec(list(vec.indices), list(vec.values))

    def query(self, text: str) -> SparseVec:
        vec = self._bm25.embed_query(text)
        return SparseVec(list(vec.indices), list(vec.values))
