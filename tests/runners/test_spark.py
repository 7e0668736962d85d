"""The Beam pipeline on a real Spark standalone cluster (Master + Worker JVMs, executors) with
PROCESS SDK workers: the same records as the FnApiRunner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from splade_es.pipelines.index_corpus import run

from .conftest import N_DOCS, assert_same_records, read_records

pytestmark = [pytest.mark.runner, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark_cluster() -> Iterator[object]:
    from splade_es_workshop.runners import spark

    cluster = spark.start()
    try:
        yield cluster
    finally:
        spark.stop()


def test_spark_writes_the_fnapi_runner_records(
    spark_cluster, corpus_slice: Path, reference: dict[str, dict], tmp_path: Path
) -> None:
    summary = run(
        [
            *spark_cluster.pipeline_args(),
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
    assert_same_records(got, reference)
