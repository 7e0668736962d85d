"""The CLI as a user runs it: encode a corpus with bad lines, rewrite in every form, print mappings."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
from click.testing import CliRunner

from splade_es.cli import main
from splade_es.corpus import read_encoded
from splade_es.records import EncodedRecord
from splade_es.term_stats import DocumentFrequencies

pytestmark = pytest.mark.slow


def test_encode_reports_bad_lines_and_writes_the_rest(tmp_path: Path, scifact: Path) -> None:
    good = list(islice((scifact / "corpus.jsonl").open(), 20))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(good[:10]) + "{broken\n" + '{"_id": "x"}\n' + "".join(good[10:]))
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        main, ["encode", "--input", str(corpus), "--output", str(out), "--top-k", "64"]
    )
    assert result.exit_code == 0, result.output
    assert "encoded 20, rejected 2" in result.output
    assert "corpus.jsonl:11" in result.output and "corpus.jsonl:12" in result.output
    records = [r for _, r in read_encoded(out)]
    assert [r.id for r in records] == [json.loads(line)["_id"] for line in good]
    assert all(0 < len(r.features) <= 64 for r in records if isinstance(r, EncodedRecord))
    frequencies = DocumentFrequencies.load(DocumentFrequencies.path_for(out))
    assert frequencies.documents == 20
    holding = {
        name: sum(name in r.features for r in records if isinstance(r, EncodedRecord))
        for name in frequencies.counts
    }
    assert frequencies.counts == holding
    rejects = [
        json.loads(x) for x in (tmp_path / "out.parquet.rejects.jsonl").read_text().splitlines()
    ]
    assert [r["line"] for r in rejects] == [11, 12]


@pytest.mark.parametrize(
    ("engine", "form", "key"),
    [
        ("opensearch", "rank_feature", "bool"),
        ("opensearch", "neural_sparse", "neural_sparse"),
        ("elasticsearch", "sparse_vector", "sparse_vector"),
    ],
)
def test_rewrite_prints_a_body_per_form(engine: str, form: str, key: str) -> None:
    result = CliRunner().invoke(
        main,
        ["rewrite", "vitamin d deficiency", "--engine", engine, "--form", form, "--top-k", "5"],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert key in body["query"]


def test_rewrite_explain_and_bad_combination() -> None:
    explained = CliRunner().invoke(main, ["rewrite", "symptoms of diabetes", "--explain"])
    assert "diabetes" in json.loads(explained.output)
    bad = CliRunner().invoke(
        main, ["rewrite", "x", "--engine", "opensearch", "--form", "sparse_vector"]
    )
    assert bad.exit_code != 0 and "not available on opensearch" in bad.output


def test_mapping_command() -> None:
    result = CliRunner().invoke(
        main,
        [
            "mapping",
            "--engine",
            "elasticsearch",
            "--version",
            "8.15.0",
            "--field-type",
            "sparse_vector",
        ],
    )
    assert json.loads(result.output)["mappings"]["properties"]["splade"] == {
        "type": "sparse_vector"
    }
