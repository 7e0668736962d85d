"""The Beam pipeline on a real Flink session cluster (JobManager + 2 TaskManagers as separate JVMs)
with PROCESS SDK workers: same records as the FnApiRunner, every document indexed exactly once."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from splade_es.client import ConnectionSettings, connect
from splade_es.pipelines.index_corpus import run

from .conftest import N_DOCS, assert_same_records, opensearch_url, read_records, same_features

pytestmark = [pytest.mark.runner, pytest.mark.slow]


def test_cluster_has_two_task_managers_and_a_boot_script(flink_cluster) -> None:
    from splade_es_workshop.runners import flink

    state = flink.status()
    assert state["overview"]["taskmanagers"] == 2  # type: ignore[index]
    assert all(state["processes"].values())  # type: ignore[attr-defined]
    assert Path(flink_cluster.run / "beam-sdk-worker").stat().st_mode & 0o111


def test_flink_writes_the_fnapi_runner_records(
    flink_cluster, corpus_slice: Path, reference: dict[str, dict], tmp_path: Path
) -> None:
    summary = run(
        [
            *flink_cluster.pipeline_args(),
            "--input",
            str(corpus_slice),
            "--output",
            str(tmp_path / "encoded.jsonl"),
            "--device",
            "cpu",
        ]
    )
    assert (summary.read, summary.written, summary.dead_lettered) == (N_DOCS, N_DOCS, 0)
    got = read_records(tmp_path, "encoded-*.jsonl")
    assert len(got) == N_DOCS
    assert_same_records(got, reference)


@pytest.mark.engine
def test_flink_indexes_every_document_exactly_once(
    flink_cluster, corpus_slice: Path, reference: dict[str, dict], tmp_path: Path
) -> None:
    url = opensearch_url()
    index = f"runners-flink-{uuid.uuid4().hex[:10]}"
    client = connect(ConnectionSettings(url=url))
    try:
        summary = run(
            [
                *flink_cluster.pipeline_args(),
                "--input",
                str(corpus_slice),
                "--output_index",
                index,
                "--es_url",
                url,
                "--dead_letter",
                str(tmp_path / "dead"),
                "--device",
                "cpu",
            ]
        )
        assert (summary.read, summary.indexed, summary.dead_lettered) == (N_DOCS, N_DOCS, 0)
        assert client.count(index=index)["count"] == N_DOCS
        hits = client.search(
            index=index, body={"size": N_DOCS + 10, "version": True, "query": {"match_all": {}}}
        )["hits"]["hits"]
        assert {hit["_id"] for hit in hits} == reference.keys()
        assert {hit["_version"] for hit in hits} == {1}, "a document was indexed more than once"
        for hit in hits:
            features = reference[hit["_id"]]["features"]
            assert same_features(hit["_source"]["splade"], features), hit["_id"]
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.close()
