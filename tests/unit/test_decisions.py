"""Decisions whose mutation the earlier unit tests missed (only the engine suite, or nothing,
caught them): each test here fails when its decision is broken, without a node.

The engine stand-ins below answer the few calls the code under test makes (`mget`,
`get_mapping`); the code under test itself is real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamPipeline
from apache_beam.testing.util import assert_that, equal_to

from splade_es.client import EngineInfo, redact, remember_secret, split_credentials
from splade_es.corpus import Document
from splade_es.indexing import FileIndexer
from splade_es.indices import IndexProfile, SpladeField
from splade_es.pipelines.read import KeepLastCopy, SourcedDocument
from splade_es.query import QueryPruning, QueryRewriter
from splade_es.records import EncodedRecord, RunSummary
from splade_es.search import Searcher
from splade_es.sparse import SparseVector

# Beam: the last copy of an id wins ---------------------------------------------------------------


def test_last_copy_wins_between_two_different_copies() -> None:
    """Two copies of one id with different texts: the one later in input order is kept, whatever
    order the runner delivers them in (the earlier test had identical copies, so keeping the
    first passed too)."""
    early = SourcedDocument(Document("d1", "old title", "old text"), "a.jsonl", 3)
    late = SourcedDocument(Document("d1", "new title", "new text"), "a.jsonl", 9)
    other_file = SourcedDocument(Document("d1", "newest", "from b"), "b.jsonl", 1)
    single = SourcedDocument(Document("d2", "", "alone"), "a.jsonl", 5)
    with BeamPipeline() as pipeline:
        kept = (
            pipeline
            | beam.Create([late, single, early])
            | "one" >> KeepLastCopy()
            | "texts" >> beam.Map(lambda s: (s.document.id, s.document.text))
        )
        assert_that(kept, equal_to([("d1", "new text"), ("d2", "alone")]))
    with BeamPipeline() as pipeline:
        kept = (
            pipeline
            | beam.Create([other_file, late, early])
            | KeepLastCopy()
            | beam.Map(lambda s: s.document.text)
        )
        assert_that(kept, equal_to(["from b"]))  # file name, then line: b.jsonl comes last


# Resume: records a previous run claims done are checked in the index -----------------------------


class _Index:
    """Answers `mget` the way a node does: found or not, with the SPLADE field or without."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.asked: list[list[str]] = []

    def mget(self, index: str, body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(list(body["ids"]))
        return {
            "docs": [
                {"_id": i, "found": i in self.docs, "_source": self.docs.get(i, {})}
                for i in body["ids"]
            ]
        }


def test_resume_sends_what_the_index_does_not_really_hold() -> None:
    """A progress file says 1..4 are done; the index holds 1 with its vector, 2 without the SPLADE
    field (e.g. text only) and not 3 or 4: only 1 is skipped, the rest are sent again."""
    index = _Index({"1": {"splade": {"a": 1.0}}, "2": {"title": "t"}})
    profile = IndexProfile("i", "uuid", {"splade": SpladeField()})
    indexer = FileIndexer(index, profile, "splade", show_progress=False)  # type: ignore[arg-type]
    records = [(n, EncodedRecord(str(n), {"a": 1.0})) for n in range(1, 5)]
    summary, settled = RunSummary(), list[int]()
    sent = list(indexer._unless_present(records, summary, settled.append))
    assert [r.id for _, r in sent] == ["2", "3", "4"]
    assert summary.already_done == 1 and settled == [1]
    assert index.asked == [["1", "2", "3", "4"]]


# Secrets never printed ---------------------------------------------------------------------------


def test_redact_hides_registered_secrets_and_url_passwords() -> None:
    remember_secret("hunter2-unit")
    message = redact("auth failed for hunter2-unit at http://bob:pw-in-url@host:9200/x")
    assert "hunter2-unit" not in message and "pw-in-url" not in message
    assert "***" in message and "host:9200" in message
    url, user, password = split_credentials("https://ann:s%40cret@h:9243")
    assert (url, user, password) == ("https://h:9243", "ann", "s@cret")
    assert "s@cret" not in redact("the password was s@cret")


# The max-clauses cap -----------------------------------------------------------------------------


class _Encoder:
    def __init__(self, terms: int) -> None:
        self.vector = SparseVector(tuple((f"t{i}", 10.0 - i / terms) for i in range(terms)))

    def encode_query(self, text: str) -> SparseVector:
        return self.vector


def _clauses(query: dict[str, Any]) -> int:
    return len(query["bool"]["should"])


def test_every_query_sent_obeys_max_clauses() -> None:
    """The first phase and the two-phase rescoring query both stay within max_clauses."""
    pruning = QueryPruning(top_k=None, max_clauses=5)
    rewriter = QueryRewriter(_Encoder(12), pruning=pruning, rescore_window=50)
    body = rewriter.body("q")
    assert _clauses(body["query"]) == 5
    assert _clauses(body["rescore"]["query"]["rescore_query"]) == 5
    assert len(pruning.cap(_Encoder(12).vector).weights) == 5
    top3 = QueryRewriter(_Encoder(12), pruning=QueryPruning(top_k=3, max_clauses=5))
    assert _clauses(top3.body("q")["query"]) == 3


# The query side reads the quantization factor the index recorded ----------------------------------


class _Indices:
    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def exists_alias(self, name: str) -> bool:
        return False

    def exists(self, index: str) -> bool:
        return True

    def get_mapping(self, index: str) -> dict[str, Any]:
        properties = {"splade": {"type": "rank_features"}, "content": {"type": "text"}}
        mappings = {"_meta": {"splade_es": self.meta}, "properties": properties}
        return {index: {"mappings": mappings}}

    def get_settings(self, index: str) -> dict[str, Any]:
        return {index: {"settings": {"index": {"uuid": "u1"}}}}


class _Cluster:
    def __init__(self, meta: dict[str, Any]) -> None:
        self.indices = _Indices(meta)


def test_for_index_scales_query_weights_by_the_recorded_factor(tmp_path: Path) -> None:
    """Documents quantized ×50: a query weight w must become boost w/50 (an exact dot product
    with the stored integers); ×100 (the default) would halve every SPLADE score."""
    meta = {"fields": {"splade": {"field_type": "rank_features", "quantization": 50.0}}}
    info = EngineInfo("opensearch", "3.6.0")
    encoder = _Encoder(2)
    searcher = Searcher.for_index(_Cluster(meta), info, "docs", encoder)  # type: ignore[arg-type]
    body = searcher.rewriter("splade").body("q")
    boosts = [c["rank_feature"]["boost"] for c in body["query"]["bool"]["should"]]
    assert boosts == [w / 50.0 for _, w in encoder.vector.weights]
    float_meta = {"fields": {"splade": {"field_type": "rank_features", "quantization": None}}}
    unscaled = Searcher.for_index(_Cluster(float_meta), info, "docs", encoder)  # type: ignore[arg-type]
    boosts = [
        c["rank_feature"]["boost"]
        for c in unscaled.rewriter("splade").body("q")["query"]["bool"]["should"]
    ]
    assert boosts == [w for _, w in encoder.vector.weights]


# "0 means none", parsed once ---------------------------------------------------------------------


def test_quantization_zero_means_float_weights_on_every_front_end() -> None:
    import argparse

    import click
    import pytest

    from splade_es.options import PRUNING, QUANTIZATION, add_argparse

    assert QUANTIZATION.type.convert("0", None, None) is None
    assert QUANTIZATION.type.convert("50", None, None) == 50.0
    for bad in ("-1", "nan", "inf", "x"):
        with pytest.raises(click.BadParameter):
            QUANTIZATION.type.convert(bad, None, None)
    parser = argparse.ArgumentParser()
    add_argparse(parser, PRUNING)
    assert parser.parse_args(["--quantization", "0"]).quantization is None
    assert parser.parse_args([]).quantization == 100.0
