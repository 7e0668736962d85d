"""The training report's engine scoring on a real node: encode + index + BM25/SPLADE/hybrid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from splade_es.benchmarks import training_sweep
from tests.integration.conftest import Cluster
from tests.training.conftest import write_slice


@pytest.fixture(scope="module")
def scifact_slice_with_test(scifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SciFact slice whose 20 training queries also serve as its test split."""
    folder = write_slice(scifact, tmp_path_factory.mktemp("sweep-slice"), n_docs=150)
    shutil.copy(folder / "qrels" / "train.tsv", folder / "qrels" / "test.tsv")
    return folder


@pytest.mark.engine
def test_engine_scores_agree_with_exact_in_process_scoring(
    cluster: Cluster,
    scifact_slice_with_test: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(training_sweep, "RESULTS", tmp_path)
    name = f"slice-{cluster.spec.engine}"
    engine = training_sweep.score_on_engine(
        "splade-tiny", scifact_slice_with_test, name, cluster.url
    )
    exact = training_sweep.score_model("splade-tiny", scifact_slice_with_test)

    # the same model through the engine (quantized weights, english/standard BM25) ranks as the
    # exact in-process dot products do, up to quantization
    assert engine["engine_ndcg@10"] == pytest.approx(exact["ndcg@10"], abs=0.03)
    assert engine["engine_recall@100"] == pytest.approx(exact["recall@100"], abs=0.03)
    for key in ("engine_bm25_ndcg@10", "engine_hybrid_ndcg@10", "engine_hybrid_recall@100"):
        assert 0.2 < engine[key] <= 1.0, key
    method, _, weights = engine["engine_fusion"].partition(" ")
    base = method.split("@")[0]
    assert base in ("sum", "min_max", "z_score", "rrf")
    # sum is one bool query anywhere; OpenSearch 2.x pipelines have min_max but not z_score or RRF
    opensearch = cluster.spec.engine == "opensearch"
    in_engine = base == "sum" or (opensearch and (base == "min_max" or cluster.info.major >= 3))
    assert method == f"{base}@{'engine' if in_engine else 'client'}"
    assert len(weights.split("/")) == 2
    assert engine["engine_analyzer"] in ("english", "standard")
    assert not cluster.client.indices.exists(index=f"training-sweep-{name}")
