"""The same `sum` hybrid weights rank the same on both engine generations.

OpenSearch 2.x keeps the legacy BM25 (scores × (1 + k1)); 3.x uses Lucene's. The index records
the BM25 scale its weights assume (`_meta.splade_es.bm25_scale`) and the searcher corrects the
BM25 boost for the engine it runs on. Both generations' nodes, the same documents and queries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from splade_es_workshop.engines import start

from splade_es.client import ConnectionSettings, open_cluster
from splade_es.mappings import LUCENE_BM25_SCALE, bm25_scale
from splade_es.query import Hybrid
from splade_es.search import Hit, Searcher
from tests.conftest import engine_spec

from . import shapes_data

pytestmark = [pytest.mark.engine, pytest.mark.oldgen, pytest.mark.slow]
INDEX = "bm25-scale-test"
# BM25 scores here are ~10x SPLADE-tiny's: a small BM25 weight makes the two comparable, so the
# ranking depends on the weight (and would change if BM25 were scaled differently).
WEIGHTS = Hybrid(bm25_weight=0.15, splade_weight=1.0)


def assert_same_ranking(a: list[Hit], b: list[Hit], factor: float = 1.0) -> None:
    """The same scores (`a`'s times `factor`) and the same documents above the 10th score;
    documents tied at the cut-off may be picked differently on another node."""
    assert [h.score * factor for h in a] == pytest.approx([h.score for h in b], rel=1e-4)
    cut_a, cut_b = a[-1].score * (1 + 1e-5), b[-1].score * (1 + 1e-5)
    assert {h.id for h in a if h.score > cut_a} == {h.id for h in b if h.score > cut_b}


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def pair(
    request: pytest.FixtureRequest, splade_tiny: Any, encoded_slice: Path
) -> dict[str, Searcher]:
    """The same index on the default and the old generation of one engine."""
    out = {}
    for generation in ("new", "old"):
        client, info = open_cluster(
            ConnectionSettings(url=start(engine_spec(request.param, generation)))
        )
        profile = shapes_data.fill(client, info, INDEX, encoded_slice)
        assert profile.bm25_scale == LUCENE_BM25_SCALE  # recorded in _meta at creation
        out[generation] = Searcher.for_index(client, info, INDEX, splade_tiny, hybrid=WEIGHTS)
    return out


def test_bm25_scores_differ_by_the_recorded_factor(
    pair: dict[str, Searcher], scifact: Path
) -> None:
    new, old = pair["new"], pair["old"]
    factor = bm25_scale(old.info.engine, old.info.version, 0.9) / bm25_scale(
        new.info.engine, new.info.version, 0.9
    )
    for a, b in zip(
        new.search_many(shapes_data.queries(scifact), "bm25", size=10),
        old.search_many(shapes_data.queries(scifact), "bm25", size=10),
        strict=True,
    ):
        assert_same_ranking(a, b, factor)


def test_a_sum_hybrid_ranks_the_same_on_both_generations(
    pair: dict[str, Searcher], scifact: Path
) -> None:
    texts = shapes_data.queries(scifact)
    new, old = pair["new"], pair["old"]
    got = [s.search_many(texts, "hybrid", size=10) for s in (new, old)]
    for a, b in zip(*got, strict=True):
        assert_same_ranking(a, b)
    if new.hybrid.bm25_correction == old.hybrid.bm25_correction:
        return  # this engine kept one BM25 across generations: nothing to correct
    # without the correction the same weights rank differently (what the record prevents)
    raw = [
        replace(s, hybrid=replace(s.hybrid, bm25_correction=1.0)).search_many(texts, "hybrid", 10)
        for s in (new, old)
    ]
    assert any([h.id for h in a] != [h.id for h in b] for a, b in zip(*raw, strict=True))
