"""Holes at the edges (issue #24), against a real OpenSearch node where an engine is involved:
blank lines and duplicate ids, documents larger than the node takes, request sizes above its
limits, two runs of one file at once, hybrid fusion the engine version lacks, and the messages a
user sees. Every test checks what the index holds (`_count`, the ids, the stored vectors) and
the files a run leaves, not messages alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError
from splade_es_workshop.engines import DEFAULT_SPECS, start

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.bulk import node_limits
from splade_es.cli import main
from splade_es.client import ConnectionSettings, EngineError, open_cluster
from splade_es.corpus import Document, EncodedWriter
from splade_es.fusion import OPENSEARCH_FUSION_SINCE, Fusion, fused_in_engine
from splade_es.indexing import Progress
from splade_es.search import Searcher
from splade_es.search_pipelines import fusion_pipeline_body
from tests.failure.test_engine_faults import dead_letters, ids_in, invoke, record

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.failure
engine = pytest.mark.engine


@pytest.fixture(scope="module")
def node() -> tuple[str, OpenSearch, Any]:
    url = start(DEFAULT_SPECS["opensearch"])
    client, info = open_cluster(ConnectionSettings(url=url))
    return url, client, info


@pytest.fixture()
def index_name(node: tuple[str, OpenSearch, Any], request: pytest.FixtureRequest) -> Iterator[str]:
    name = "edges-" + request.node.name.lower().replace("_", "-").replace("[", "-")[:40]
    name = name.strip("]-")
    node[1].indices.delete(index=name, ignore_unavailable=True)
    yield name
    node[1].indices.delete(index=name, ignore_unavailable=True)


def index_vectors(url: str, source: Path, index: str, *extra: str) -> Any:
    return invoke(main, "index-vectors", "--quantization", "100", "--input", str(source),
                  "--index", index, "--url", url,
                  "--dead-letter", str(source.with_suffix(".dead")), *extra)  # fmt: skip


def weights(held: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {doc_id: source["splade"]["vitamin"] for doc_id, source in held.items()}


def coordinating_rejections(client: OpenSearch) -> int:
    stats = client.nodes.stats(metric="indexing_pressure")["nodes"]
    return sum(n["indexing_pressure"]["memory"]["total"]["coordinating_rejections"]
               for n in stats.values())  # fmt: skip


# 1. one numbering of records -------------------------------------------------------------------


@engine
def test_a_blank_line_before_a_duplicate_loses_nothing(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url, client, _ = node
    source = tmp_path / "enc.jsonl"
    lines = [record("4983", 11), "", record("5836", 12), record("7912", 13), record("7912", 14)]
    source.write_text("\n".join(lines) + "\n")
    result = index_vectors(url, source, index_name)
    assert result.exit_code == 0, result.output
    assert "read 4: indexed 3, duplicates 1" in result.output
    assert client.count(index=index_name)["count"] == 3
    assert weights(ids_in(client, index_name)) == {"4983": 11, "5836": 12, "7912": 14}


@engine
def test_concatenated_parts_with_a_blank_line_and_an_overlapping_reencode(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url, client, _ = node
    parts = [[record(f"d{i}", 10) for i in range(start, start + 150)] for start in (0, 150)]
    again = [record(f"d{i}", 20) for i in range(249, 300)]  # re-encoded, new weights
    source = tmp_path / "cat.jsonl"  # `cat` of three parts, the first ending in a blank line
    source.write_text(
        "".join("\n".join(part) + "\n" for part in (parts[0] + [""], parts[1], again))
    )
    result = index_vectors(url, source, index_name, "--bulk-size", "7")
    assert result.exit_code == 0, result.output
    assert "read 351: indexed 300, duplicates 51" in result.output
    assert client.count(index=index_name)["count"] == 300
    held = weights(ids_in(client, index_name))
    assert held == {f"d{i}": 10 if i < 249 else 20 for i in range(300)}


@engine
def test_a_resumed_run_over_blank_lines_checks_and_sends_the_right_records(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url, client, _ = node
    source = tmp_path / "enc.jsonl"
    lines = [
        record("a", 1),
        "",
        "  ",
        record("b", 2),
        record("c", 3),
        record("c", 4),
        record("d", 5),
    ]
    source.write_text("\n".join(lines) + "\n")
    assert index_vectors(url, source, index_name).exit_code == 0
    client.delete(index=index_name, id="a", refresh=True)
    # a run stopped after line 5 (the first "c"): "a" claims done but is gone, "b" is there
    profile_uuid = client.indices.get(index=index_name)[index_name]["settings"]["index"]["uuid"]
    stat = source.stat()
    Progress(profile_uuid, stat.st_size, stat.st_mtime_ns, 5).save(
        Progress.path_for(source, index_name)
    )
    result = index_vectors(url, source, index_name)
    assert result.exit_code == 0, result.output
    assert "read 5: indexed 3, duplicates 1, already done 1" in result.output
    assert weights(ids_in(client, index_name)) == {"a": 1, "b": 2, "c": 4, "d": 5}


# 2. documents and requests larger than the node takes ------------------------------------------


@engine
def test_a_document_over_the_indexing_pressure_limit_is_dead_lettered_every_run(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url, client, _ = node
    limit = node_limits(client).indexing_pressure
    assert limit, "the node states its indexing-pressure limit"
    huge = json.dumps({"id": "huge", "features": {"vitamin": 7}, "text": "d " * (limit // 2 + 1)})
    source = tmp_path / "big.jsonl"
    source.write_text("\n".join([record("small-1"), huge, record("small-2")]) + "\n")
    for _ in range(2):  # a re-run ends the same way: it is not blocked for good
        result = index_vectors(url, source, index_name)
        assert result.exit_code == 0, result.output[-500:]
        # refused at once: the engine's reason says the request alone is over the limit
        assert "read 3: indexed 2, dead lettered 1 (" in result.output
        assert "retries" not in result.output
        assert set(ids_in(client, index_name)) == {"small-1", "small-2"}
        (letter,) = dead_letters(source.with_suffix(".dead"))
        assert (letter["id"], letter["status"], letter["line"]) == ("huge", 429, 2)
        assert "coordinating_operation_bytes" in letter["reason"]
        assert letter["record"]["id"] == "huge"


@engine
def test_bulk_bytes_above_the_node_limit_are_sized_down_and_everything_is_indexed(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url, client, _ = node
    limit = node_limits(client).indexing_pressure
    assert limit
    # 1.2 times the limit in all, in documents well under G1's humongous-object size (half a
    # 1 MiB region on a small heap): half-megabyte documents filled a 512m node's old generation
    # with humongous garbage, and its real-memory breaker then refused every later request (CI).
    count, size = 600, limit // 500
    source = tmp_path / "many.jsonl"
    with source.open("w") as out:
        for i in range(count):
            doc = {"id": f"m{i}", "features": {"vitamin": i + 1}, "text": "d " * (size // 2)}
            out.write(json.dumps(doc) + "\n")
    before = coordinating_rejections(client)
    result = index_vectors(url, source, index_name, "--bulk-bytes", str(limit * 10),
                           "--bulk-size", "100000")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"read {count}: indexed {count} (" in result.output
    assert "bulk requests capped at" in result.output
    assert client.count(index=index_name)["count"] == count
    held = ids_in(client, index_name, fields=["splade"])  # not 60 MB of text in one response
    assert weights(held) == {f"m{i}": i + 1 for i in range(count)}
    assert coordinating_rejections(client) == before  # no request was ever too large


# 3. two runs of one file at once ---------------------------------------------------------------


def test_concurrent_progress_saves_never_collide(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.i.progress.json"
    errors: list[BaseException] = []

    def save(n: int) -> None:
        try:
            for done in range(300):
                Progress("u", 1, 1, n * 1000 + done).save(path)
        except BaseException as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Progress.load(path) is not None
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@engine
def test_two_runs_of_the_same_file_at_once_both_finish(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url, client, _ = node
    source = tmp_path / "enc.jsonl"
    source.write_text("".join(record(f"t{i}", i + 1) + "\n" for i in range(400)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "splade_es.cli", "index-vectors", "--quantization", "100",
               "--input", str(source),
               "--index", index_name, "--url", url, "--bulk-size", "20"]  # fmt: skip
    for _ in range(3):
        runs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(2)
        ]
        outputs = [(run.communicate(timeout=300)[0].decode(), run.returncode) for run in runs]
        for output, code in outputs:
            assert code == 0 and "Traceback" not in output, output
        assert client.count(index=index_name)["count"] == 400
        assert weights(ids_in(client, index_name)) == {f"t{i}": i + 1 for i in range(400)}
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "enc.jsonl",
            f"enc.jsonl.{index_name}.dead-letter.jsonl",
        ]


# 4. messages -----------------------------------------------------------------------------------


@engine
def test_progress_is_promised_only_when_it_was_saved(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url = node[0]
    source = tmp_path / "enc.jsonl"
    pq.write_table(pa.table({"id": ["a"]}), source)  # a Parquet file under a .jsonl name
    result = index_vectors(url, source, index_name)
    assert result.exit_code == 1
    assert "is a Parquet file" in result.output
    assert "progress saved" not in result.output and "resume" not in result.output
    assert not Progress.path_for(source, index_name).exists()


@pytest.mark.parametrize("command", ["encode", "index-vectors"])
@pytest.mark.parametrize("slash", ["", "/"])
def test_a_directory_as_input_is_one_line(tmp_path: Path, command: str, slash: str) -> None:
    args = ["--output", str(tmp_path / "o.jsonl")] if command == "encode" else ["--index", "i"]
    result = invoke(main, command, "--input", f"{tmp_path}{slash}", *args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert errors == [
        f"Error: Invalid value for '--input': File '{tmp_path}{slash}' is a directory."
    ]


@engine
def test_a_search_without_hits_says_so(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url = node[0]
    source = tmp_path / "enc.jsonl"
    source.write_text(record("v1") + "\n")
    assert index_vectors(url, source, index_name).exit_code == 0
    found = invoke(main, "search", "vitamin", "--index", index_name, "--url", url, "--mode", "bm25")
    assert found.exit_code == 0 and found.stdout.split()[2] == "v1"
    none = invoke(main, "search", "zebra", "--index", index_name, "--url", url, "--mode", "bm25")
    assert none.exit_code == 0 and none.stdout == ""
    assert none.stderr.strip() == f"no hits in {index_name!r} (bm25)"


def test_the_encoder_service_answers_hostile_json_with_4xx(splade_tiny: Any) -> None:
    import httpx

    from tests.serve.conftest import running_service

    bodies = {
        "nesting bomb": (b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
        "5,000-digit integer": (b'{"texts": [' + b"7" * 5000 + b"]}", 400),
        "lone surrogate": (b'{"texts": ["vitamin \\ud800 d"]}', 422),
    }
    with running_service(lambda: splade_tiny) as url:
        for name, (body, status) in bodies.items():
            response = httpx.post(f"{url}/encode/documents", content=body, timeout=60)
            assert response.status_code == status, (name, response.text[:300])
            reason = response.json()["error"]
            assert reason and "\n" not in reason and len(reason) < 200, (name, reason)
        good = httpx.post(f"{url}/encode/documents", json={"texts": ["vitamin d"]}, timeout=60)
        assert good.status_code == 200 and good.json()[0]


@engine
@pytest.mark.slow
def test_the_fusion_table_matches_what_the_node_runs(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path, splade_tiny: Any
) -> None:
    url, client, info = node
    docs = [
        Document(f"f{i}", "", f"vitamin d and bone health study {i} " + "calcium " * (i % 7))
        for i in range(40)
    ]
    vectors = splade_tiny.encode_documents([d.full_text for d in docs])
    source = tmp_path / "enc.jsonl"
    with EncodedWriter(source) as writer:
        for doc, vector in zip(docs, vectors, strict=True):
            writer.write(encoded_record(doc, vector, DocumentPruning()))
    assert index_vectors(url, source, index_name).exit_code == 0
    base = Searcher.for_index(client, info, index_name, splade_tiny)
    queries = ["vitamin d", "bone health calcium", "study"]
    for method in OPENSEARCH_FUSION_SINCE:
        local = replace(base, fusion=Fusion.parse(f"{method}@client"))
        served = replace(base, fusion=Fusion.parse(f"{method}@engine"))
        chosen = replace(base, fusion=Fusion.parse(method))
        expected = local.search_many(queries, "hybrid", size=100)
        if fused_in_engine(method, info.engine, info.version):
            for got, want in zip(served.search_many(queries, "hybrid", 100), expected, strict=True):
                assert {h.id: h.score for h in got} == pytest.approx(
                    {h.id: h.score for h in want}, abs=1e-4
                ), method
            continue
        # the table says no: the node really refuses it, and the user gets the client's answer
        body = fusion_pipeline_body(Fusion(method), (1.0, 1.0))
        with pytest.raises(TransportError) as refused:
            client.transport.perform_request("PUT", f"/_search/pipeline/edges-{method}", body=body)
        assert refused.value.status_code == 400 and "not supported" in str(refused.value.info)
        with pytest.raises(EngineError, match=f"use --fusion {method}@client"):
            served.search_many(queries, "hybrid", 100)
        assert chosen.search_many(queries, "hybrid", 100) == expected
    message = invoke(main, "search", "vitamin d", "--index", index_name, "--url", url,
                     "--mode", "hybrid", "--fusion", "z_score@engine")  # fmt: skip
    if not fused_in_engine("z_score", info.engine, info.version):
        assert message.exit_code == 1
        assert message.output.strip().splitlines() == [
            f"Error: {info.engine} {info.version} cannot fuse z_score in the engine: use "
            "--fusion z_score@client (the same arithmetic, in the client) or --fusion z_score "
            "(wherever it runs)"
        ]


def test_two_launchers_creating_the_service_user_at_once_both_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from splade_es_workshop.engines import node as launcher

    if os.geteuid() != 0:
        pytest.skip("the launcher creates its service user only when run as root")
    name = f"splade-es-race-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(launcher.SERVICE_USER_ENV, name)
    got: list[Any] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        barrier.wait()
        try:
            got.append(launcher._ensure_user())
        except Exception as exc:  # collected: the assertion below shows it
            got.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(not isinstance(g, Exception) for g in got), got
        assert len({g.pw_uid for g in got}) == 1 and got[0].pw_name == name
    finally:
        subprocess.run(["userdel", name], capture_output=True)
