"""Encoded-vector caches for evaluation scripts: a corpus encoded once, scored many times."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from splade_es.files import replaced_on_success
from splade_es.sparse import SparseVector


def save_vectors(path: Path, ids: Sequence[str], vectors: Sequence[SparseVector]) -> None:
    """Cache encoded vectors as JSONL `{"id", "w": [[token, weight], ...]}`."""
    with replaced_on_success(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for doc_id, vector in zip(ids, vectors, strict=True):
            handle.write(json.dumps({"id": doc_id, "w": vector.weights}) + "\n")


def load_vectors(path: Path) -> tuple[list[str], list[SparseVector]]:
    """Read what `save_vectors` wrote."""
    ids, vectors = [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            ids.append(rec["id"])
            vectors.append(SparseVector(tuple((str(t), float(w)) for t, w in rec["w"])))
    return ids, vectors
