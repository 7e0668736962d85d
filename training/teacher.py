"""Teacher scores for distillation without a hub model: BM25 and the current SPLADE model, fused.

Each system scores every (query, candidate) pair exactly, in process. Per query the two score lists
are standardised over the candidates (positives and mined negatives), mixed with `bm25_weight`, and
mapped back onto the SPLADE scores' mean and spread, so margins are in the student's own units (what
MarginMSE compares). `write_teacher_scores` stores them in the TSV `read_teacher_scores` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import BeirData

Scores = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Fusion:
    """How BM25 and SPLADE are mixed (standardised scores; 0 = SPLADE only, 1 = BM25 only)."""

    bm25_weight: float = 0.5


def _standardise(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 0 else values * 0.0


def fuse(
    bm25: Mapping[str, float], splade: Mapping[str, float], docs: Sequence[str], fusion: Fusion
) -> dict[str, float]:
    """Fused teacher scores of one query's candidate `docs` (missing scores count as 0)."""
    b = np.array([bm25.get(d, 0.0) for d in docs], dtype=np.float64)
    s = np.array([splade.get(d, 0.0) for d in docs], dtype=np.float64)
    mixed = fusion.bm25_weight * _standardise(b) + (1 - fusion.bm25_weight) * _standardise(s)
    scaled = mixed * (s.std() if s.std() > 0 else 1.0) + s.mean()
    return {d: float(v) for d, v in zip(docs, scaled, strict=True)}


def candidates(
    data: BeirData, qids: Sequence[str], negatives: Mapping[str, Sequence[str]], depth: int
) -> dict[str, list[str]]:
    """Each query's relevant documents and its top `depth` mined negatives."""
    out = {}
    for qid in qids:
        positives = [d for d, g in sorted(data.qrels.get(qid, {}).items()) if g > 0]
        out[qid] = list(dict.fromkeys([*positives, *negatives.get(qid, [])[:depth]]))
    return out


def ensemble_scores(
    data: BeirData,
    pools: Mapping[str, Sequence[str]],
    splade_run: Mapping[str, Mapping[str, float]],
    fusion: Fusion = Fusion(),
) -> Scores:
    """Fused BM25 + SPLADE teacher scores for every (query, candidate) in `pools`.

    `splade_run` holds the current SPLADE model's exact scores (`{qid: {doc: score}}`, missing = 0).
    """
    from splade_es.bm25 import BM25

    bm25 = BM25(list(data.docs), list(data.docs.values()))
    qids = list(pools)
    column = {d: i for i, d in enumerate(bm25.ids)}
    out: Scores = {}
    for start in range(0, len(qids), 256):
        chunk = qids[start : start + 256]
        matrix = bm25.scores([data.queries[q] for q in chunk])
        for row, qid in enumerate(chunk):
            docs = list(pools[qid])
            bm25_scores = {d: float(matrix[row, column[d]]) for d in docs}
            out[qid] = fuse(bm25_scores, splade_run.get(qid, {}), docs, fusion)
    return out


def write_teacher_scores(path: Path, scores: Mapping[str, Mapping[str, float]]) -> Path:
    """TSV `query_id doc_id score` with a header (what `read_teacher_scores` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("query_id\tdoc_id\tscore\n")
        for qid, docs in scores.items():
            for doc_id, score in docs.items():
                handle.write(f"{qid}\t{doc_id}\t{score:.6f}\n")
    return path
