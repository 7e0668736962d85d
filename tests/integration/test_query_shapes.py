"""Query shapes that keep Lucene's dynamic pruning change no hit, on real nodes of every engine
(and, marked `oldgen`, the previous generation): `track_total_hits: false` and, under a filter,
`minimum_should_match: 1` give the same top-10 ids and scores as the counting / loose shapes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from splade_es.fusion import Fusion
from splade_es.search import Hit, Mode, Searcher

from . import shapes_data
from .conftest import Cluster

pytestmark = [pytest.mark.engine, pytest.mark.slow]
INDEX = "shapes-test"
MODES: tuple[Mode, ...] = ("bm25", "splade", "hybrid")


@pytest.fixture(scope="module")
def base(cluster: Cluster, splade_tiny: Any, encoded_slice: Path) -> Searcher:
    shapes_data.fill(cluster.client, cluster.info, INDEX, encoded_slice)
    return Searcher.for_index(cluster.client, cluster.info, INDEX, splade_tiny)


def top(hits: list[Hit]) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in hits]


def same(a: list[list[Hit]], b: list[list[Hit]]) -> None:
    for x, y in zip(a, b, strict=True):
        assert [h.id for h in x] == [h.id for h in y]
        assert [h.score for h in x] == pytest.approx([h.score for h in y], rel=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_not_counting_totals_changes_no_hit(base: Searcher, scifact: Path, mode: Mode) -> None:
    texts = shapes_data.queries(scifact)
    counting = replace(base, track_total_hits=True)
    assert base.track_total_hits is False
    # the shape reaches the engine: without counting, the response carries no exact total
    fast = base.client.search(index=INDEX, body=base.body(texts[0], mode))["hits"]
    exact = base.client.search(index=INDEX, body=counting.body(texts[0], mode))["hits"]
    assert "total" not in fast and exact["total"]["relation"] == "eq"
    same(base.search_many(texts, mode, size=10), counting.search_many(texts, mode, size=10))


@pytest.mark.parametrize("mode", MODES)
def test_minimum_should_match_under_a_filter_changes_no_hit(
    base: Searcher, scifact: Path, mode: Mode
) -> None:
    texts = shapes_data.queries(scifact)
    filter_, allowed = shapes_data.ten_percent_filter(base.client, INDEX)
    strict = replace(base, filter=filter_, minimum_should_match=1)
    loose = replace(base, filter=filter_, minimum_should_match=0)
    default = replace(base, filter=filter_)
    # more hits than the filter lets through: msm 0 pads with every other filtered document
    size = len(allowed) + 10
    padded = 0
    for text in texts:
        raw_strict = base.client.search(index=INDEX, body=strict.body(text, mode, size))
        raw_loose = base.client.search(index=INDEX, body=loose.body(text, mode, size))
        assert all(h["_score"] > 0 for h in raw_strict["hits"]["hits"])
        assert {h["_id"] for h in raw_loose["hits"]["hits"]} == allowed
        padded += len(raw_loose["hits"]["hits"]) > len(raw_strict["hits"]["hits"])
    if mode == "bm25":  # (SPLADE's expansions may match every filtered document)
        assert padded > 0  # the two shapes differ at the engine...
    got = [s.search_many(texts, mode, size=size) for s in (strict, loose, default)]
    for hits in got[0]:
        assert {h.id for h in hits} <= allowed and all(h.score > 0 for h in hits)
    same(got[0], got[1])  # ...but the searcher drops msm 0's score-0 hits: the same results
    same(got[0], got[2])
    unfiltered = base.search_many(texts, mode, size=10)
    assert any(not {h.id for h in u} <= allowed for u in unfiltered)  # the filter filters


def test_an_engine_fused_hybrid_is_filtered_too(
    cluster: Cluster, base: Searcher, scifact: Path
) -> None:
    if cluster.info.engine != "opensearch":
        pytest.skip("the hybrid query and search pipelines are OpenSearch's (neural-search)")
    texts = shapes_data.queries(scifact)
    filter_, allowed = shapes_data.ten_percent_filter(base.client, INDEX)
    fused = replace(base, fusion=Fusion.parse("min_max@engine"), filter=filter_)
    counting = replace(fused, track_total_hits=True)
    got = fused.search_many(texts, "hybrid", size=10)
    assert all({h.id for h in hits} <= allowed for hits in got)
    assert sum(len(hits) for hits in got) > 0
    same(got, counting.search_many(texts, "hybrid", size=10))


def test_the_flat_sum_hybrid_scores_bm25_plus_weighted_splade(
    base: Searcher, scifact: Path
) -> None:
    """The `sum` hybrid is one flat disjunction (SPLADE's weight in each token's boost; on
    Elasticsearch, `term` clauses on the `sparse_vector` field): every hit's score is still the
    weighted BM25 score plus the weighted SPLADE score that the two modes give alone."""
    texts = shapes_data.queries(scifact)
    weighted = replace(base, hybrid=replace(base.hybrid, bm25_weight=0.5, splade_weight=2.0))
    size = shapes_data.N_DOCS
    checked = 0
    for text, hybrid, bm25, splade in zip(
        texts,
        weighted.search_many(texts, "hybrid", size=10),
        base.search_many(texts, "bm25", size=size),
        base.search_many(texts, "splade", size=size),
        strict=True,
    ):
        alone = {h.id: 0.5 * weighted.hybrid.bm25_correction * h.score for h in bm25}
        for h in splade:
            alone[h.id] = alone.get(h.id, 0.0) + 2.0 * h.score
        assert hybrid, text
        for hit in hybrid:
            assert hit.score == pytest.approx(alone[hit.id], rel=1e-4), (text, hit.id)
            checked += 1
    assert checked >= 10 * len(texts) // 2
