"""OpenSearch's neural stack for real (the default node has k-NN + neural-search and the
analysis-common module): neural_sparse scores, hybrid search pipelines, two-phase, stemming."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from splade_es_workshop.engines import start

from splade_es.cli import main
from splade_es.client import ConnectionSettings, open_cluster
from splade_es.corpus import EncodedWriter, read_queries
from splade_es.evaluation import ExactSparseIndex
from splade_es.fusion import Fusion, Method, fused_in_engine
from splade_es.indexing import FileIndexer
from splade_es.indices import ensure_index
from splade_es.search import Mode, Searcher
from splade_es.search_pipelines import TwoPhase
from tests.conftest import engine_spec, generation_params

from .conftest import EncodedCorpus

pytestmark = [pytest.mark.engine, pytest.mark.slow]
INDEX = "neural-test"
N_DOCS = 600


@pytest.fixture(scope="module", params=generation_params("opensearch"))
def neural(
    request: pytest.FixtureRequest,
    scifact_encoded: EncodedCorpus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, Any, str]]:
    generation, name = request.param
    url = start(engine_spec(name, generation))
    client, info = open_cluster(ConnectionSettings(url=url))
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    profile = ensure_index(client, info, INDEX)
    source = tmp_path_factory.mktemp("neural") / "enc.jsonl"
    with EncodedWriter(source) as writer:
        for record in scifact_encoded.records[:N_DOCS]:
            writer.write(record)
    FileIndexer(client, profile, show_progress=False).run(source, source.with_suffix(".dead"))
    yield client, info, url
    client.indices.delete(index=INDEX, ignore_unavailable=True)


@pytest.fixture(scope="module")
def queries(scifact: Path) -> list[str]:
    return list(islice(read_queries(scifact / "queries.jsonl").values(), 20))


def scores(hits: list[Any]) -> dict[str, float]:
    return {h.id: h.score for h in hits}


def test_the_bm25_field_stems_where_the_engine_can(neural: tuple[Any, Any, str]) -> None:
    client, _, _ = neural
    mapping = client.indices.get_mapping(index=INDEX)[INDEX]["mappings"]
    assert mapping["properties"]["content"]["analyzer"] == "english"
    assert mapping["_meta"]["splade_es"]["analyzer"] == "english"
    tokens = client.indices.analyze(index=INDEX, body={"field": "content", "text": "running"})
    assert [t["token"] for t in tokens["tokens"]] == ["run"]


def test_neural_sparse_scores_equal_rank_feature_and_exact_scoring(
    neural: tuple[Any, Any, str],
    splade_tiny: Any,
    queries: list[str],
    scifact_encoded: EncodedCorpus,
) -> None:
    client, info, _ = neural
    rank_feature = Searcher.for_index(client, info, INDEX, splade_tiny)
    neural_sparse = replace(rank_feature, form="neural_sparse")
    assert neural_sparse.body("vitamin d", "splade")["query"]["neural_sparse"]
    exact = ExactSparseIndex(scifact_encoded.ids[:N_DOCS], scifact_encoded.vectors[:N_DOCS])
    by_form = [s.search_many(queries, "splade", size=10) for s in (rank_feature, neural_sparse)]
    for number, (a, b) in enumerate(zip(*by_form, strict=True)):
        assert [h.id for h in a] == [h.id for h in b]
        assert scores(a) == pytest.approx(scores(b), rel=1e-5)
        truth = exact.search({"q": splade_tiny.encode_query(queries[number])}, k=10)["q"]
        assert a[0].id == next(iter(truth))  # Lucene's 9-bit weights keep the top document
        assert a[0].score == pytest.approx(truth[a[0].id], rel=0.02)


@pytest.mark.parametrize("method", ["min_max", "l2", "rrf", "z_score"])
def test_engine_and_client_fusion_agree(
    neural: tuple[Any, Any, str], splade_tiny: Any, queries: list[str], method: Method
) -> None:
    client, info, _ = neural
    if not fused_in_engine(method, info.engine, info.version):
        pytest.skip(f"{info.engine} {info.version} does not fuse {method} (tests/failure)")
    base = Searcher.for_index(client, info, INDEX, splade_tiny)
    engine = replace(base, fusion=Fusion.parse(f"{method}@engine"))
    local = replace(base, fusion=Fusion.parse(f"{method}@client"))
    name = engine.pipeline("hybrid")
    assert name == engine.fusion.pipeline_name(engine.weights)
    assert client.transport.perform_request("GET", f"/_search/pipeline/{name}")[name]
    for served, computed in zip(
        engine.search_many(queries, "hybrid", size=100),
        local.search_many(queries, "hybrid", size=100),
        strict=True,
    ):
        # equal scores may come in either order (RRF ties are common): compare scores by id
        assert [h.score for h in served[:5]] == pytest.approx(
            [h.score for h in computed[:5]], abs=1e-4
        )
        want = {h.id: h.score for h in computed}
        assert {h.id: h.score for h in served[:5]} == pytest.approx(
            {h.id: want.get(h.id, -1.0) for h in served[:5]}, abs=1e-4
        )


@pytest.mark.parametrize("mode", ["splade", "hybrid"])
def test_two_phase_keeps_the_full_queries_top_hits(
    neural: tuple[Any, Any, str], splade_tiny: Any, queries: list[str], mode: Mode
) -> None:
    client, info, _ = neural
    full = Searcher.for_index(client, info, INDEX, splade_tiny, form="neural_sparse")
    two_phase = replace(full, two_phase=TwoPhase())
    # a sum-fused hybrid is one bool query: its neural_sparse clause goes through the processor
    assert two_phase.pipeline(mode) == TwoPhase().name
    for a, b in zip(
        full.search_many(queries, mode, size=10),
        two_phase.search_many(queries, mode, size=10),
        strict=True,
    ):
        assert b[0].id == a[0].id and b[0].score == pytest.approx(a[0].score, rel=1e-5)


def test_eval_runs_every_hybrid_method(
    neural: tuple[Any, Any, str], scifact: Path, tmp_path: Path
) -> None:
    """Every mode through the engine, on 40 judged queries (the methods' scores are checked
    against the client's in test_engine_and_client_fusion_agree; this is the CLI's path)."""
    _, _, url = neural
    beir = tmp_path / scifact.name
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").symlink_to(scifact / "corpus.jsonl")
    (beir / "queries.jsonl").symlink_to(scifact / "queries.jsonl")
    lines = (scifact / "qrels" / "test.tsv").read_text().splitlines()
    judged = list(dict.fromkeys(line.split("\t")[0] for line in lines[1:]))[:40]
    kept = [line for line in lines[1:] if line.split("\t")[0] in judged]
    (beir / "qrels" / "test.tsv").write_text("\n".join([lines[0], *kept]) + "\n")
    modes = "bm25,splade,splade:two-phase,hybrid,hybrid:min_max,hybrid:l2,hybrid:min_max@client"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--index",
            INDEX,
            "--url",
            url,
            "--beir-dir",
            str(beir),
            "--modes",
            modes,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    table = json.loads(result.output[result.output.index("{\n") :])
    values = table["collections"][scifact.name]["modes"]
    assert list(values) == modes.split(",")
    assert all(0 < m["ndcg@10"] <= 1 for m in values.values())


def test_a_missing_plugin_is_one_clear_line(splade_tiny: Any, scifact: Path) -> None:
    url = start(engine_spec("elasticsearch"))
    client, info = open_cluster(ConnectionSettings(url=url))
    name = "neural-missing-test"
    client.indices.delete(index=name, ignore_unavailable=True)
    ensure_index(client, info, name)
    args = ["search", "x", "--index", name, "--url", url, "--mode", "hybrid", "--fusion"]
    result = CliRunner().invoke(main, [*args, "min_max@engine"])
    assert result.exit_code == 1
    assert "use --fusion min_max@client" in result.output
    assert len(result.output.strip().splitlines()) == 1
    # without @engine it fuses where it can: here, in the client
    assert CliRunner().invoke(main, [*args, "min_max"]).exit_code == 0
    client.indices.delete(index=name)
