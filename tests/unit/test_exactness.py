"""Quantized rank_feature scoring ranks real SciFact documents as float SPLADE scoring does."""

from __future__ import annotations

import json
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import pytest

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.corpus import read_documents, read_queries
from splade_es.query import QueryRewriter

pytestmark = pytest.mark.slow
FACTOR = 100.0


def rank_feature_score(query: dict[str, Any], features: dict[str, float], field: str) -> float:
    """What Lucene's linear FeatureField query sums: boost * stored feature value per clause."""
    total = 0.0
    for clause in query["bool"]["should"]:
        rf = clause["rank_feature"]
        assert "linear" in rf
        total += rf["boost"] * features.get(rf["field"].removeprefix(f"{field}."), 0)
    return total


def test_quantized_engine_query_ranks_like_float_dot_product(splade_tiny, scifact: Path) -> None:
    docs = list(islice(read_documents(scifact / "corpus.jsonl"), 300))
    vectors = splade_tiny.encode_documents([d.full_text for d in docs])
    records = [
        encoded_record(d, v, DocumentPruning(), FACTOR) for d, v in zip(docs, vectors, strict=True)
    ]
    queries = list(islice(read_queries(scifact / "queries.jsonl").values(), 25))
    rewriter = QueryRewriter(splade_tiny)
    checked = 0
    for text in queries:
        qvec = rewriter.weighted_terms(text)
        body = rewriter.body(text)
        json.dumps(body)
        exact = [qvec.dot(v) for v in vectors]
        engine = [rank_feature_score(body["query"], r.features, "splade") for r in records]
        # each doc weight moves by <= 0.5/FACTOR when quantized
        bound = sum(w for _, w in qvec.weights) * 0.5 / FACTOR + 1e-9
        for e, q in zip(exact, engine, strict=True):
            assert abs(e - q) <= bound
        order = sorted(range(len(docs)), key=lambda i: -engine[i])[:10]
        for a, b in pairwise(order):
            # a pair may swap only if float scores are within twice the quantization error
            assert exact[a] >= exact[b] - 2 * bound
        checked += 1
    assert checked == len(queries) == 25
