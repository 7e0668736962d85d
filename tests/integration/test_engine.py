"""Index, search and evaluate through each real engine node; the failure paths a user hits."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from splade_es_workshop.engines import kill_hard, start

from splade_es.bulk import BulkOptions, EngineUnavailable
from splade_es.cli import main
from splade_es.client import EngineError
from splade_es.corpus import EncodedWriter, read_qrels, read_queries
from splade_es.evaluation import ExactSparseIndex, evaluate
from splade_es.fusion import Fusion
from splade_es.indexing import FileIndexer, Progress
from splade_es.indices import IndexProfile, ensure_index
from splade_es.records import EncodedRecord
from splade_es.search import Searcher

from .conftest import Cluster, EncodedCorpus

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def fresh_index(cluster: Cluster, name: str, field_type: str | None = None) -> IndexProfile:
    cluster.client.indices.delete(index=name, ignore_unavailable=True)
    return ensure_index(cluster.client, cluster.info, name, "splade", field_type)


def encoded_file(path: Path, records: list[EncodedRecord]) -> Path:
    with EncodedWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


def count(cluster: Cluster, index: str) -> int:
    cluster.client.indices.refresh(index=index)
    return int(cluster.client.count(index=index)["count"])


def test_scifact_through_the_engine_matches_exact_scoring(
    cluster: Cluster, scifact_encoded: EncodedCorpus, splade_tiny, scifact: Path, tmp_path: Path
) -> None:
    profile = fresh_index(cluster, "scifact-test")
    index = profile.index
    source = encoded_file(tmp_path / "scifact.jsonl", scifact_encoded.records)
    summary = FileIndexer(cluster.client, profile, show_progress=False).run(
        source, tmp_path / "dead.jsonl"
    )
    assert summary.indexed == len(scifact_encoded.records) == count(cluster, index)
    assert summary.adds_up() and summary.dead_lettered == 0

    qrels = read_qrels(scifact / "qrels" / "test.tsv")
    queries = {q: t for q, t in read_queries(scifact / "queries.jsonl").items() if q in qrels}
    qids = list(queries)
    searcher = Searcher.for_index(cluster.client, cluster.info, index, splade_tiny)
    assert searcher.field_type == _field_type(cluster, index)
    metrics = {}
    for mode in ("bm25", "splade", "hybrid"):
        hits = searcher.search_many([queries[q] for q in qids], mode, size=100)
        run = {q: {h.id: h.score for h in hs} for q, hs in zip(qids, hits, strict=True)}
        metrics[mode] = evaluate(run, qrels)
    exact = ExactSparseIndex(scifact_encoded.ids, scifact_encoded.vectors).search(
        {q: splade_tiny.encode_query(t) for q, t in queries.items()}, k=100
    )
    exact_ndcg = evaluate(exact, qrels)["ndcg@10"]
    two_searches_match_the_one_query_hybrid(searcher, [queries[q] for q in qids], qrels, qids)
    print(
        f"\n{cluster.spec.engine} {cluster.info.version}: {json.dumps(metrics)} exact={exact_ndcg:.4f}"
    )
    assert abs(metrics["splade"]["ndcg@10"] - exact_ndcg) <= 0.005
    assert metrics["bm25"]["ndcg@10"] >= 0.64
    assert all(0 <= v <= 1 for m in metrics.values() for v in m.values())


def two_searches_match_the_one_query_hybrid(
    searcher: Searcher, texts: list[str], qrels: dict[str, dict[str, int]], qids: list[str]
) -> None:
    """`--fusion sum@client`: each query's BM25 and SPLADE searches travel together (one
    `_msearch` per 32 queries, not one per mode) and their sum is the one `bool` query's score
    for every document both found, with BM25 weighed as the index's weights say; the hits kept
    carry their titles."""
    weighted = replace(searcher, hybrid=replace(searcher.hybrid, bm25_weight=0.3))
    one_query = weighted.search_many(texts, "hybrid", size=100)
    two = replace(weighted, fusion=Fusion.parse("sum@client"))
    sent = []
    msearch = searcher.client.msearch

    def counted(*args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs["body"].count("\n") // 2)
        return msearch(*args, **kwargs)

    searcher.client.msearch = counted
    try:
        fused = two.search_many(texts, "hybrid", size=100)
    finally:
        del searcher.client.msearch
    assert sent == [min(64, 2 * len(texts) - i) for i in range(0, 2 * len(texts), 64)]
    compared = 0
    for whole, split in zip(one_query, fused, strict=True):
        scores = {h.id: h.score for h in split}
        titles = {h.id: h.title for h in split}  # read by one mget
        assert all(titles[h.id] == h.title for h in whole if h.id in titles)
        for hit in whole[:10]:
            if hit.id in scores and scores[hit.id] != pytest.approx(hit.score, rel=1e-3):
                # a document only one search returned lacks the other half: only lower
                assert scores[hit.id] < hit.score, hit.id
            compared += hit.id in scores
    assert compared >= 9 * len(texts)
    assert sum(bool(h.title) for hits in fused for h in hits) >= 0.9 * sum(map(len, fused))
    ndcg = [evaluate(dict(zip(qids, ({h.id: h.score for h in hs} for hs in r), strict=True)), qrels)
            for r in (one_query, fused)]  # fmt: skip
    assert ndcg[1]["ndcg@10"] == pytest.approx(ndcg[0]["ndcg@10"], abs=0.01)


def _field_type(cluster: Cluster, index: str) -> str:
    mapping = cluster.client.indices.get_mapping(index=index)[index]["mappings"]
    return str(mapping["properties"]["splade"]["type"])


def test_bad_documents_are_dead_lettered_with_reasons(cluster: Cluster, tmp_path: Path) -> None:
    profile = fresh_index(cluster, "dead-letter-test")
    lines: list[dict[str, Any] | str] = [
        {"id": "good-1", "features": {"vitamin": 120, "d": 80}, "text": "vitamin d"},
        {"id": "negative", "features": {"vitamin": -3}},
        {"id": "string-weight", "features": {"vitamin": "lots"}},
        {"id": "nested", "features": {"vitamin": {"x": 1}}},
        "{oops",
        {"id": "good-2", "features": {"cancer": 50}, "title": "t"},
        {"id": "zero", "features": {"vitamin": 0}},
        {"id": "huge", "features": {"vitamin": 1e39}},  # beyond float32: only Lucene refuses it
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    dead_letter = tmp_path / "dead.jsonl"
    summary = FileIndexer(cluster.client, profile, show_progress=False).run(source, dead_letter)
    dead = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    assert summary.read == 8 and summary.adds_up()
    assert summary.indexed == count(cluster, profile.index) == 2
    assert summary.rejected + summary.dead_lettered == len(dead) == 6
    by_id = {d.get("id", f"line {d.get('line')}"): d for d in dead}
    assert set(by_id) == {"negative", "string-weight", "nested", "zero", "line 5", "huge"}
    assert all(d["reason"] for d in by_id.values())
    assert "invalid JSON" in by_id["line 5"]["reason"]
    assert by_id["huge"]["stage"] == "index" and by_id["huge"]["status"] == 400
    assert "finite" in by_id["huge"]["reason"]


@pytest.mark.one_generation
def test_killed_node_then_rerun_indexes_every_document_exactly_once(
    cluster: Cluster, scifact_encoded: EncodedCorpus, tmp_path: Path
) -> None:
    records = scifact_encoded.records[:3000]
    profile = fresh_index(cluster, "crash-test")
    source = encoded_file(tmp_path / "crash.jsonl", records)
    progress = Progress.path_for(source, profile.index)
    dead_letter = tmp_path / "dead.jsonl"
    options = BulkOptions(chunk_size=100, concurrency=2, max_retries=2, backoff_s=0.2)
    killed = threading.Event()

    def kill_after_first_progress() -> None:
        while not progress.exists():
            time.sleep(0.005)
        kill_hard(cluster.spec)
        killed.set()

    killer = threading.Thread(target=kill_after_first_progress, daemon=True)
    killer.start()
    try:
        with pytest.raises(EngineUnavailable, match="gave up"):
            FileIndexer(cluster.client, profile, options=options, show_progress=False).run(
                source, dead_letter
            )
    finally:
        killer.join(timeout=60)
        start(cluster.spec)
    assert killed.is_set()
    done_before = json.loads(progress.read_text())["done_through"]
    assert 0 < done_before < len(records)
    summary = FileIndexer(cluster.client, profile, options=options, show_progress=False).run(
        source, dead_letter
    )
    assert 0 < summary.already_done <= done_before
    assert summary.indexed + summary.already_done == len(records) and summary.adds_up()
    assert count(cluster, profile.index) == len(records)
    ids = {
        h["_id"]
        for h in cluster.client.search(
            index=profile.index, body={"size": 3000, "_source": False, "query": {"match_all": {}}}
        )["hits"]["hits"]
    }
    assert ids == {r.id for r in records}
    assert not progress.exists()


def test_existing_index_with_another_mapping_is_not_overwritten(cluster: Cluster) -> None:
    name = "clash-test"
    cluster.client.indices.delete(index=name, ignore_unavailable=True)
    cluster.client.indices.create(
        index=name, body={"mappings": {"properties": {"splade": {"type": "keyword"}}}}
    )
    with pytest.raises(EngineError, match="not a sparse field"):
        ensure_index(cluster.client, cluster.info, name)
    created = fresh_index(cluster, "clash-test-2").index
    current = _field_type(cluster, created)
    other = "sparse_vector" if current == "rank_features" else "rank_features"
    with pytest.raises((EngineError, ValueError), match=r"refusing|supports"):
        ensure_index(cluster.client, cluster.info, created, field_type=other)
    assert _field_type(cluster, created) == current
    assert (
        ensure_index(cluster.client, cluster.info, created).fields["splade"].field_type == current
    )


@pytest.mark.one_generation
def test_cli_index_search_eval(cluster: Cluster, scifact: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    lines = list(islice((scifact / "corpus.jsonl").open(), 200))
    corpus.write_text("".join(lines))
    encoded = tmp_path / "encoded.parquet"
    runner = CliRunner()
    result = runner.invoke(main, ["encode", "--input", str(corpus), "--output", str(encoded)])
    assert result.exit_code == 0, result.output
    cluster.client.indices.delete(index="cli-test", ignore_unavailable=True)
    result = runner.invoke(
        main,
        ["index-vectors", "--input", str(encoded), "--index", "cli-test", "--url", cluster.url],
    )
    assert result.exit_code == 0, result.output
    assert "read 200: indexed 200 (" in result.output
    first = json.loads(lines[0])
    result = runner.invoke(
        main, ["search", first["title"], "--index", "cli-test", "--url", cluster.url]
    )
    assert result.exit_code == 0, result.output
    assert first["_id"] in result.output.splitlines()[0]
    result = runner.invoke(
        main,
        ["eval", "--index", "cli-test", "--beir-dir", str(scifact), "--url", cluster.url, "--json"],
    )
    assert result.exit_code == 0, result.output
    table = json.loads(result.output[result.output.index("{\n") :])
    scores = table["collections"][scifact.name]["modes"]
    assert set(scores) == {"bm25", "splade", "hybrid"}
    assert all(set(m) == {"ndcg@10", "mrr@10", "recall@100"} for m in scores.values())
    assert all(not math.isnan(v) for m in scores.values() for v in m.values())


def test_unreachable_url_is_a_clear_error_not_a_trace() -> None:
    result = CliRunner().invoke(
        main, ["search", "x", "--index", "i", "--url", "http://127.0.0.1:1"]
    )
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output
