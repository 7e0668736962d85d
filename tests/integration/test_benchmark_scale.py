"""The scale benchmark end to end on a real node: tiny corpus sizes, every variant, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_es.benchmarks.latency_scale import SHAPES, VARIANTS, main_index
from splade_es.benchmarks.latency_scale import main as latency_scale
from splade_es.corpus import EncodedWriter
from splade_es.records import FieldProfile
from tests.integration.conftest import Cluster, EncodedCorpus


@pytest.mark.engine
def test_latency_scale_on_a_tiny_corpus(
    cluster: Cluster, scifact_encoded: EncodedCorpus, scifact: Path, tmp_path: Path
) -> None:
    if cluster.spec.engine != "opensearch":
        pytest.skip("the scale report runs on OpenSearch (two-phase processor variants)")
    real = tmp_path / "real.parquet"
    with EncodedWriter(real) as writer:
        for record in scifact_encoded.records[:60]:
            writer.write(record)
    FieldProfile(model="splade-tiny", quantization=100.0).write(real)
    out = tmp_path / "report"
    sizes = (40, 150)
    args = ["--encoded", str(real), "--sizes", ",".join(map(str, sizes)), "--queries", "6"]
    args += ["--shards", "2"]  # the main indexes' layout, recorded in each run and the report
    args += ["--skip-variant", "doc top-64"]  # left out, and its index never built
    # SEISMIC (OpenSearch 3.3+, neural-search) on the same node up to --seismic-max-size (the
    # smaller size only), inside a breaker limit the run sets
    seismic = tuple(map(int, cluster.info.version.split(".")[:2])) >= (3, 3)
    if seismic:
        args += ["--seismic-url", cluster.url, "--seismic-max-size", "100"]
        args += ["--seismic-memory-limit", "15%"]
    try:
        latency_scale([*args, "--url", cluster.url, "--beir-dir", str(scifact), "--out", str(out)])
        for size in sizes:
            cluster.client.indices.refresh(index=main_index(size))
            assert cluster.client.count(index=main_index(size))["count"] == size
            run = json.loads((out / f"{size}.json").read_text())
            with_seismic = seismic and size == 40
            assert [r["variant"] for r in run["results"]] == [
                v.name
                for v in VARIANTS
                if v.index != "doc-top64" and (v.index != "seismic" or with_seismic)
            ]
            if with_seismic:
                assert run["seismic_postings"] == 500  # the floor: 0.002 × 40 is less
                memory = run["seismic_memory"]
                heap = cluster.client.nodes.stats(metric="jvm")["nodes"]
                (node,) = heap.values()
                assert memory["limit_bytes"] == int(node["jvm"]["mem"]["heap_max_in_bytes"] * 0.15)
                assert memory["tripped"] == 0
                # SEISMIC over the same vectors finds what the exact query finds on 150 docs
                approx = next(r for r in run["results"] if r["variant"] == "SEISMIC top_n 10")
                assert approx["exact_recall100"] > 0.5
                assert cluster.client.count(index=f"{main_index(size)}-seismic")["count"] == size
            else:
                assert run["seismic_memory"] is None
            assert not cluster.client.indices.exists(index=f"{main_index(size)}-doc-top64")
            assert cluster.client.indices.exists(index=f"{main_index(size)}-doc-mass80")
            assert (run["nodes"], run["shards"], run["replicas"], run["warmed_all"]) == (
                1,
                2,
                0,
                True,
            )
            index_settings = cluster.client.indices.get_settings(index=main_index(size))
            assert index_settings[main_index(size)]["settings"]["index"]["number_of_shards"] == "2"
            full = next(r for r in run["results"] if r["variant"] == "SPLADE full")
            assert full["exact_recall100"] == 1.0
            # the client-fused hybrid (two searches of one _msearch) finds what the one-query
            # hybrid finds: on 40-150 documents both lists hold every match, so the sums agree
            by_name = {r["variant"]: r for r in run["results"]}
            fused = by_name["hybrid, sum of two searches (client)"]
            assert fused["ndcg10"] == pytest.approx(by_name["hybrid BM25 + SPLADE"]["ndcg10"])
            assert fused["timing"]["p50"] > 0
            # query encoding alone and encode + search, one query at a time, both measured (two
            # phases of one run: under load either p50 may be the larger)
            assert run["end_to_end_ms_p50"] > 0 and run["encode_ms_p50"] > 0
            assert run["documents_model"] == "splade-tiny"
        report = (out / "README.md").read_text()
        assert "## 150 documents" in report and "ms per million docs" in report
        assert "one node, 2 primary shards × 0 replica(s)" in report
        assert "queries: the 6 SciFact test queries" in report
        assert (out / "latency_vs_size.png").stat().st_size > 0
        assert (out / "pareto.png").stat().st_size > 0
        if seismic:
            assert "SEISMIC: `n_postings` 500" in report
    finally:
        for size in sizes:
            cluster.client.indices.delete(index=f"{main_index(size)}*")
        limit = {"plugins.neural_search.circuit_breaker.limit": None}
        if seismic:
            cluster.client.cluster.put_settings(body={"transient": limit})


@pytest.mark.engine
def test_query_shapes_on_a_tiny_corpus(
    cluster: Cluster, scifact_encoded: EncodedCorpus, scifact: Path, tmp_path: Path
) -> None:
    real = tmp_path / "real.parquet"
    with EncodedWriter(real) as writer:
        for record in scifact_encoded.records[:200]:
            writer.write(record)
    FieldProfile(model="splade-tiny", quantization=100.0).write(real)
    out, size, queries = tmp_path / "shapes", 300, 6
    args = ["--shapes", "--encoded", str(real), "--sizes", str(size), "--queries", str(queries)]
    try:
        latency_scale([*args, "--url", cluster.url, "--beir-dir", str(scifact), "--out", str(out)])
        (run,) = json.loads((out / "shapes.json").read_text())
        assert [r["shape"] for r in run["rows"]] == [s.name for s in SHAPES]
        assert 0 < run["filter_share"] < 0.5 and "term" in run["filter"]
        for row in run["rows"]:
            assert 0 < row["p50"] <= row["p90"] <= row["p99"]
            if "identical_top_hits" in row:  # the shapes change no hit
                assert row["identical_top_hits"] == queries, row
        assert "p50 × BM25" in (out / "shapes.md").read_text()
    finally:  # by name: Elasticsearch 8+ refuses wildcard deletes
        cluster.client.indices.delete(index=main_index(size), ignore_unavailable=True)
