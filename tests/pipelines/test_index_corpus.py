"""The Beam pipeline on the FnApiRunner: files in, files out, counts that add up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.client import EngineError
from splade_es.corpus import ENCODED_SCHEMA, Document, read_encoded
from splade_es.pipelines.encode import failed_batch
from splade_es.pipelines.index_corpus import Plan, main, run, split_index
from splade_es.pipelines.read import SourcedDocument
from splade_es.records import EncodedRecord, FieldProfile
from splade_es.term_stats import DocumentFrequencies

from .conftest import BAD_LINES, N_DOCS, read_jsonl

RUNNER = "--runner=FnApiRunner"


def expected_records(encoder: Any, docs: list[Document], **kwargs: Any) -> dict[str, EncodedRecord]:
    vectors = encoder.encode_documents([d.full_text for d in docs])
    pruning = kwargs.pop("pruning", DocumentPruning())
    return {
        d.id: encoded_record(d, v, pruning, **kwargs) for d, v in zip(docs, vectors, strict=True)
    }


# Options ----------------------------------------------------------------------------------------


def plan(*args: str) -> Plan:
    return Plan.from_options(PipelineOptions([RUNNER, *args]))


def test_plan_reads_formats_and_sinks_from_the_options() -> None:
    p = plan("--input", "c.jsonl", "--output", "out/enc.parquet")
    assert (p.source, p.sink, p.dead_letter, p.update) == (
        "jsonl",
        "parquet",
        "out/enc-dead-letter",
        False,
    )
    p = plan("--input", "c.parquet", "--output", "e.jsonl", "--top_k", "5")
    assert (p.source, p.sink, p.pruning.top_k) == ("parquet", "jsonl", 5)


def test_reading_an_index_without_an_output_upgrades_it_in_place() -> None:
    p = plan("--input_index", "http://127.0.0.1:9200/scifact")
    assert p.sink == "index" and p.update and p.output_index == "scifact"
    assert p.output_cluster is not None and p.output_cluster.url == "http://127.0.0.1:9200"
    p = plan(
        "--input_index", "scifact", "--output_index", "scifact-splade", "--es_url", "http://h:1"
    )
    assert not p.update and p.input_cluster is not None and p.input_cluster.url == "http://h:1"


def test_a_new_output_index_takes_the_shard_layout_and_the_request_timeout() -> None:
    p = plan("--input", "c.jsonl", "--output_index", "docs", "--es_url", "http://a:1,http://b:2")
    assert (p.layout.shards, p.layout.replicas) == (1, 0)
    p = plan(
        "--input", "c.jsonl", "--output_index", "docs", "--shards", "6", "--replicas", "1",
        "--es_timeout", "12.5",
    )  # fmt: skip
    assert (p.layout.shards, p.layout.replicas) == (6, 1)
    assert p.output_cluster is not None and p.output_cluster.timeout == 12.5


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "exactly one of --input and --input_index"),
        (["--input", "a.jsonl", "--input_index", "x"], "exactly one"),
        (["--input", "a.jsonl"], "--output or --output_index"),
        (["--input", "a.jsonl", "--output", "x.csv"], "must end in .parquet or .jsonl"),
        (["--input", "a.jsonl", "--output", "x.jsonl", "--output_index", "i"], "only one"),
    ],
)
def test_bad_option_combinations_are_clear_errors(args: list[str], message: str, capsys) -> None:
    with pytest.raises(ValueError, match=message):
        plan(*args)
    assert main([RUNNER, *args]) == 2
    assert message.split()[0] in capsys.readouterr().err


def test_index_references() -> None:
    assert split_index("https://es:9243/docs", "http://x") == ("https://es:9243", "docs")
    assert split_index("docs", "http://x") == ("http://x", "docs")
    with pytest.raises(ValueError, match="URL/INDEX"):
        split_index("http://", "http://x")
    with pytest.raises(EngineError, match="pattern"):
        split_index("http://h:9200/w_*", "http://x")


def test_a_failed_encode_batch_dead_letters_every_document() -> None:
    docs = [
        SourcedDocument(Document("1", "", "a"), "c.jsonl", 3),
        SourcedDocument(Document("2", "t", "b"), "c.jsonl", 9),
    ]
    entries = list(failed_batch((docs, (RuntimeError, "RuntimeError('CUDA OOM')", []))))
    assert [(e.id, e.line) for e in entries] == [("1", 3), ("2", 9)]
    assert all(e.stage == "encode" and "CUDA OOM" in e.reason for e in entries)


# Real runs --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_jsonl_to_parquet_matches_the_library_and_counts_add_up(
    corpus_with_bad_lines: Path, scifact_docs: list[Document], splade_tiny, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = run(
        [
            RUNNER,
            "--input",
            str(corpus_with_bad_lines),
            "--output",
            str(out / "encoded.parquet"),
            "--device",
            "cpu",
            "--max_batch_size",
            "16",
        ]
    )
    assert (summary.read, summary.written, summary.rejected) == (N_DOCS + 4, N_DOCS, 4)
    assert summary.encoded == N_DOCS and summary.dead_lettered == 0 and summary.adds_up()

    shards = sorted(out.glob("encoded-*.parquet"))
    assert shards and all(pq.read_schema(s).equals(ENCODED_SCHEMA) for s in shards)
    got: dict[str, EncodedRecord] = {}
    for shard in shards:
        for _, rec in read_encoded(shard):
            assert isinstance(rec, EncodedRecord)
            got[rec.id] = rec
    want = expected_records(splade_tiny, scifact_docs)
    assert sorted(got) == sorted(want)
    for doc_id, rec in got.items():
        assert rec.features == want[doc_id].features, doc_id
        assert (rec.title, rec.text) == (want[doc_id].title, want[doc_id].text)
    # the corpus-wide DF table beside the shards, as `splade-es encode` writes it
    table = DocumentFrequencies.load(out / "encoded.df.json")
    assert table == DocumentFrequencies.count(got.values())

    rejects = read_jsonl("encoded-dead-letter-*.jsonl", out)
    assert len(rejects) == 4
    assert {r["raw"] for r in rejects} == set(BAD_LINES)
    assert all(r["stage"] == "read" and r["source"] == str(corpus_with_bad_lines) for r in rejects)
    assert sorted(r["line"] for r in rejects) == [11, 12, 44, 45]  # the blank line 13 counts too
    reasons = {r["raw"]: r["reason"] for r in rejects}
    assert reasons[BAD_LINES[0]] == "missing 'text'"
    assert reasons[BAD_LINES[1]].startswith("invalid JSON")
    assert reasons[BAD_LINES[2]] == "missing '_id'"
    assert reasons[BAD_LINES[3]] == "empty 'title' and 'text'"


@pytest.mark.slow
def test_parquet_to_pruned_jsonl(scifact_docs: list[Document], splade_tiny, tmp_path: Path) -> None:
    rows = [{"_id": d.id, "title": d.title, "text": d.text} for d in scifact_docs[:12]]
    rows.append({"_id": "empty", "title": "", "text": ""})
    source = tmp_path / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    out = tmp_path / "out"
    summary = run(
        [
            RUNNER,
            "--input",
            str(source),
            "--output",
            str(out / "encoded.jsonl"),
            "--device",
            "cpu",
            "--top_k",
            "20",
            "--no_text",
        ]
    )
    assert (summary.read, summary.written, summary.rejected) == (13, 12, 1) and summary.adds_up()
    got = {r["id"]: r for r in read_jsonl("encoded-0*.jsonl", out)}
    want = expected_records(
        splade_tiny, scifact_docs[:12], pruning=DocumentPruning(top_k=20), keep_text=False
    )
    assert got == {doc_id: r.to_json() for doc_id, r in want.items()}
    assert all(len(r["features"]) <= 20 and "text" not in r for r in got.values())
    table = DocumentFrequencies.load(out / "encoded.df.json")
    assert table == DocumentFrequencies.count(want.values())  # counted after pruning
    # how the vectors were made, beside the shards, found from any shard as `encode`'s sidecar is
    made = FieldProfile.read(next(out.glob("encoded-0*.jsonl")))
    assert made == FieldProfile(model="splade-tiny", quantization=100.0, pruning={"top_k": 20})
    (reject,) = read_jsonl("encoded-dead-letter-*.jsonl", out)
    assert reject["reason"] == "empty 'title' and 'text'" and reject["source"] == str(source)
    assert reject["line"] == 13
