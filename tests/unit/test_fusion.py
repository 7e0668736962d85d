"""Client-side hybrid fusion: the same arithmetic as OpenSearch's normalization / RRF processors."""

from __future__ import annotations

import pytest

from splade_es.fusion import Fusion, Method, fuse, fused_in_engine
from splade_es.search_pipelines import fusion_pipeline_body

BM25 = [("a", 10.0), ("b", 5.0), ("c", 0.0)]
SPLADE = [("b", 2.0), ("c", 1.0), ("d", 0.5)]


def test_min_max_is_a_weighted_mean_of_normalised_scores() -> None:
    fused = dict(fuse(BM25, SPLADE, Fusion("min_max"), (1.0, 3.0), size=10))
    # bm25 -> a 1, b .5, c .001 (OpenSearch's floor); splade -> b 1, c .333, d .001; (1, 3) / 4
    low = 0.001
    expected = {"a": 0.25, "b": 0.875, "c": (low + 1) / 4, "d": 3 * low / 4}
    assert fused == pytest.approx(expected)


def test_rrf_uses_ranks_only() -> None:
    fused = fuse(BM25, SPLADE, Fusion("rrf", rank_constant=60), (1.0, 1.0), size=2)
    assert [doc for doc, _ in fused] == ["b", "c"]  # ranks 2+1 and 3+2 beat a's single rank 1
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_z_score_and_l2_normalise_each_list() -> None:
    hits = [("a", 10.0), ("b", 6.0), ("d", 1.0), ("c", 0.0)]  # mean 4.25, sample std 4.6458
    z = dict(fuse(hits, [], Fusion("z_score"), (1.0, 0.0), size=10))
    # as OpenSearch's z_score normalizer: sample standard deviation; at or below the mean, 0.001
    assert z == pytest.approx({"a": 1.23768, "b": 0.37669, "d": 0.001, "c": 0.001}, abs=1e-5)
    one = dict(fuse([("a", 3.0)], [], Fusion("z_score"), (1.0, 0.0), size=10))
    assert one == {"a": 3.0}  # a lone hit keeps its score (the list's maximum)
    l2 = dict(fuse(BM25, [], Fusion("l2"), (1.0, 0.0), size=10))
    assert sum(v * v for v in l2.values()) == pytest.approx(1.0)


def test_sum_adds_weighted_raw_scores() -> None:
    assert dict(fuse(BM25, SPLADE, Fusion("sum"), (1.0, 2.0), size=10))["b"] == 9.0


def test_settings_name_the_engine_pipeline_and_bad_ones_are_refused() -> None:
    fusion = Fusion.parse("min_max@engine")
    assert fusion.pipeline_name((0.3, 0.7)) == "splade-es-hybrid-min_max-0.3-0.7"
    body = fusion_pipeline_body(fusion, (0.3, 0.7))
    processor = body["phase_results_processors"][0]["normalization-processor"]
    assert processor["combination"]["parameters"]["weights"] == [0.3, 0.7]
    halves = fusion_pipeline_body(fusion, (1.0, 1.0))["phase_results_processors"][0]
    assert halves["normalization-processor"]["combination"]["parameters"]["weights"] == [0.5, 0.5]
    assert fusion.pipeline_name((2.0, 2.0)) == "splade-es-hybrid-min_max-0.5-0.5"
    rrf = fusion_pipeline_body(Fusion.parse("rrf"), (1, 1))["phase_results_processors"][0]
    assert rrf["score-ranker-processor"]["combination"]["technique"] == "rrf"
    with pytest.raises(ValueError, match="fusion method"):
        Fusion.parse("max")
    with pytest.raises(ValueError, match="'engine' or 'client'"):
        Fusion.parse("rrf@server")


@pytest.mark.parametrize(
    ("method", "engine", "version", "expected"),
    [
        ("sum", "elasticsearch", "8.19.21", True),
        ("min_max", "elasticsearch", "8.19.21", False),
        ("min_max", "opensearch", "2.19.6", True),
        ("l2", "opensearch", "2.19.6", True),
        ("min_max", "opensearch", "2.9.0", False),
        ("z_score", "opensearch", "2.19.6", False),
        ("rrf", "opensearch", "2.19.6", True),
        ("rrf", "opensearch", "2.18.0", False),
        ("z_score", "opensearch", "3.0.0", True),
        ("rrf", "opensearch", "3.6.0", True),
    ],
)
def test_which_fusions_the_engine_runs_itself(
    method: Method, engine: str, version: str, expected: bool
) -> None:
    assert fused_in_engine(method, engine, version) is expected


def test_without_at_fusion_runs_where_the_engine_can_and_at_engine_names_the_client_form() -> None:
    assert Fusion.parse("z_score").where("opensearch", "2.19.6") == "client"
    assert Fusion.parse("z_score").where("opensearch", "3.0.0") == "engine"
    assert Fusion.parse("rrf").where("opensearch", "2.19.6") == "engine"
    assert Fusion.parse("min_max@client").where("opensearch", "2.19.6") == "client"
    with pytest.raises(ValueError, match="use --fusion z_score@client"):
        Fusion.parse("z_score@engine").where("opensearch", "2.19.6")
