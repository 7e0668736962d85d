"""The Beam pipeline against a real OpenSearch node: bulk sink, dead letters, drop-in upgrade."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from splade_es_workshop.engines import start

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.bulk import BulkOptions
from splade_es.client import ConnectionSettings, connect
from splade_es.corpus import Document
from splade_es.pipelines.index_corpus import run
from splade_es.pipelines.write import WriteToIndex
from splade_es.records import EncodedRecord
from tests.conftest import engine_spec

from .conftest import N_DOCS, read_jsonl

pytestmark = [pytest.mark.engine, pytest.mark.slow]

RUNNER = "--runner=FnApiRunner"


@pytest.fixture(scope="module")
def url() -> str:
    return start(engine_spec("opensearch"))


def test_jsonl_into_an_index_counts_add_up(
    url: str, index_name: str, corpus_with_bad_lines: Path, tmp_path: Path
) -> None:
    summary = run(
        [
            RUNNER,
            "--input",
            str(corpus_with_bad_lines),
            "--output-index",
            index_name,
            "--es-url",
            url,
            "--dead_letter",
            str(tmp_path / "dead"),
            "--device",
            "cpu",
            "--bulk_size",
            "16",
        ]
    )
    assert (summary.read, summary.indexed, summary.rejected) == (N_DOCS + 4, N_DOCS, 4)
    assert summary.adds_up()
    client = connect(ConnectionSettings(url=url))
    assert client.count(index=index_name)["count"] == N_DOCS
    mapping = client.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert mapping["properties"]["splade"]["type"] == "rank_features"
    assert len(read_jsonl("dead-*.jsonl", tmp_path)) == 4


def test_a_record_with_bad_weights_is_dead_lettered_with_the_engines_reason(
    url: str, index_name: str, tmp_path: Path
) -> None:
    from splade_es.client import open_cluster
    from splade_es.indices import ensure_index

    client, info = open_cluster(ConnectionSettings(url=url))
    ensure_index(client, info, index_name)
    records = [  # built directly: the engine, not the reader, must refuse the negative weight
        EncodedRecord("good-1", {"vitamin": 120, "d": 40}, text="vitamin d"),
        EncodedRecord("bad", {"vitamin": -3}, text="negative weight"),
        EncodedRecord("good-2", {"cancer": 90}, text="cancer"),
    ]
    dead_path = tmp_path / "dead"
    settings = ConnectionSettings(url=url)
    with beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions()) as pipeline:
        dead = (
            pipeline
            | beam.Create(records)
            | WriteToIndex(settings, index_name, options=BulkOptions(chunk_size=2))
        )
        _ = (
            dead
            | beam.Map(lambda d: json.dumps(d.to_json()))
            | beam.io.WriteToText(str(dead_path), file_name_suffix=".jsonl")
        )
    client.indices.refresh(index=index_name)
    assert client.count(index=index_name)["count"] == 2
    (entry,) = read_jsonl("dead-*.jsonl", tmp_path)
    assert entry["id"] == "bad" and entry["status"] == 400 and entry["stage"] == "index"
    assert "mapper_parsing_exception" in entry["reason"]
    assert "negative" in entry["reason"].lower() or "positive" in entry["reason"].lower()
    assert entry["record"] == records[1].to_json()


def test_drop_in_upgrade_of_a_bm25_index_keeps_the_text(
    url: str, index_name: str, scifact_docs: list[Document], splade_tiny, tmp_path: Path
) -> None:
    client = connect(ConnectionSettings(url=url))
    client.indices.create(
        index=index_name,
        body={
            "settings": {"number_of_shards": 2, "number_of_replicas": 0},
            "mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}},
        },
    )
    docs = scifact_docs[:25]
    body = "".join(
        json.dumps({"index": {"_index": index_name, "_id": d.id}})
        + "\n"
        + json.dumps({"title": d.title, "text": d.text})
        + "\n"
        for d in docs
    )
    assert not client.bulk(body=body, refresh=True)["errors"]

    summary = run(
        [
            RUNNER,
            "--input-index",  # dashed spellings work too
            f"{url}/{index_name}",
            "--slices",
            "3",
            "--scroll_size",
            "4",
            "--dead_letter",
            str(tmp_path / "dead"),
            "--device",
            "cpu",
        ]
    )
    assert (summary.read, summary.indexed, summary.dead_lettered) == (25, 25, 0)
    assert summary.adds_up()
    want = {
        d.id: encoded_record(d, v, DocumentPruning()).features
        for d, v in zip(
            docs, splade_tiny.encode_documents([d.full_text for d in docs]), strict=True
        )
    }
    hits = client.search(index=index_name, body={"size": 100, "query": {"match_all": {}}})
    sources = {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}
    assert len(sources) == 25
    for d in docs:
        assert sources[d.id] == {"title": d.title, "text": d.text, "splade": want[d.id]}
    # the SPLADE field is searchable
    top = next(iter(want[docs[0].id]))
    query = {"query": {"rank_feature": {"field": f"splade.{top}", "linear": {}}}}
    assert client.count(index=index_name, body=query)["count"] >= 1
