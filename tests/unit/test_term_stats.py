"""Corpus-wide document frequencies and the query pruning that uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from splade_es.cli import main
from splade_es.query import QueryPruning
from splade_es.records import EncodedRecord
from splade_es.sparse import SparseVector
from splade_es.term_stats import DocumentFrequencies

RECORDS = [
    EncodedRecord("a", {"the": 10.0, "cat": 50.0}),
    EncodedRecord("b", {"the": 12.0, "dog": 40.0}),
    EncodedRecord("c", {"the": 9.0, "cat": 30.0, "u__s": 20.0}),
    EncodedRecord("d", {"the": 8.0}),
]


def test_counts_each_document_once_per_feature() -> None:
    table = DocumentFrequencies.count(RECORDS)
    assert table.documents == 4
    assert table.counts == {"the": 4, "cat": 2, "dog": 1, "u__s": 1}
    assert table.ratio("cat") == 0.5
    assert table.ratio("never-seen") == 0.0


def test_round_trips_through_its_file(tmp_path: Path) -> None:
    table = DocumentFrequencies.count(RECORDS)
    path = DocumentFrequencies.path_for(tmp_path / "corpus.parquet")
    assert path.name == "corpus.parquet.df.json"
    table.save(path)
    assert DocumentFrequencies.load(path) == table


@pytest.mark.parametrize("content", ["not json", '{"documents": 0, "counts": {}}', "{}"])
def test_a_malformed_table_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.df.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"bad\.df\.json"):
        DocumentFrequencies.load(path)


def test_query_pruning_drops_terms_held_by_too_much_of_the_corpus() -> None:
    table = DocumentFrequencies.count(RECORDS)
    query = SparseVector.from_mapping({"the": 2.0, "cat": 1.5, "dog": 1.0, "u.s": 0.5})
    pruned = QueryPruning(max_df_ratio=0.5, frequencies=table).apply(query)
    # "the" is in every document; "u.s" is looked up under its feature name "u__s"
    assert [t for t, _ in pruned.weights] == ["cat", "dog", "u.s"]
    assert [
        t for t, _ in QueryPruning(max_df_ratio=0.3, frequencies=table).apply(query).weights
    ] == [
        "dog",
        "u.s",
    ]


def test_query_pruning_keeps_the_heaviest_term_when_all_are_frequent() -> None:
    table = DocumentFrequencies.count(RECORDS)
    query = SparseVector.from_mapping({"the": 2.0})
    assert QueryPruning(max_df_ratio=0.1, frequencies=table).apply(query).weights == (("the", 2.0),)


def test_df_pruning_without_a_table_is_refused() -> None:
    with pytest.raises(ValueError, match="document-frequency table"):
        QueryPruning(max_df_ratio=0.1).apply(SparseVector.from_mapping({"a": 1.0}))


def test_cli_max_df_needs_a_df_file() -> None:
    result = CliRunner().invoke(
        main, ["search", "q", "--index", "x", "--max-df", "0.1", "--url", "http://127.0.0.1:1"]
    )
    assert result.exit_code != 0
    assert "--max-df needs --df-file" in result.output
    assert "Traceback" not in result.output
