"""A small in-process BM25 (Lucene's formula, k1=0.9, b=0.4 as Anserini's BEIR baselines) on scipy.

Tokens are lowercase word characters (`\\w+`). Document term weights are precomputed into one CSR
matrix, so a batch of queries is one sparse matrix product.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse as sp

TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens."""
    return TOKEN.findall(text.lower())


class BM25:
    """Exact BM25 over a fixed corpus."""

    def __init__(
        self, ids: Sequence[str], texts: Sequence[str], k1: float = 0.9, b: float = 0.4
    ) -> None:
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        self.ids = list(ids)
        self.k1, self.b = k1, b
        self.vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for row, text in enumerate(texts):
            for token in tokenize(text):
                rows.append(row)
                cols.append(self.vocab.setdefault(token, len(self.vocab)))
        n_docs, n_terms = len(self.ids), max(1, len(self.vocab))
        tf = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_docs, n_terms)
        )
        tf.sum_duplicates()
        lengths = np.asarray(tf.sum(axis=1)).ravel()
        avg = float(lengths.mean()) if n_docs else 1.0
        df = np.bincount(tf.indices, minlength=n_terms).astype(np.float64)
        self.idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = k1 * (1.0 - b + b * lengths / max(avg, 1e-9))
        coo = tf.tocoo()
        data = coo.data * (k1 + 1.0) / (coo.data + norm[coo.row]) * self.idf[coo.col]
        self.matrix = sp.csr_matrix((data.astype(np.float32), (coo.row, coo.col)), tf.shape)

    def _query_matrix(self, texts: Sequence[str]) -> sp.csr_matrix:
        rows, cols = [], []
        for row, text in enumerate(texts):
            for token in tokenize(text):  # a repeated query term counts once per occurrence
                if token in self.vocab:
                    rows.append(row)
                    cols.append(self.vocab[token])
        q = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(texts), self.matrix.shape[1]),
        )
        q.sum_duplicates()
        return q

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Dense `[len(texts), n_docs]` score matrix."""
        return np.asarray((self._query_matrix(texts) @ self.matrix.T).todense())

    def search(self, queries: Mapping[str, str], k: int = 100) -> dict[str, dict[str, float]]:
        """Top-k `{qid: {doc id: score}}` (positive scores only), in chunks of 256 queries."""
        qids = list(queries)
        run: dict[str, dict[str, float]] = {}
        for start in range(0, len(qids), 256):
            chunk = qids[start : start + 256]
            scores = self.scores([queries[q] for q in chunk])
            kk = min(k, scores.shape[1])
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk else scores[:, :0]
            for row, qid in enumerate(chunk):
                idx = top[row][np.argsort(-scores[row, top[row]], kind="stable")]
                run[qid] = {self.ids[i]: float(scores[row, i]) for i in idx if scores[row, i] > 0}
        return run
