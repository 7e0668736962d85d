"""Bad input and bad options, as a hostile user gives them: one line naming the record or option,
nothing lost, no traceback, no secret echoed. (Engine-free; tests/failure/test_engine_faults.py
runs the kinds that need a node.)"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from splade_es.cli import main
from splade_es.corpus import read_encoded
from splade_es.pipelines.index_corpus import main as pipeline_main
from splade_es.records import EncodedRecord

pytestmark = pytest.mark.failure

GOOD = '{"_id": "d%d", "title": "Vitamin D", "text": "Vitamin D and bone health %d."}'


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def one_line_error(result: Result) -> str:
    """The error a user sees: exactly one line after usage text, naming the problem."""
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["encode", "--batch-size", "0"], "--encode-batch-size"),
        (["encode", "--top-k", "0"], "--top-k"),
        (["encode", "--threshold", "nan"], "--threshold"),
        (["encode", "--alpha-mass", "1.5"], "--alpha-mass"),
        (["encode", "--doc-max-length", "-4"], "--doc-max-length"),
        (["encode", "--quantization", "inf"], "--quantization"),
        (["index-vectors", "--index", "i", "--bulk-size", "0"], "--bulk-size"),
        (["index-vectors", "--index", "i", "--concurrency", "0"], "--concurrency"),
        (["index-vectors", "--index", "i", "--max-retries", "-1"], "--max-retries"),
        (["index-vectors", "--index", "i", "--url", "ftp://h:9200"], "--url"),
        (["search", "x", "--index", "i", "--bm25-weight", "nan"], "--bm25-weight"),
        (["search", "x", "--index", "i", "--splade-weight", "-1"], "--splade-weight"),
        (["search", "x", "--index", "i", "--query-max-length", "0"], "--query-max-length"),
        (["rewrite", "x", "--top-k", "-3"], "--top-k"),
        (["rewrite", "x", "--max-clauses", "0"], "--max-clauses"),
    ],
)
def test_option_values_out_of_range_name_the_option(
    args: list[str], option: str, tmp_path: Path
) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(GOOD % (1, 1) + "\n")
    extra = ["--input", str(corpus)] if args[0] in ("encode", "index-vectors") else []
    extra += ["--output", str(tmp_path / "o.jsonl")] if args[0] == "encode" else []
    line = one_line_error(invoke(*args, *extra))
    assert option in line


def test_secrets_in_urls_and_options_never_reach_the_output() -> None:
    secret = "hunter2-very-secret"
    result = invoke("search", "x", "--index", "i", "--url", f"http://alice:{secret}@127.0.0.1:1")
    assert result.exit_code == 1 and "cannot reach" in result.output
    assert secret not in result.output and "alice:" not in result.output
    env = {"SPLADE_ES_URL": f"http://bob:{secret}@127.0.0.1:1", "SPLADE_ES_API_KEY": "id:" + secret}
    result = invoke("search", "x", "--index", "i", env=env)
    assert result.exit_code == 1 and secret not in result.output


def test_a_mistyped_secret_flag_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture,
) -> None:
    status = pipeline_main(
        [
            "--runner=FnApiRunner",
            "--input",
            "x.jsonl",
            "--output",
            "o.jsonl",
            "--es_pasword=s3cr3t-xyz",
        ]
    )
    captured = capsys.readouterr()
    assert status == 2
    assert "--es_pasword" in captured.err and "did you mean --es_password" in captured.err
    assert "s3cr3t-xyz" not in captured.err + captured.out


def test_non_utf8_bom_and_bad_ids_reject_only_their_lines(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    lines = [
        b"\xef\xbb\xbf" + (GOOD % (1, 1)).encode(),  # BOM before a valid first line
        (GOOD % (2, 2)).encode()[:-3] + b'\xff\xfe."}',  # a bad byte
        b'{"_id": null, "text": "null id"}',
        b'{"_id": ["a"], "text": "list id"}',
        b'{"_id": "' + b"x" * 600 + b'", "text": "long id"}',
        b'{"_id": true, "text": "bool id"}',
        (GOOD % (7, 7)).encode(),
    ]
    corpus.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    result = invoke("encode", "--input", str(corpus), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "read 7 records: encoded 2, rejected 5" in result.output
    assert [r.id for _, r in read_encoded(out) if isinstance(r, EncodedRecord)] == ["d1", "d7"]
    rejects = [
        json.loads(x) for x in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()
    ]
    reasons = {r["line"]: r["reason"] for r in rejects}
    assert set(reasons) == {2, 3, 4, 5, 6}
    assert "UTF-8" in reasons[2] and "null" in reasons[3] and "list" in reasons[4]
    assert "512" in reasons[5] and "bool" in reasons[6]


def test_a_parquet_file_given_as_jsonl_is_named_as_such(tmp_path: Path) -> None:
    disguised = tmp_path / "corpus.jsonl"
    pq.write_table(pa.Table.from_pylist([{"_id": "1", "title": "", "text": "t"}]), disguised)
    result = invoke("encode", "--input", str(disguised), "--output", str(tmp_path / "o.jsonl"))
    assert "is a Parquet file" in one_line_error(result)


def test_a_failing_run_leaves_the_previous_output_intact(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(GOOD % (1, 1) + "\n")
    result = invoke(
        "encode", "--input", str(corpus), "--output", str(out), "--model", str(tmp_path / "nope")
    )
    assert result.exit_code != 0
    assert out.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@pytest.mark.slow
def test_empty_queries_match_nothing() -> None:
    for text in ("", "   "):
        body = json.loads(invoke("rewrite", text).output)
        assert body["query"] == {"match_none": {}}
        hybrid = json.loads(invoke("rewrite", text, "--hybrid").output)
        assert hybrid["query"] == {"bool": {"should": [{"match_none": {}}]}}
