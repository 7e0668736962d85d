"""Exact in-process evaluation of a SPLADE model: nDCG@10 etc. plus average active terms."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from splade_es.evaluation import ExactSparseIndex, Qrels, evaluate
from splade_es.sparse import SparseVector


def average_terms(vectors: Sequence[SparseVector]) -> float:
    """Mean number of nonzero entries per vector."""
    return sum(len(v) for v in vectors) / max(1, len(vectors))


def save_vectors(path: Path, ids: Sequence[str], vectors: Sequence[SparseVector]) -> None:
    """Cache encoded vectors as JSONL `{"id", "w": [[token, weight], ...]}`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for doc_id, vector in zip(ids, vectors, strict=True):
            handle.write(json.dumps({"id": doc_id, "w": vector.weights}) + "\n")
    tmp.replace(path)


def load_vectors(path: Path) -> tuple[list[str], list[SparseVector]]:
    """Read what `save_vectors` wrote."""
    ids, vectors = [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            ids.append(rec["id"])
            vectors.append(SparseVector(tuple((str(t), float(w)) for t, w in rec["w"])))
    return ids, vectors


def evaluate_vectors(
    doc_ids: Sequence[str],
    doc_vectors: Sequence[SparseVector],
    query_vectors: Mapping[str, SparseVector],
    qrels: Qrels,
    k: int = 100,
) -> dict[str, float]:
    """Metrics by exact sparse scoring, plus `doc_terms` and `query_terms` averages."""
    run = ExactSparseIndex(doc_ids, doc_vectors).search(query_vectors, k=k)
    metrics = evaluate(run, {q: qrels[q] for q in query_vectors if q in qrels})
    metrics["doc_terms"] = average_terms(doc_vectors)
    metrics["query_terms"] = average_terms(list(query_vectors.values()))
    return metrics
