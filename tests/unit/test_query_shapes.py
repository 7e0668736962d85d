"""Query shapes that keep Lucene's dynamic pruning, and the BM25 scale a hybrid's weights assume.
Engine-free: bodies and profiles only (tests/integration/test_query_shapes.py runs them on nodes)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click
import pytest

from splade_es.client import EngineError, EngineInfo
from splade_es.indices import IndexProfile
from splade_es.mappings import LUCENE_BM25_SCALE, bm25_scale, index_body, text_field_k1
from splade_es.options import JsonObject
from splade_es.query import Hybrid
from splade_es.search import Mode, Searcher
from splade_es.sparse import SparseVector

FILTER = {"term": {"lang": "en"}}


class FixedEncoder:
    def encode_query(self, text: str) -> SparseVector:
        return SparseVector.from_mapping({"vitamin": 2.0, "d": 1.0})


def searcher(**kwargs: Any) -> Searcher:
    return Searcher(
        client=None,  # type: ignore[arg-type]
        info=EngineInfo("opensearch", "3.6.0"),
        index="i",
        encoder=FixedEncoder(),
        **kwargs,
    )


@pytest.mark.parametrize("mode", ["bm25", "splade", "hybrid"])
def test_totals_are_not_counted_unless_asked(mode: Mode) -> None:
    assert searcher().body("vitamin d", mode)["track_total_hits"] is False
    assert searcher(track_total_hits=True).body("vitamin d", mode)["track_total_hits"] is True


def test_a_filter_wraps_a_single_query_with_minimum_should_match() -> None:
    plain = searcher().body("vitamin d", "bm25")["query"]
    query = searcher(filter=FILTER).body("vitamin d", "bm25")["query"]
    assert query == {"bool": {"should": [plain], "filter": [FILTER], "minimum_should_match": 1}}
    loose = searcher(filter=FILTER, minimum_should_match=0).body("vitamin d", "bm25")["query"]
    assert loose["bool"]["minimum_should_match"] == 0


@pytest.mark.parametrize("mode", ["splade", "hybrid"])
def test_a_filter_joins_a_disjunction_flat(mode: Mode) -> None:
    """SPLADE's rank_feature terms and the sum hybrid stay one flat `should` list under the
    filter (nesting them in a conjunction measured no faster on Lucene 10)."""
    plain = searcher().body("vitamin d", mode)["query"]["bool"]
    strict = searcher(filter=FILTER, minimum_should_match=1).body("vitamin d", mode)["query"]
    assert strict["bool"] == {**plain, "filter": [FILTER], "minimum_should_match": 1}


def test_minimum_should_match_defaults_to_one_under_a_filter() -> None:
    """msm 1 measured faster than 0 at 1M documents for every mode (identical hits)."""
    s = searcher(filter=FILTER)
    assert s.msm == 1
    for mode in ("bm25", "splade", "hybrid"):
        assert s.body("vitamin d", mode)["query"]["bool"]["minimum_should_match"] == 1
    assert not s.drops_unmatched  # msm 1 admits no score-0 hit
    # msm 0 on request: every filtered document matches, the score-0 ones are dropped
    loose = replace(s, minimum_should_match=0)
    assert loose.msm == 0 and loose.drops_unmatched
    assert not replace(loose, filter=None).drops_unmatched  # no filter: nothing to drop


def test_score_zero_hits_are_dropped_only_when_asked() -> None:
    response = {"hits": {"hits": [{"_id": "a", "_score": 1.5}, {"_id": "b", "_score": 0.0}]}}
    s = searcher(filter=FILTER)
    assert [h.id for h in s._hits(response)] == ["a", "b"]
    assert [h.id for h in s._hits(response, drop_unmatched=True)] == ["a"]


def test_a_filter_wraps_a_sparse_vector_query() -> None:
    s = replace(
        searcher(field_type="sparse_vector", filter=FILTER),
        info=EngineInfo("elasticsearch", "9.2.4"),
    )
    query = s.body("vitamin d", "splade")["query"]["bool"]
    assert set(query["should"][0]) == {"sparse_vector"} and query["filter"] == [FILTER]


def test_engine_fused_hybrid_filters_each_sub_query() -> None:
    from splade_es.fusion import Fusion

    s = searcher(filter=FILTER, fusion=Fusion.parse("min_max@engine"))
    queries = s.body("vitamin d", "hybrid")["query"]["hybrid"]["queries"]
    assert len(queries) == 2
    for q in queries:
        assert q["bool"]["filter"] == [FILTER]
        assert q["bool"]["minimum_should_match"] == 1


def test_without_a_filter_the_query_is_unwrapped() -> None:
    assert "rank_feature" in str(searcher().body("vitamin d", "splade")["query"]["bool"]["should"])
    assert "filter" not in searcher().body("vitamin d", "splade")["query"]["bool"]


def test_filter_option_takes_a_json_object_only() -> None:
    kind = JsonObject()
    assert kind.convert('{"term": {"a": 1}}', None, None) == {"term": {"a": 1}}
    for bad in ("[1]", "{}", "{nope", "3"):
        with pytest.raises(click.BadParameter):
            kind.convert(bad, None, None)


# ----------------------------------------------------------------------- BM25 scale


def test_engine_bm25_scales() -> None:
    assert bm25_scale("opensearch", "2.19.6") == pytest.approx(2.2)  # Lucene's default k1 1.2
    assert bm25_scale("opensearch", "2.19.6", k1=0.9) == pytest.approx(1.9)
    assert bm25_scale("opensearch", "3.6.0", k1=0.9) == LUCENE_BM25_SCALE == 1.0


def test_k1_is_read_from_the_text_fields_similarity() -> None:
    body = index_body("opensearch", "3.6.0")
    settings = {"index": {k: v for k, v in body["settings"]["index"].items()}}
    assert text_field_k1(settings, body["mappings"], "content") == 0.9  # the shipped mappings
    assert text_field_k1({}, body["mappings"], "content") == 1.2  # similarity not found
    assert text_field_k1(settings, {"properties": {"content": {"type": "text"}}}, "content") == 1.2


def profile(meta: dict[str, Any], k1: float = 0.9) -> IndexProfile:
    mapping = {
        "_meta": {"splade_es": {"fields": {}, **meta}},
        "properties": {"content": {"type": "text", "similarity": "tuned"}},
    }
    settings = {"index": {"similarity": {"tuned": {"type": "BM25", "k1": str(k1)}}}}
    return IndexProfile.from_mapping("i", "u", mapping, settings)


def test_recorded_scale_corrects_a_legacy_engine_only() -> None:
    p = profile({"bm25_scale": 1.0})
    assert p.meta()["bm25_scale"] == 1.0
    assert p.bm25_correction(EngineInfo("opensearch", "3.6.0")) == 1.0
    assert p.bm25_correction(EngineInfo("opensearch", "2.19.6")) == pytest.approx(1 / 1.9)
    assert profile({"bm25_scale": 1.0}, k1=1.5).bm25_correction(
        EngineInfo("opensearch", "2.19.6")
    ) == pytest.approx(1 / 2.5)
    legacy = profile({"bm25_scale": 1.9})
    assert legacy.bm25_correction(EngineInfo("opensearch", "3.6.0")) == pytest.approx(1.9)


def test_an_unrecorded_scale_keeps_the_engines_own() -> None:
    p = profile({})
    assert p.bm25_scale is None and "bm25_scale" not in p.meta()
    assert p.bm25_correction(EngineInfo("opensearch", "2.19.6")) == 1.0


def test_a_bad_recorded_scale_is_one_line() -> None:
    for bad in ("x", 0, -1, True):
        with pytest.raises(EngineError, match="bm25_scale"):
            profile({"bm25_scale": bad})


def test_the_correction_multiplies_the_bm25_boost_of_a_sum_hybrid() -> None:
    s = searcher(hybrid=Hybrid(bm25_weight=0.5, bm25_correction=1 / 1.9))
    should = s.body("vitamin d", "hybrid")["query"]["bool"]["should"]
    assert should[0]["match"]["content"]["boost"] == pytest.approx(0.5 / 1.9)
    # the weights themselves (pipeline names, normalised fusions) are not corrected
    assert s.weights == (0.5, 1.0)
