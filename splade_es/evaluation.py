"""Retrieval quality: standard IR metrics (ir-measures) and exact in-process sparse scoring."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ir_measures
import numpy as np
from ir_measures import RR, R, nDCG
from scipy import sparse as sp

from splade_es.sparse import SparseVector

MEASURES = {"ndcg@10": nDCG @ 10, "mrr@10": RR @ 10, "recall@100": R @ 100}

Run = dict[str, dict[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def evaluate(run: Run, qrels: Qrels) -> dict[str, float]:
    """nDCG@10, MRR@10 and Recall@100 averaged over the queries that have judgements."""
    judged = {q: dict(d) for q, d in qrels.items()}
    scored = {q: docs for q, docs in run.items() if q in judged}
    for qid in judged:  # a judged query with no results counts as zero, not as missing
        scored.setdefault(qid, {})
    values = ir_measures.calc_aggregate(list(MEASURES.values()), judged, scored)
    return {name: float(values[measure]) for name, measure in MEASURES.items()}


class ExactSparseIndex:
    """Documents as a CSR matrix over token ids, for exact dot-product retrieval without an engine."""

    def __init__(self, ids: Sequence[str], vectors: Sequence[SparseVector]) -> None:
        self.ids = list(ids)
        self.vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for row, vector in enumerate(vectors):
            for token, weight in vector.weights:
                rows.append(row)
                cols.append(self.vocab.setdefault(token, len(self.vocab)))
                vals.append(weight)
        self.matrix = sp.csr_matrix(
            (vals, (rows, cols)), shape=(len(self.ids), max(1, len(self.vocab))), dtype=np.float32
        )

    def scores(self, queries: Sequence[SparseVector]) -> np.ndarray:
        """Dense `[len(queries), n_docs]` exact dot products (float32)."""
        rows, cols, vals = [], [], []
        for row, vector in enumerate(queries):
            for token, weight in vector.weights:
                if token in self.vocab:
                    rows.append(row)
                    cols.append(self.vocab[token])
                    vals.append(weight)
        q = sp.csr_matrix(
            (vals, (rows, cols)), shape=(len(queries), self.matrix.shape[1]), dtype=np.float32
        )
        return np.asarray((q @ self.matrix.T).toarray(), dtype=np.float32)

    def search(self, queries: Mapping[str, SparseVector], k: int = 100) -> Run:
        """Top-k documents per query by exact dot product."""
        qids = list(queries)
        scores = self.scores([queries[q] for q in qids])
        run: Run = {}
        for row, qid in enumerate(qids):
            top = np.argsort(-scores[row])[:k]
            run[qid] = {self.ids[i]: float(scores[row, i]) for i in top if scores[row, i] > 0}
        return run
