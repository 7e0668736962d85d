"""A real local Flink cluster (started once for the Flink tests, stopped after them, so a Spark
cluster never runs beside it), a SciFact slice, and the FnApiRunner's output for it as the
reference every runner must reproduce."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest
from splade_es_workshop.engines import start as start_engine

from tests.conftest import engine_spec

N_DOCS = 300


def opensearch_url() -> str:
    """The lead's OpenSearch test node (port 9200), started if needed."""
    return start_engine(engine_spec("opensearch"))


@pytest.fixture(scope="module")
def flink_cluster() -> Iterator[object]:
    from splade_es_workshop.runners import flink

    cluster = flink.start()
    try:
        yield cluster
    finally:
        flink.stop()


@pytest.fixture(scope="session")
def corpus_slice(scifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 300 SciFact documents as a BEIR JSONL file."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with (scifact / "corpus.jsonl").open(encoding="utf-8") as handle:
        path.write_text("".join(islice(handle, N_DOCS)), encoding="utf-8")
    return path


def read_records(folder: Path, pattern: str) -> dict[str, dict]:
    """Encoded records of the JSONL shards matching `pattern`, by id (a duplicate id fails)."""
    records: dict[str, dict] = {}
    for path in sorted(folder.glob(pattern)):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            assert record["id"] not in records, f"{record['id']} written twice"
            records[record["id"]] = record
    return records


def same_features(got: dict[str, float], want: dict[str, float]) -> bool:
    """Equal up to the last quantization step: batches padded differently on another runner
    change float sums in the last bits, which can move a weight on a rounding boundary by 1
    (and a weight of 1 to 0, dropping its term)."""
    return all(abs(got.get(name, 0) - want.get(name, 0)) <= 1 for name in got.keys() | want.keys())


def assert_same_records(got: dict[str, dict], want: dict[str, dict]) -> None:
    """The same documents with the same text, and features equal up to `same_features`."""
    assert got.keys() == want.keys()
    for doc_id, record in got.items():
        expected = want[doc_id]
        assert {k: v for k, v in record.items() if k != "features"} == {
            k: v for k, v in expected.items() if k != "features"
        }, doc_id
        assert same_features(record["features"], expected["features"]), doc_id


@pytest.fixture(scope="session")
def reference(corpus_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The FnApiRunner's records for the slice."""
    from splade_es.pipelines.index_corpus import run

    out = tmp_path_factory.mktemp("fnapi")
    summary = run(
        [
            "--runner=FnApiRunner",
            "--input",
            str(corpus_slice),
            "--output",
            str(out / "encoded.jsonl"),
            "--device",
            "cpu",
        ]
    )
    assert summary.written == N_DOCS and summary.adds_up()
    return read_records(out, "encoded-*.jsonl")
