"""The query side reads the index's recorded profile: field type, quantization, text fields.
Engine-free: the profile comes from a mapping as `GET index/_mapping` returns it."""

from __future__ import annotations

from typing import Any

import pytest

from splade_es.client import EngineError, EngineInfo
from splade_es.evaluation import evaluate
from splade_es.indices import IndexProfile, SpladeField
from splade_es.query import Hybrid
from splade_es.search import Searcher
from splade_es.sparse import SparseVector


class FixedEncoder:
    def encode_query(self, text: str) -> SparseVector:
        return SparseVector.from_mapping({"vitamin": 2.0, "d": 1.0})


def searcher(profile: IndexProfile, splade_field: str = "splade") -> Searcher:
    field = profile.splade_field(splade_field)
    return Searcher(
        client=None,  # type: ignore[arg-type]
        info=EngineInfo("elasticsearch", "8.19.21"),
        index=profile.index,
        encoder=FixedEncoder(),
        field=splade_field,
        field_type=field.field_type,
        hybrid=Hybrid(text_fields=profile.text_fields),
        quantization=field.quantization,
    )


RECORDED: dict[str, Any] = {
    "_meta": {
        "splade_es": {
            "fields": {"vec": {"field_type": "sparse_vector", "quantization": 50.0, "model": "m"}},
            "text_fields": ["name", "blurb"],
            "analyzer": "english",
        }
    },
    "properties": {"vec": {"type": "sparse_vector"}, "name": {"type": "text"}},
}


def test_bm25_and_hybrid_use_the_recorded_text_fields() -> None:
    s = searcher(IndexProfile.from_mapping("p", "u", RECORDED), "vec")
    assert s.body("vitamin d", "bm25")["query"] == {
        "multi_match": {"query": "vitamin d", "fields": ["name", "blurb"], "boost": 1.0}
    }
    hybrid = s.body("vitamin d", "hybrid")["query"]["bool"]["should"]
    assert hybrid[0]["multi_match"]["fields"] == ["name", "blurb"]


def test_the_recorded_quantization_scales_the_query() -> None:
    s = searcher(IndexProfile.from_mapping("p", "u", RECORDED), "vec")
    query = s.body("vitamin d", "splade")["query"]["sparse_vector"]
    assert query["query_vector"] == {"vitamin": 2.0 / 50, "d": 1.0 / 50}


def test_an_index_without_meta_is_inferred_from_its_mapping() -> None:
    mapping = {"properties": {"splade": {"type": "rank_features"}, "content": {"type": "text"}}}
    profile = IndexProfile.from_mapping("old", "u", mapping)
    assert not profile.recorded and profile.text_fields == ("content",)
    assert profile.fields == {"splade": SpladeField(field_type="rank_features")}
    assert searcher(profile).body("x", "bm25")["query"] == {
        "match": {"content": {"query": "x", "boost": 1.0}}
    }
    with pytest.raises(EngineError, match="no SPLADE field 'other'"):
        profile.splade_field("other")


def test_empty_text_matches_nothing_in_every_mode() -> None:
    s = searcher(IndexProfile.from_mapping("p", "u", RECORDED), "vec")
    for mode in ("bm25", "splade"):
        assert s.body("  ", mode)["query"] == {"match_none": {}}


def test_a_field_refuses_vectors_made_another_way() -> None:
    recorded = SpladeField(quantization=100.0, model="splade-tiny", field_type="rank_features")
    assert recorded.clashes_with(SpladeField(quantization=100.0, model="splade-tiny")) is None
    assert "quantization" in str(recorded.clashes_with(SpladeField(quantization=50.0)))
    assert "model" in str(recorded.clashes_with(SpladeField(model="/runs/other")))


def test_judged_queries_without_hits_count_as_zero() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    both = evaluate({"q1": {"d1": 1.0}, "q2": {"d2": 1.0}}, qrels)
    one_unanswered = evaluate({"q1": {"d1": 1.0}}, qrels)
    assert both["ndcg@10"] == 1.0
    assert one_unanswered["ndcg@10"] == pytest.approx(0.5)
    assert one_unanswered["recall@100"] == pytest.approx(0.5)


class OneIndex:
    """Answers the reads `IndexProfile.read` makes, for one index with these mappings."""

    def __init__(self, mappings: dict[str, Any]) -> None:
        self.indices = self
        self.mappings = mappings

    def exists_alias(self, name: str) -> bool:
        return False

    def exists(self, index: str) -> bool:
        return True

    def get_mapping(self, index: str) -> dict[str, Any]:
        return {index: {"mappings": self.mappings}}

    def get_settings(self, index: str) -> dict[str, Any]:
        return {index: {"settings": {"index": {"uuid": "u"}}}}


def test_bm25_alone_needs_no_splade_field() -> None:
    plain: Any = OneIndex({"properties": {"title": {"type": "text"}}})
    info = EngineInfo("opensearch", "2.19.6")
    bm25 = Searcher.for_index(plain, info, "plain", None)
    assert bm25.body("x", "bm25")["query"] == {"match": {"title": {"query": "x", "boost": 1.0}}}
    with pytest.raises(EngineError, match="no SPLADE field"):
        Searcher.for_index(plain, info, "plain", FixedEncoder())


def test_a_client_side_sum_weighs_bm25_as_the_one_query_sum_does() -> None:
    """On a legacy-BM25 engine the index's weights assume a BM25 scale 2.2x smaller: the engine's
    `sum` folds that into the `match` boost, and the client's `sum` of the raw scores must too.
    Normalising methods and rrf never see the scale."""
    from dataclasses import replace

    from splade_es.fusion import Fusion

    legacy = Hybrid(0.5, 1.0, ("text",), bm25_correction=1 / 2.2)
    base = replace(searcher(IndexProfile("idx", "u", {"splade": SpladeField()})), hybrid=legacy)
    total = replace(base, fusion=Fusion.parse("sum@client"))
    assert total.fused_weights == pytest.approx((0.5 / 2.2, 1.0))
    assert total.fused_weights[0] == pytest.approx(legacy.bm25_boost)
    for method in ("rrf", "min_max", "z_score", "l2"):
        assert replace(base, fusion=Fusion.parse(f"{method}@client")).fused_weights == (0.5, 1.0)


def test_sum_at_the_client_is_two_searches_and_plain_sum_one_bool_query() -> None:
    """`sum` stays one `bool` query; `sum@client` (like rrf on Elasticsearch) is BM25 and SPLADE
    as two bodies, each as deep as the fusion reads, which no single body can stand for, and
    neither fetching documents."""
    from dataclasses import replace

    from splade_es.fusion import Fusion

    base = searcher(IndexProfile("idx", "u", {"splade": SpladeField()}))
    assert not base.fused_by_client("hybrid")
    assert "bool" in base.body("vitamin d", "hybrid")["query"]
    for spec in ("sum@client", "rrf"):  # Elasticsearch fuses rrf at the client
        two = replace(base, fusion=Fusion.parse(spec))
        assert two.fused_by_client("hybrid") and not two.fused_by_client("splade")
        bm25, splade = two.fused_bodies("vitamin d", size=10)
        # ids and scores only: the kept hits' titles come from one mget
        no_source = {"_source": False}
        assert bm25 == {**base.body("vitamin d", "bm25", size=two.fusion.depth), **no_source}
        assert splade == {**base.body("vitamin d", "splade", size=two.fusion.depth), **no_source}
        with pytest.raises(ValueError, match="two queries"):
            two.body("vitamin d", "hybrid")


def test_search_and_eval_prune_the_query_as_their_options_say() -> None:
    """`--top-k` and `--threshold` of `search`/`eval` reach the query the engine gets."""
    from splade_es.commands.search import searcher_for

    info = EngineInfo("elasticsearch", "9.2.4")
    for options, kept in (({}, {"vitamin", "d"}), ({"threshold": 1.5}, {"vitamin"}),
                          ({"top_k": 1}, {"vitamin"}), ({"threshold": 9.0}, {"vitamin"})):  # fmt: skip
        s = searcher_for(OneIndex(RECORDED), info, FixedEncoder(), "m", "p", field="vec", **options)
        assert set(s.body("vitamin d", "splade")["query"]["sparse_vector"]["query_vector"]) == kept
