"""`splade-es eval` over two real collections through a real OpenSearch node: one index per
collection (created from the in-process path's cache), one table, queries encoded once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from splade_es_workshop.engines import DEFAULT_SPECS, start

from splade_es.beir_eval import QueryCache, engine_runs, find_collections
from splade_es.cli import main
from splade_es.client import ConnectionSettings, open_cluster
from splade_es.commands.search import mode_variant
from splade_es.evaluation import evaluate
from splade_es.exact_eval import ExactRuns
from splade_es.search import Searcher
from tests.unit.test_beir_eval import CountingEncoder

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PREFIX = "beir-eval-test-"
DOCS = 300


def subset(source: Path, target: Path) -> Path:
    """The first DOCS documents of a real collection, with the judged queries that have a
    relevant document among them (judgments of the others dropped), as a BEIR folder."""
    (target / "qrels").mkdir(parents=True)
    lines = (source / "corpus.jsonl").read_text().splitlines()[:DOCS]
    (target / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    kept = {json.loads(line)["_id"] for line in lines}
    rows = (source / "qrels" / "test.tsv").read_text().splitlines()
    judged = [r for r in rows[1:] if r.split("\t")[1] in kept]
    (target / "qrels" / "test.tsv").write_text("\n".join([rows[0], *judged]) + "\n")
    qids = {r.split("\t")[0] for r in judged}
    queries = [q for q in (source / "queries.jsonl").read_text().splitlines() if q.strip()]
    (target / "queries.jsonl").write_text(
        "\n".join(q for q in queries if json.loads(q)["_id"] in qids) + "\n"
    )
    return target


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory, scifact: Path) -> Path:
    root = tmp_path_factory.mktemp("beir")
    for name in ("medline", "cisi"):
        subset(scifact.parent / name, root / name)
    return root


@pytest.fixture(scope="module")
def opensearch() -> tuple[Any, Any, str]:
    url = start(DEFAULT_SPECS["opensearch"])
    client, info = open_cluster(ConnectionSettings(url=url))
    for name in ("medline", "cisi"):
        client.indices.delete(index=PREFIX + name, ignore_unavailable=True)
    return client, info, url


def test_eval_creates_an_index_per_collection_and_prints_one_table(
    datasets: Path, opensearch: tuple[Any, Any, str], tmp_path: Path, splade_tiny: Any
) -> None:
    client, _, url = opensearch
    cache = tmp_path / "cache"
    args = ["eval", "--beir-dir", str(datasets), "--url", url, "--index-prefix", PREFIX]
    args += ["--create-missing", "--cache-dir", str(cache), "--device", "cpu", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    table = json.loads(result.output[result.output.index("{\n") :])
    assert list(table["collections"]) == ["cisi", "medline"]
    for name, entry in table["collections"].items():
        count = client.count(index=PREFIX + name)["count"]
        assert count == DOCS
        assert set(entry["modes"]) == {"bm25", "splade", "hybrid"}
        assert all(0 < m["ndcg@10"] <= 1 for m in entry["modes"].values())
    # the engine scores the cached vectors as the exact path does (rank_features keep ~9 bits)
    collections = find_collections([datasets])
    exact = ExactRuns(splade_tiny, cache)
    for collection in collections:
        qrels = collection.qrels()
        runs = exact(collection, collection.queries(qrels))
        engine = table["collections"][collection.name]["modes"]["splade"]["ndcg@10"]
        assert engine == pytest.approx(evaluate(runs["splade"], qrels)["ndcg@10"], abs=0.02)


def test_every_mode_shares_one_encoding_of_each_query(
    datasets: Path, opensearch: tuple[Any, Any, str], splade_tiny: Any
) -> None:
    client, info, _ = opensearch
    collection = find_collections([datasets / "medline"])[0]
    if client.indices.exists(index=PREFIX + "medline") is False:
        pytest.skip("needs the index the first test creates")
    queries = collection.queries(collection.qrels())
    encoder = CountingEncoder(splade_tiny)
    searcher = Searcher.for_index(client, info, PREFIX + "medline", QueryCache(encoder))
    specs = ("bm25", "splade", "hybrid", "hybrid:min_max@client", "splade:two-phase")
    runs = engine_runs({spec: mode_variant(searcher, spec) for spec in specs}, queries)
    assert set(runs) == set(specs)
    assert all(runs[spec] for spec in specs)
    assert Counter(encoder.query_texts) == Counter(queries.values())
