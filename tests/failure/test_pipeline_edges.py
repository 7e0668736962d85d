"""The Beam pipeline's edges, tried as a user would: a secret given as an option or inside a URL,
a stray value, an unreadable Parquet file among good ones, an input that yields nothing, a killed
run's temp folders, and what the terminal shows. Each test checks what the index or the output
really holds and every file a secret could reach, not messages alone."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opensearchpy import OpenSearch

from splade_es.pipelines.cli import index as index_command
from splade_es.secret_files import PREFIX

from .beam_helpers import (
    N_DOCS,
    assert_all_indexed,
    files_holding,
    index_with_secrets,
    indexed_ids,
    scifact_lines,
    secrets,
)

pytestmark = [pytest.mark.failure]


# Secrets and messages ----------------------------------------------------------------------------


@pytest.mark.engine
def test_secrets_reach_no_worker_option_log_or_file_and_the_terminal_gets_one_summary(
    beam_node: tuple[str, OpenSearch], beam_index: str, scifact: Path, tmp_path: Path
) -> None:
    url, client = beam_node
    (tmp_path / "corpus.jsonl").write_text("\n".join(scifact_lines(scifact)) + "\n")
    done, watch, (option_pw, url_pw) = index_with_secrets(
        url, beam_index, "corpus.jsonl", tmp_path, "--workers", "2"
    )
    assert_all_indexed(client, beam_index, done)
    output = done.stdout + done.stderr
    # the terminal: the summary and where the log is; Beam, harness and bulk logging in run.log
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-2].startswith(f"read {N_DOCS}: indexed {N_DOCS}"), output
    assert len(lines) <= 3, output
    assert "apitools" not in output and "WARNING" not in output
    log = (tmp_path / "dead" / "run.log").read_text()
    assert "apitools" in log, "Beam's import warning should be in the log, not lost"
    # the SDK worker processes ran with PIPELINE_OPTIONS, none holding a secret
    assert watch.options, "no SDK worker process was seen"
    for options in watch.options.values():
        assert option_pw not in options and url_pw not in options, options
    assert option_pw not in output and url_pw not in output
    assert files_holding(tmp_path, (option_pw, url_pw)) == []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):  # removed at the run's end
        assert files_holding(folder, (option_pw, url_pw)) == [], folder


def test_a_stray_value_is_refused_without_echoing_it(tmp_path: Path) -> None:
    stray = f"stray-pw-{uuid.uuid4().hex[:8]}"
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "1", "text": "vitamin d"}\n')
    result = CliRunner().invoke(
        index_command,
        ["--input", str(corpus), "--output", str(tmp_path / "o.jsonl"), stray,
         "--dead-letter", str(tmp_path / "dead")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "belong to no option" in result.output and "Traceback" not in result.output
    assert stray not in result.output
    assert files_holding(tmp_path, (stray,)) == []
    assert not list(tmp_path.glob("o*.jsonl")), "nothing may run with a stray value"


# Unreadable files, empty inputs, leftovers --------------------------------------------------------


def write_parquet(path: Path, lines: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in lines]
    table = pa.table(
        {
            "_id": [r["_id"] for r in rows],
            "title": [r.get("title") for r in rows],
            "text": [r["text"] for r in rows],
        }
    )
    pq.write_table(table, path, compression="none")


@pytest.mark.engine
def test_an_unreadable_parquet_file_is_named_and_dead_lettered_and_the_rest_indexed(
    beam_node: tuple[str, OpenSearch], beam_index: str, scifact: Path, tmp_path: Path
) -> None:
    url, client = beam_node
    lines = scifact_lines(scifact)
    parts = tmp_path / "parts"
    parts.mkdir()
    chunks = [lines[0:10], lines[10:20], lines[20:30], lines[30:40]]
    for number, chunk in enumerate(chunks):
        write_parquet(parts / f"part-{number}.parquet", chunk)
    truncated, corrupt = parts / "part-1.parquet", parts / "part-2.parquet"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # footer gone
    page = bytearray(corrupt.read_bytes())
    middle = len(page) // 3
    page[middle : middle + 64] = b"\xff" * 64  # page data garbage, footer intact
    corrupt.write_bytes(bytes(page))
    # a killed earlier run's temp folder beside the dead-letter prefix
    leftover = tmp_path / "dead" / "beam-temp-dead-letter-0123456789abcdef"
    leftover.mkdir(parents=True)
    (leftover / "part").write_text("stale")
    result = CliRunner().invoke(
        index_command,
        ["--input", str(parts / "*.parquet"), "--index", beam_index, "--url", url,
         "--device", "cpu", "--dead-letter", str(tmp_path / "dead")],
    )  # fmt: skip
    assert "Traceback" not in result.output, result.output
    good = {json.loads(line)["_id"] for chunk in (chunks[0], chunks[3]) for line in chunk}
    held = indexed_ids(client, beam_index)
    assert set(held) == good
    assert f"warning: {truncated}: unreadable after row 0" in result.output
    assert f"warning: {corrupt}: unreadable after row" in result.output
    assert "read 22: indexed 20, rejected 2" in result.output
    assert result.exit_code == 0, result.output
    letters = [
        json.loads(line)
        for path in (tmp_path / "dead").glob("dead-letter-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert {letter["source"] for letter in letters} == {str(truncated), str(corrupt)}
    assert all(letter["stage"] == "read" for letter in letters)
    assert not leftover.exists(), "a killed run's beam-temp folder was left"


def test_an_input_that_names_files_but_yields_nothing_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = CliRunner().invoke(
        index_command,
        ["--input", str(empty), "--output", str(tmp_path / "out.jsonl"),
         "--dead-letter", str(tmp_path / "dead")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "names 1 file(s) but nothing was read" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def pickled_transforms(pipeline: Any) -> list[bytes]:
    """The pickled DoFns of a pipeline as its runner receives them (base64 of bz2 or zlib)."""
    import base64
    import bz2
    import zlib

    from apache_beam.portability.api import beam_runner_api_pb2

    out = []
    for transform in pipeline.to_runner_api().components.transforms.values():
        if transform.spec.urn != "beam:transform:pardo:v1":
            continue
        payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
        raw = base64.b64decode(payload.do_fn.payload)
        out.append(bz2.decompress(raw) if raw.startswith(b"BZh") else zlib.decompress(raw))
    return out


def test_the_transforms_a_runner_receives_carry_a_file_reference_not_the_secret(
    tmp_path: Path,
) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from splade_es.pipelines.index_corpus import Plan, build
    from splade_es.pipelines.options import beam_args
    from splade_es.secret_files import PrivateSecrets

    option_pw, url_pw = secrets()
    argv = [
        "--runner=FnApiRunner", "--input", str(tmp_path / "c.jsonl"), "--output_index", "i",
        "--es_url", f"http://alice:{url_pw}@127.0.0.1:1", "--es_password", option_pw,
        "--resume",
    ]  # fmt: skip
    runner_options = json.dumps(PipelineOptions(beam_args(argv)).get_all_options())
    assert option_pw not in runner_options and url_pw not in runner_options
    assert "FnApiRunner" in runner_options
    plan = Plan.from_options(PipelineOptions(argv))
    with PrivateSecrets(tmp_path) as vault:
        pipeline = beam.Pipeline(options=PipelineOptions(beam_args(argv)))
        build(pipeline, plan.sealed(vault))
        pickled = pickled_transforms(pipeline)
        assert not any(n.encode() in p for p in pickled for n in (option_pw, url_pw))
        (secret_file,) = list(tmp_path.glob(f"{PREFIX}*/connection-*.json"))
        assert secret_file.stat().st_mode & 0o077 == 0
        assert secret_file.parent.stat().st_mode & 0o077 == 0
    assert not secret_file.parent.exists(), "the private folder outlived the run"
    assert any(str(secret_file).encode() in p for p in pickled), "no transform holds the reference"


def test_a_worker_reads_the_file_or_its_own_environment_or_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from splade_es.client import ConnectionSettings, EngineError
    from splade_es.secret_files import PrivateSecrets

    option_pw, _ = secrets()
    monkeypatch.delenv("SPLADE_ES_PASSWORD", raising=False)
    monkeypatch.delenv("SPLADE_ES_API_KEY", raising=False)
    settings = ConnectionSettings(url="http://127.0.0.1:1", username="alice", password=option_pw)
    with PrivateSecrets(tmp_path) as vault:
        sealed = settings.sealed(vault)
        assert sealed.password is None and sealed.secrets_file
        assert sealed.unsealed().password == option_pw  # a worker on this machine
    # a worker elsewhere (the file is not there): its own environment, else one clear line
    with pytest.raises(EngineError, match="SPLADE_ES_PASSWORD") as caught:
        sealed.unsealed()
    assert option_pw not in str(caught.value)
    monkeypatch.setenv("SPLADE_ES_PASSWORD", option_pw)
    assert sealed.unsealed().password == option_pw
