"""On a real Flink session cluster: a password given as an option and another inside `--url` reach
no TaskManager or JobManager log, no file of the cluster (its blob store holds the job's graph),
no job config in Flink's REST API and no SDK worker's `PIPELINE_OPTIONS`; and a relative input
glob, typed from the user's folder, is read there, not in the runner's folder."""

from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from splade_es.secret_files import PREFIX

from .beam_helpers import (
    assert_all_indexed,
    files_holding,
    index_with_secrets,
    scifact_lines,
)

pytestmark = [pytest.mark.failure, pytest.mark.runner, pytest.mark.engine, pytest.mark.slow]


def rest(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def flink_cluster() -> Any:
    from splade_es_workshop.runners import flink

    cluster = flink.start(flink.settings_for(2))
    yield cluster
    flink.stop()


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
