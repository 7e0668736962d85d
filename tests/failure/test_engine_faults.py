"""Data-loss holes, tried against a real OpenSearch node: every test checks what the index really
holds (`_count`, the ids, the features) and the dead-letter files, not messages alone."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from opensearchpy import OpenSearch
from splade_es_workshop.engines import start

from splade_es.cli import main
from splade_es.client import ConnectionSettings, open_cluster
from splade_es.indexing import Progress
from splade_es.indices import ensure_index
from splade_es.models import ModelSettings, write_settings
from splade_es.pipelines.cli import index as index_command
from splade_es.pipelines.cli import upgrade as upgrade_command
from tests.conftest import engine_spec

pytestmark = [pytest.mark.failure, pytest.mark.engine]


@pytest.fixture(scope="module")
def node() -> tuple[str, OpenSearch, Any]:
    url = start(engine_spec("opensearch"))
    client, info = open_cluster(ConnectionSettings(url=url))
    return url, client, info


@pytest.fixture()
def index_name(node: tuple[str, OpenSearch, Any], request: pytest.FixtureRequest) -> Iterator[str]:
    name = "failure-" + request.node.name.lower().replace("_", "-")[:40]
    node[1].indices.delete(index=name, ignore_unavailable=True)
    yield name
    node[1].indices.delete(index=name, ignore_unavailable=True)


def invoke(command: Any, *args: str) -> Result:
    result = CliRunner().invoke(command, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def ids_in(
    client: OpenSearch, index: str, fields: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every id in `index` with its source (only `fields` of it when given: big documents)."""
    client.indices.refresh(index=index)
    body: dict[str, Any] = {"size": 10000, "query": {"match_all": {}}}
    if fields is not None:
        body["_source"] = fields
    hits = client.search(index=index, body=body)
    return {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}


def record(doc_id: Any, weight: int = 10, text: str = "vitamin d") -> str:
    return json.dumps({"id": doc_id, "features": {"vitamin": weight}, "text": text})


def dead_letters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_long_null_and_duplicate_ids_are_rejected_or_resolved_and_counts_are_true(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url, client, _ = node
    lines = [record(f"doc-{i}", 10 + i) for i in range(40)]
    lines += [record("x" * 600), record(None), record(None, 3)]
    lines += [record(f"doc-{i}", 200 + i) for i in range(5)]  # later copies win
    source = tmp_path / "enc.jsonl"
    source.write_text("\n".join(lines) + "\n")
    dead = tmp_path / "dead.jsonl"
    result = invoke(
        main, "index-vectors", "--quantization", "100", "--input", str(source), "--index", index_name,
        "--url", url, "--dead-letter", str(dead), "--bulk-size", "7",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "read 48: indexed 40, rejected 3, duplicates 5" in result.output
    held = ids_in(client, index_name)
    assert set(held) == {f"doc-{i}" for i in range(40)}
    assert [held[f"doc-{i}"]["splade"]["vitamin"] for i in range(5)] == [200, 201, 202, 203, 204]
    letters = dead_letters(dead)
    assert sorted(d["line"] for d in letters) == [41, 42, 43]
    assert "512" in letters[0]["reason"] and "null" in letters[1]["reason"]


def test_a_stale_progress_file_is_not_trusted(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path
) -> None:
    url, client, info = node
    source = tmp_path / "enc.jsonl"
    source.write_text("".join(record(f"d{i}") + "\n" for i in range(300)))
    stat = source.stat()
    progress = Progress.path_for(source, index_name)
    # a crash against an index that was since deleted and recreated
    Progress("uuid-of-a-deleted-index", stat.st_size, stat.st_mtime_ns, 200).save(progress)
    result = invoke(
        main,
        "index-vectors",
        "--quantization",
        "100",
        "--input",
        str(source),
        "--index",
        index_name,
        "--url",
        url,
    )
    assert result.exit_code == 0, result.output
    assert "ignored" in result.output and "read 300: indexed 300" in result.output
    assert len(ids_in(client, index_name)) == 300

    # a progress file for this very index, but the index lost documents since: verified, not trusted
    profile = ensure_index(client, info, index_name)
    lost = "".join(json.dumps({"delete": {"_id": f"d{i}"}}) + "\n" for i in range(50, 150))
    client.bulk(
        index=index_name, body=lost, refresh=True
    )  # (no _delete_by_query: no reindex module)
    Progress(profile.uuid, stat.st_size, stat.st_mtime_ns, 200).save(progress)
    result = invoke(
        main,
        "index-vectors",
        "--quantization",
        "100",
        "--input",
        str(source),
        "--index",
        index_name,
        "--url",
        url,
    )
    assert result.exit_code == 0, result.output
    assert "read 300: indexed 200, already done 100" in result.output
    assert len(ids_in(client, index_name)) == 300 and not progress.exists()


@pytest.mark.parametrize("pattern", ["fault-w-*", "*", "_all", "fault-both", "Fault-Upper"])
def test_patterns_and_aliases_of_several_indices_are_refused_before_any_change(
    node: tuple[str, OpenSearch, Any], tmp_path: Path, pattern: str
) -> None:
    url, client, _ = node
    for name in ("fault-w-a", "fault-w-b"):
        client.indices.delete(index=name, ignore_unavailable=True)
        client.indices.create(
            index=name, body={"mappings": {"properties": {"t": {"type": "text"}}}}
        )
    client.indices.put_alias(index="fault-w-a,fault-w-b", name="fault-both")
    source = tmp_path / "enc.jsonl"
    source.write_text(record("a") + "\n")
    result = invoke(
        main,
        "index-vectors",
        "--quantization",
        "100",
        "--input",
        str(source),
        "--index",
        pattern,
        "--url",
        url,
    )
    assert result.exit_code == 1
    assert "index name" in result.output or "alias of 2 indices" in result.output
    for name in ("fault-w-a", "fault-w-b"):
        mapping = client.indices.get_mapping(index=name)[name]["mappings"]
        assert set(mapping["properties"]) == {"t"} and "_meta" not in mapping
        assert client.count(index=name)["count"] == 0


def test_two_runs_creating_the_same_index_both_succeed(
    node: tuple[str, OpenSearch, Any], index_name: str
) -> None:
    _, client, info = node
    outcomes: list[Any] = []

    def create() -> None:
        try:
            outcomes.append(ensure_index(client, info, index_name))
        except Exception as exc:  # collected: the assertion below shows it
            outcomes.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert len({o.uuid for o in outcomes}) == 1


@pytest.mark.slow
def test_index_records_its_decisions_and_the_query_side_follows_them(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path, scifact: Path,
    tiny_models: dict[str, Path],
) -> None:  # fmt: skip
    url, client, _ = node
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join((scifact / "corpus.jsonl").open().readlines()[:60]))
    encoded = tmp_path / "enc.jsonl"
    assert invoke(main, "encode", "--input", str(corpus), "--output", str(encoded),
                  "--quantization", "50").exit_code == 0  # fmt: skip
    assert invoke(main, "index-vectors", "--input", str(encoded), "--index", index_name,
                  "--url", url).exit_code == 0  # fmt: skip
    meta = client.indices.get_mapping(index=index_name)[index_name]["mappings"]["_meta"]
    field = meta["splade_es"]["fields"]["splade"]
    assert field["quantization"] == 50 and field["model"] == "splade-tiny"
    # scores are the float dot product whatever the factor: 50 recorded, 50 used
    first = json.loads(corpus.read_text().splitlines()[0])
    hits = invoke(main, "search", first["title"], "--index", index_name, "--url", url).output
    top_score = float(hits.splitlines()[0].split()[1])
    assert first["_id"] in hits.splitlines()[0] and 5 < top_score < 200
    other = invoke(main, "search", "x", "--index", index_name, "--url", url,
                   "--model", str(tiny_models["doc"]))  # fmt: skip
    assert other.exit_code == 1 and "was encoded with 'splade-tiny'" in other.output
    forced = invoke(main, "search", "x", "--index", index_name, "--url", url,
                    "--model", str(tiny_models["doc"]), "--force-model")  # fmt: skip
    assert forced.exit_code == 0, forced.output
    # a pair whose document side is splade-tiny's, bit for bit (trained with --freeze-documents;
    # the trainer's test checks the claim), queries this index as it is
    paired = tmp_path / "paired"
    shutil.copytree(tiny_models["doc"], paired / "document")
    shutil.copytree(tiny_models["query"], paired / "query")
    document, query = str(paired / "document"), str(paired / "query")
    write_settings(paired, ModelSettings("pair", document, query, documents_of="splade-tiny"))
    drop_in = invoke(main, "search", "x", "--index", index_name, "--url", url,
                     "--model", str(paired))  # fmt: skip
    assert drop_in.exit_code == 0, drop_in.output
    write_settings(paired, ModelSettings("pair", document, query, documents_of="splade-v3"))
    claimed = invoke(main, "search", "x", "--index", index_name, "--url", url,
                     "--model", str(paired))  # fmt: skip
    assert claimed.exit_code == 1 and "--freeze-documents" in claimed.output
    empty = invoke(main, "search", "  ", "--index", index_name, "--url", url)
    assert empty.stdout == "" and empty.stderr.startswith("no hits")


@pytest.mark.slow
def test_beam_index_dead_letters_bad_ids_resumes_and_upgrade_keeps_bm25(
    node: tuple[str, OpenSearch, Any], index_name: str, tmp_path: Path, scifact: Path
) -> None:
    url, client, _ = node
    good = (scifact / "corpus.jsonl").open().readlines()[:30]
    bad = [
        json.dumps({"_id": "y" * 513, "text": "long"}) + "\n",
        json.dumps({"_id": None, "text": "null"}) + "\n",
        good[3],  # a second copy of the 4th document
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(good + bad))
    args = ["--input", str(corpus), "--index", index_name, "--url", url, "--device", "cpu"]
    result = invoke(index_command, *args, "--dead-letter", str(tmp_path / "dl"))
    assert result.exit_code == 0, result.output
    assert "read 33: indexed 30, rejected 2, duplicates 1" in result.output
    assert set(ids_in(client, index_name)) == {json.loads(line)["_id"] for line in good}
    letters = dead_letters(next((tmp_path / "dl").glob("dead-letter-*.jsonl")))
    assert sorted(d["line"] for d in letters) == [31, 32]
    assert (tmp_path / "dl" / "run.log").stat().st_size > 0

    resumed = invoke(index_command, *args, "--resume", "--dead-letter", str(tmp_path / "dl2"))
    assert resumed.exit_code == 0, resumed.output
    assert "already done 30" in resumed.output and "indexed" not in resumed.output

    # drop-in upgrade of a BM25 index whose text lives in other fields
    products = index_name + "-products"
    client.indices.delete(index=products, ignore_unavailable=True)
    client.indices.create(
        index=products,
        body={"mappings": {"properties": {"name": {"type": "text"}, "blurb": {"type": "text"}}}},
    )
    for i, line in enumerate(good[:12]):
        doc = json.loads(line)
        client.index(index=products, id=str(i), body={"name": doc["title"], "blurb": doc["text"]})
    client.indices.refresh(index=products)
    result = invoke(
        upgrade_command, "--index", products, "--text-fields", "name,blurb", "--url", url,
        "--device", "cpu", "--dead-letter", str(tmp_path / "dl3"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    held = ids_in(client, products)
    assert len(held) == 12 and all("splade" in s and "name" in s for s in held.values())
    title = json.loads(good[0])["title"]
    for mode in ("bm25", "hybrid", "splade"):
        found = invoke(main, "search", title, "--index", products, "--url", url, "--mode", mode)
        assert found.exit_code == 0 and found.output.splitlines()[0].split()[2] == "0", found.output
    client.indices.delete(index=products)
