"""The Beam pipeline on a real Flink session cluster (JobManager + 2 TaskManagers as separate JVMs)
with PROCESS SDK workers: same records as the FnApiRunner, every document indexed exactly once.

A password given as an option and another inside `--url` reach no TaskManager or JobManager log, no
file of the cluster (its blob store holds the job's graph), no job config in Flink's REST API and no
SDK worker's `PIPELINE_OPTIONS`; and a relative input glob, typed from the user's folder, is read
there, not in the runner's folder (one cluster start serves every Flink test)."""

from __future__ import annotations

import json
import tempfile
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from splade_es.client import ConnectionSettings, connect
from splade_es.pipelines.index_corpus import run
from splade_es.secret_files import PREFIX
from tests.failure.beam_helpers import (
    assert_all_indexed,
    files_holding,
    index_with_secrets,
    scifact_lines,
)

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


def rest(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as answer:
        return json.load(answer)


@pytest.mark.failure
@pytest.mark.engine
def test_flink_shows_no_secret_and_reads_a_relative_glob_where_it_was_typed(
    flink_cluster: Any, beam_node: Any, beam_index: str, scifact: Path, tmp_path: Path
) -> None:
    url, client = beam_node
    (tmp_path / "corpus").mkdir()
    lines = scifact_lines(scifact)
    for part in range(2):
        chunk = lines[part * 20 : (part + 1) * 20]
        (tmp_path / "corpus" / f"part-{part}.jsonl").write_text("\n".join(chunk) + "\n")
    before = {job["jid"] for job in rest(flink_cluster.rest_url, "/jobs/overview")["jobs"]}
    done, watch, needles = index_with_secrets(
        url, beam_index, "corpus/*.jsonl", tmp_path, "--runner", "flink", "--workers", "2"
    )
    assert_all_indexed(client, beam_index, done)
    output = done.stdout + done.stderr
    assert not any(n in output for n in needles)
    # Flink's REST API: the job's config (user-config holds the pipeline options)
    jobs = [
        j for j in rest(flink_cluster.rest_url, "/jobs/overview")["jobs"] if j["jid"] not in before
    ]
    assert len(jobs) == 1, jobs
    config = json.dumps(rest(flink_cluster.rest_url, f"/jobs/{jobs[0]['jid']}/config"))
    assert "user-config" in config and not any(n in config for n in needles), config
    # the SDK workers' environment
    assert watch.options, "no SDK worker process was seen"
    assert not any(n in o for o in watch.options.values() for n in needles)
    # every file of the cluster (logs, blob store, tmp) and of the run
    assert files_holding(flink_cluster.run, needles) == []
    assert files_holding(tmp_path, needles) == []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        assert files_holding(folder, needles) == [], folder
