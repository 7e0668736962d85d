"""Query rewriter: the three engine forms, pruning, two-phase and hybrid bodies."""

from __future__ import annotations

import json

import pytest

from splade_es.query import Hybrid, QueryPruning, QueryRewriter, sparse_clause
from splade_es.sparse import SparseVector


class FixedQueryEncoder:
    """Returns a given vector: the rewriter's input, not the thing under test."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.vector = SparseVector.from_mapping(weights)

    def encode_query(self, text: str) -> SparseVector:
        return self.vector


WEIGHTS = {"vitamin": 2.0, "d": 1.5, "u.s": 1.0, "deficiency": 0.5, "##s": 0.1}


def rewriter(**kwargs: object) -> QueryRewriter:
    return QueryRewriter(FixedQueryEncoder(WEIGHTS), **kwargs)  # type: ignore[arg-type]


def test_rank_feature_is_a_linear_dot_product_never_saturation() -> None:
    body = rewriter().body("q")
    clauses = body["query"]["bool"]["should"]
    assert len(clauses) == len(WEIGHTS)
    by_field = {c["rank_feature"]["field"]: c["rank_feature"] for c in clauses}
    assert by_field["splade.u__s"]["boost"] == pytest.approx(1.0 / 100)
    for clause in by_field.values():
        assert clause["linear"] == {}
        assert not {"saturation", "log", "sigmoid"} & set(clause)
    assert "splade" in body["_source"]["excludes"]


def test_neural_sparse_and_sparse_vector_forms() -> None:
    ns = rewriter(form="neural_sparse").body("q")["query"]["neural_sparse"]["splade"]
    assert ns["query_tokens"] == pytest.approx(
        {"vitamin": 0.02, "d": 0.015, "u__s": 0.01, "deficiency": 0.005, "##s": 0.001}
    )
    sv = rewriter(engine="elasticsearch", form="sparse_vector").body("q")["query"]["sparse_vector"]
    assert sv["field"] == "splade" and sv["query_vector"]["vitamin"] == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("engine", "form"), [("opensearch", "sparse_vector"), ("elasticsearch", "neural_sparse")]
)
def test_form_the_engine_cannot_parse_is_refused(engine: str, form: str) -> None:
    with pytest.raises(ValueError, match="not available"):
        rewriter(engine=engine, form=form)


def test_max_clauses_always_caps_the_terms() -> None:
    body = rewriter(pruning=QueryPruning(max_clauses=2)).body("q")
    assert [c["rank_feature"]["field"] for c in body["query"]["bool"]["should"]] == [
        "splade.vitamin",
        "splade.d",
    ]
    body = rewriter(pruning=QueryPruning(top_k=10, max_clauses=3)).body("q")
    assert len(body["query"]["bool"]["should"]) == 3


def test_two_phase_retrieves_pruned_and_rescores_full() -> None:
    body = rewriter(pruning=QueryPruning(top_k=2), rescore_window=50).body("q", size=10)
    assert len(body["query"]["bool"]["should"]) == 2
    rescore = body["rescore"]
    assert rescore["window_size"] == 50
    assert len(rescore["query"]["rescore_query"]["bool"]["should"]) == len(WEIGHTS)
    assert rescore["query"]["query_weight"] == 0.0


def test_global_second_phase_scores_only_the_window_with_the_full_query() -> None:
    pruned = rewriter(pruning=QueryPruning(top_k=2))
    body = pruned.restricted_body("q", ["d1", "d7"], size=10)
    must, only = body["query"]["bool"]["must"], body["query"]["bool"]["filter"]
    assert len(must[0]["bool"]["should"]) == len(WEIGHTS)  # unpruned, unlike the first phase
    assert only == [{"ids": {"values": ["d1", "d7"]}}] and body["size"] == 10
    assert pruned.restricted_body("q", [], size=10)["query"] == {"match_none": {}}


def test_hybrid_adds_weighted_bm25_in_one_flat_disjunction() -> None:
    body = rewriter(hybrid=Hybrid(bm25_weight=0.3, splade_weight=2.0)).body("vitamin d")
    bm25, *splade = body["query"]["bool"]["should"]
    assert bm25 == {"match": {"content": {"query": "vitamin d", "boost": 0.3}}}
    # no nested bool: SPLADE's weight is in each token's boost, so Lucene can skip weak tokens
    boosts = {c["rank_feature"]["field"]: c["rank_feature"]["boost"] for c in splade}
    assert boosts["splade.vitamin"] == pytest.approx(2.0 * 2.0 / 100)
    assert len(boosts) == len(WEIGHTS)


def test_elasticsearch_hybrid_uses_boosted_term_clauses_not_the_sparse_vector_wrapper() -> None:
    es = rewriter(engine="elasticsearch", form="sparse_vector", hybrid=Hybrid(splade_weight=0.5))
    bm25, *splade = es.body("vitamin d")["query"]["bool"]["should"]
    assert "match" in bm25
    terms = {c["term"]["splade"]["value"]: c["term"]["splade"]["boost"] for c in splade}
    assert terms["vitamin"] == pytest.approx(0.5 * 2.0 / 100) and len(terms) == len(WEIGHTS)
    # alone, the SPLADE query stays Elasticsearch's own, unpruned
    alone = rewriter(engine="elasticsearch", form="sparse_vector").body("q")["query"]
    assert alone["sparse_vector"]["prune"] is False


def test_neural_sparse_hybrid_keeps_its_one_plugin_clause() -> None:
    os_ = rewriter(form="neural_sparse", hybrid=Hybrid(splade_weight=2.0))
    _bm25, splade = os_.body("vitamin d")["query"]["bool"]["should"]
    assert splade["bool"]["boost"] == 2.0 and "neural_sparse" in splade["bool"]["should"][0]


def test_empty_query_matches_nothing_instead_of_erroring() -> None:
    assert sparse_clause(SparseVector(()), "rank_feature", "splade") == {"match_none": {}}


def test_bodies_are_json() -> None:
    for form, engine in [
        ("rank_feature", "opensearch"),
        ("neural_sparse", "opensearch"),
        ("sparse_vector", "elasticsearch"),
    ]:
        json.dumps(rewriter(form=form, engine=engine).body("q"))
