"""Corpus reading with rejects, and the encoded-record formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from splade_es.corpus import EncodedWriter, ReadStats, read_documents, read_encoded
from splade_es.records import DeadLetter, EncodedRecord

LINES = [
    '{"_id": "1", "title": "T", "text": "body one"}',
    "{not json",
    '{"title": "no id", "text": "x"}',
    '{"_id": "4", "title": "only title"}',
    '{"_id": 5, "text": "integer id is fine"}',
    "",
    '{"_id": "7", "text": ["not", "a", "string"]}',
    '["an", "array"]',
]


def test_bad_lines_are_rejected_by_line_number_and_counts_add_up(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    stats = ReadStats()
    docs = list(read_documents(path, stats))
    assert [d.id for d in docs] == ["1", "5"]
    assert docs[0].full_text == "T body one"
    lines = {r.line: r.reason for r in stats.rejected}
    assert set(lines) == {2, 3, 4, 7, 8}
    assert "invalid JSON" in lines[2] and "_id" in lines[3] and "text" in lines[4]
    assert stats.read == stats.accepted + len(stats.rejected) == 7


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_encoded_records_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    records = [EncodedRecord(str(i), {"a": i + 1, "b__c": 7}, "t", "x") for i in range(2500)]
    with EncodedWriter(path, batch_rows=1000) as writer:
        for record in records:
            writer.write(record)
    back = [rec for _, rec in read_encoded(path)]
    assert len(back) == 2500
    assert all(isinstance(r, EncodedRecord) for r in back)
    assert back[1234] == EncodedRecord("1234", {"a": 1235, "b__c": 7}, "t", "x")
    assert not isinstance(back[0], DeadLetter) and back[0].title == "t"


def test_unknown_output_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.jsonl or \.parquet"):
        EncodedWriter(tmp_path / "out.csv")
