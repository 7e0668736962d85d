"""Real 3-node clusters (issue #21), OpenSearch and Elasticsearch: ingestion into 6 primaries with
a replica each, exact SPLADE and BM25 across shards, two-phase and pruning against the exact
query, a node lost mid-bulk. One 1-shard and one 6-shard index on the same cluster hold the same
SciFact vectors; a 1-shard index scores exactly like a single node, so it is the reference.

On OpenSearch only (CI time; the client, bulk and Beam paths are the engines' same code): the
Beam `index` with a node killed, `upgrade` in place, a rolling restart and a paused node.

The OpenSearch nodes listen on HTTP 9400-9402 (transport 9500-9502), the Elasticsearch ones on
9410-9412 (shift both with SPLADE_ES_TEST_PORT_SHIFT); each cluster is stopped when its tests end:
three JVMs are too much to leave on a shared machine (SPLADE_ES_KEEP_CLUSTER=1 keeps them up).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionTimeout
from opensearchpy.helpers import scan
from splade_es_workshop.engines import (
    DEFAULT_SPECS,
    EngineSpec,
    kill_hard,
    start_cluster,
    stop,
    stop_cluster,
)
from splade_es_workshop.engines.cluster import cluster_members
from splade_es_workshop.engines.node import status, url_of

from splade_es.cli import main
from splade_es.client import ConnectionSettings, EngineInfo, connect, open_cluster
from splade_es.corpus import EncodedWriter, read_queries
from splade_es.query import QueryPruning
from splade_es.records import FieldProfile
from splade_es.search import DFS, Hit, Mode, Searcher
from splade_es.search_pipelines import TwoPhase
from splade_es.term_stats import DocumentFrequencies

from .conftest import EncodedCorpus

pytestmark = [pytest.mark.cluster, pytest.mark.engine, pytest.mark.slow]

NODES = 3
ONE, SIX = "cluster-one-shard", "cluster-six-shards"
QUERIES = 60
DEPTH = 100  # recall@100 against the exact query's top 100
TOP_K, WINDOW = 5, 300  # top-5 terms retrieve, the full query re-scores 300 (> DEPTH)


@dataclass
class ThreeNodes:
    spec: EngineSpec
    urls: str
    client: OpenSearch
    info: EngineInfo


FIRST_PORT = {"opensearch": 9400, "elasticsearch": 9410}


@pytest.fixture(
    scope="module",
    params=["opensearch", pytest.param("elasticsearch", marks=pytest.mark.extended)],
)
def three_nodes(request: pytest.FixtureRequest) -> Iterator[ThreeNodes]:
    """Three nodes of one cluster of each default engine, stopped when its tests end. The
    Elasticsearch cluster's tests are `extended` (CI time: ~2.5 min; the client, bulk and query
    code they drive is the one the OpenSearch cluster tests drive, and one-node Elasticsearch
    tests check its mappings, query forms and scores)."""
    shift = int(os.environ.get("SPLADE_ES_TEST_PORT_SHIFT", "0"))
    spec = replace(DEFAULT_SPECS[request.param], port=FIRST_PORT[request.param] + shift)
    try:
        urls = start_cluster(spec, NODES)
        client, info = open_cluster(ConnectionSettings(url=urls))
        yield ThreeNodes(spec, urls, client, info)
    finally:
        if os.environ.get("SPLADE_ES_KEEP_CLUSTER") != "1":
            stop_cluster(spec, NODES)


def opensearch_only(nodes: ThreeNodes) -> None:
    if nodes.spec.engine != "opensearch":
        pytest.skip("on the OpenSearch cluster only (CI time: the same client and bulk code)")


def index_vectors(urls: str, source: Path, index: str, *extra: str) -> str:
    result = CliRunner().invoke(
        main,
        ["index-vectors", "--input", str(source), "--index", index, "--url", urls, *extra],
    )
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return result.output


def held(client: OpenSearch, index: str) -> dict[str, dict[str, float]]:
    """Every document's id and stored SPLADE features."""
    client.indices.refresh(index=index)
    hits = scan(client, index=index, query={"_source": ["splade"]}, size=2000, request_timeout=120)
    return {h["_id"]: h["_source"].get("splade", {}) for h in hits}


@pytest.fixture(scope="module")
def encoded(scifact_encoded: EncodedCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster") / "scifact.jsonl"
    with EncodedWriter(path) as writer:
        for record in scifact_encoded.records:
            writer.write(record)
        DocumentFrequencies.count(scifact_encoded.records).save(path.with_suffix(".df.json"))
    FieldProfile(model="splade-tiny", quantization=100.0).write(path)
    return path


@pytest.fixture(scope="module")
def indices(three_nodes: ThreeNodes, encoded: Path) -> dict[str, str]:
    """The 1-shard reference and the 6-primary, 1-replica index, both filled by `index-vectors`
    through all three nodes' URLs; their summaries."""
    out = {}
    for name, shards, replicas in ((ONE, "1", "0"), (SIX, "6", "1")):
        three_nodes.client.indices.delete(index=name, ignore_unavailable=True)
        args = ("--shards", shards, "--replicas", replicas, "--bulk-size", "250")
        out[name] = index_vectors(three_nodes.urls, encoded, name, *args)
    three_nodes.client.cluster.health(
        index=f"{ONE},{SIX}", wait_for_status="green", timeout="120s", request_timeout=130
    )
    return out


@pytest.fixture(scope="module")
def queries(scifact: Path) -> list[str]:
    return list(read_queries(scifact / "queries.jsonl").values())[:QUERIES]


def searcher(nodes: ThreeNodes, index: str, encoder: Any, **changes: Any) -> Searcher:
    base = Searcher.for_index(nodes.client, nodes.info, index, encoder)
    return replace(base, **changes)


def same_ranking(a: list[Hit], b: list[Hit], rel: float = 1e-5) -> bool:
    """Same scores rank by rank, and the same ids wherever a score is not tied at the cut-off."""
    if len(a) != len(b):
        return False
    if any(
        abs(x.score - y.score) > rel * max(abs(x.score), 1e-9) for x, y in zip(a, b, strict=True)
    ):
        return False
    if not a:
        return True
    last = a[-1].score
    clear = lambda hits: {h.id for h in hits if abs(h.score - last) > rel * abs(last)}  # noqa: E731
    return clear(a) == clear(b)


def recall(hits: list[list[Hit]], exact: list[list[Hit]]) -> float:
    """Mean share of the exact query's top hits that the approximation also returned."""
    shares = [
        len({h.id for h in got} & {h.id for h in want}) / len(want)
        for got, want in zip(hits, exact, strict=True)
        if want
    ]
    return sum(shares) / len(shares)


def say(request: pytest.FixtureRequest, line: str) -> None:
    params = request.node.name.partition("[")[2].rstrip("]")
    request.config.get_terminal_writer().line(f"\n[cluster {params}] {line}")


# --------------------------------------------------------------------------- the launcher


def test_three_nodes_form_one_cluster_and_the_six_shard_index_spreads_over_them(
    three_nodes: ThreeNodes, indices: dict[str, str], scifact_encoded: EncodedCorpus
) -> None:
    health = three_nodes.client.cluster.health()
    assert health["number_of_nodes"] == NODES and health["status"] == "green"
    shards = three_nodes.client.cat.shards(index=SIX, format="json")
    assert len(shards) == 12 and {s["state"] for s in shards} == {"STARTED"}
    assert {s["prirep"] for s in shards} == {"p", "r"}
    assert len({s["node"] for s in shards}) == NODES
    expected = len(scifact_encoded.ids)
    for name in (ONE, SIX):
        assert f"read {expected}: indexed {expected} " in indices[name]
        assert int(three_nodes.client.count(index=name)["count"]) == expected
    status = CliRunner().invoke(
        main,
        [
            "engine", "status", "--nodes", "3", "--engine", three_nodes.spec.engine,
            "--port", str(three_nodes.spec.port), "--version", three_nodes.spec.version,
        ],
    )  # fmt: skip
    assert status.exit_code == 0 and '"cluster_nodes": 3' in status.output, status.output


def test_the_six_shard_index_holds_exactly_the_input(
    three_nodes: ThreeNodes, indices: dict[str, str], scifact_encoded: EncodedCorpus
) -> None:
    stored = held(three_nodes.client, SIX)
    assert stored == {r.id: dict(r.features) for r in scifact_encoded.records}


# --------------------------------------------------------------------------- exact scores


def test_splade_scores_do_not_depend_on_sharding(
    three_nodes: ThreeNodes, indices: dict[str, str], queries: list[str], splade_tiny
) -> None:
    one = searcher(three_nodes, ONE, splade_tiny).search_many(queries, "splade", size=10)
    six = searcher(three_nodes, SIX, splade_tiny).search_many(queries, "splade", size=10)
    differ = [q for q, a, b in zip(queries, one, six, strict=True) if not same_ranking(a, b)]
    assert not differ, differ[:3]
    assert sum(len(hits) for hits in one) > 0.9 * 10 * len(queries)


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_bm25_on_six_shards_matches_one_shard_only_with_dfs(
    three_nodes: ThreeNodes,
    indices: dict[str, str],
    queries: list[str],
    splade_tiny,
    mode: Mode,
    request: pytest.FixtureRequest,
) -> None:
    encoder = splade_tiny if mode == "hybrid" else None
    one = searcher(three_nodes, ONE, encoder).search_many(queries, mode, size=10)
    plain = searcher(three_nodes, SIX, encoder).search_many(queries, mode, size=10)
    dfs = searcher(three_nodes, SIX, encoder, search_type=DFS).search_many(queries, mode, 10)
    plain_same = sum(same_ranking(a, b) for a, b in zip(one, plain, strict=True))
    dfs_same = sum(same_ranking(a, b) for a, b in zip(one, dfs, strict=True))
    say(
        request,
        f"{mode} top-10 (ids and scores) equal to 1 shard, of {len(queries)} queries: "
        f"6 shards {plain_same}, 6 shards with dfs_query_then_fetch {dfs_same}",
    )
    assert dfs_same == len(queries)
    assert plain_same < len(queries)  # per-shard statistics move BM25 scores


# --------------------------------------------------------------------------- two-phase, pruning


def test_two_phase_and_pruning_against_the_exact_query_on_one_and_six_shards(
    three_nodes: ThreeNodes,
    indices: dict[str, str],
    queries: list[str],
    splade_tiny,
    encoded: Path,
    request: pytest.FixtureRequest,
) -> None:
    frequencies = DocumentFrequencies.load(encoded.with_suffix(".df.json"))
    pruned = QueryPruning(top_k=TOP_K)
    forms: dict[str, dict[str, Any]] = {
        "pruned top-5 (no rescore)": {"pruning": pruned},
        "max-df 0.05 (corpus DF table)": {
            "pruning": QueryPruning(max_df_ratio=0.05, frequencies=frequencies)
        },
        "two-phase per shard (Lucene rescore)": {"pruning": pruned, "rescore_window": WINDOW},
        "two-phase global (window ids re-scored)": {
            "pruning": pruned,
            "rescore_window": WINDOW,
            "rescore_scope": "global",
        },
    }
    if three_nodes.spec.engine == "opensearch":
        forms["neural_sparse_two_phase_processor"] = {"two_phase": TwoPhase()}
    exact = searcher(three_nodes, ONE, splade_tiny).search_many(queries, "splade", DEPTH)
    figures: dict[str, dict[str, float]] = {}
    results: dict[tuple[str, str], list[list[Hit]]] = {}
    for form, changes in forms.items():
        for index in (ONE, SIX):
            hits = searcher(three_nodes, index, splade_tiny, **changes).search_many(
                queries, "splade", DEPTH
            )
            results[(form, index)] = hits
            figures.setdefault(form, {})[index] = recall(hits, exact)
    for form, by_index in figures.items():
        say(
            request,
            f"recall@{DEPTH} vs exact, {form}: 1 shard {by_index[ONE]:.4f}, "
            f"6 shards x 3 nodes {by_index[SIX]:.4f}",
        )
    # client-side pruning sends every shard the same query: the same hits on any layout
    for form in ("pruned top-5 (no rescore)", "max-df 0.05 (corpus DF table)"):
        one, six = results[(form, ONE)], results[(form, SIX)]
        assert all(same_ranking(a, b) for a, b in zip(one, six, strict=True)), form
        assert figures[form][ONE] < 1.0  # the pruning really dropped terms
    # the global two-phase re-scores the top window of the whole index, whatever the layout:
    # the 1-shard figure on 6 shards (queries differ only where scores tie at the window's edge)
    glob, local = "two-phase global (window ids re-scored)", "two-phase per shard (Lucene rescore)"
    alike = sum(
        same_ranking(a, b) for a, b in zip(results[(glob, ONE)], results[(glob, SIX)], strict=True)
    )
    say(request, f"global two-phase, top-{DEPTH} equal on 1 and 6 shards: {alike}/{len(queries)}")
    assert alike >= 0.8 * len(queries)
    assert abs(figures[glob][SIX] - figures[glob][ONE]) <= 0.01
    # on one shard both two-phases re-score the same window: the same hits
    one_global, one_local = results[(glob, ONE)], results[(local, ONE)]
    assert all(same_ranking(a, b) for a, b in zip(one_global, one_local, strict=True))
    # a per-shard rescore re-scores every shard's window: 6x the documents, a layout-dependent
    # but never lower recall
    assert figures[local][SIX] >= figures[local][ONE]


# --------------------------------------------------------------------------- faults


def splade_es(*args: str) -> list[str]:
    return [sys.executable, "-m", "splade_es.cli", *args]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def wait_for_count(client: OpenSearch, index: str, at_least: int, run: subprocess.Popen) -> None:
    """Until the index holds `at_least` documents; fails if the run ends first."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        if client.indices.exists(index=index):
            client.indices.refresh(index=index)
            if int(client.count(index=index)["count"]) >= at_least:
                return
        time.sleep(0.5)
    raise AssertionError(f"the run ended (or stalled) before {index} held {at_least} documents")


def run_through_a_kill(
    command: list[str],
    resume: list[str],
    client: OpenSearch,
    index: str,
    at_least: int,
    victim: EngineSpec,
) -> tuple[str, list[int]]:
    """Run `command`, kill -9 `victim` once the index holds `at_least` documents, and run it
    again (with `resume`) if it stopped: an interrupted run resumes, checking what the index
    holds. The output of every run and their exit codes."""
    run = subprocess.Popen(
        command, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_count(client, index, at_least, run)
        kill_hard(victim)  # kill -9: no shutdown, in the middle of the run
        output = run.communicate(timeout=600)[0].decode()
        tries = [run.returncode]
        if run.returncode != 0:
            again = subprocess.run(
                [*command, *resume], env=subprocess_env(), capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            output += again.stdout + again.stderr
            tries.append(again.returncode)
    finally:
        if run.poll() is None:
            run.kill()
    return output, tries


def serving_pid(client: OpenSearch, node_name: str) -> int:
    """The process id the node itself reports (`_nodes/<name>/process`)."""
    nodes = client.nodes.info(node_id=node_name, metric="process")["nodes"]
    (info,) = nodes.values()
    return int(info["process"]["id"])


def wait_until_stopped(pid: int) -> None:
    """Until the kernel shows every thread of `pid` stopped (state T), at most 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tasks = Path(f"/proc/{pid}/task")
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
        if all(state in "Tt" for state in states):
            return
        time.sleep(0.1)
    raise AssertionError(f"pid {pid} was sent SIGSTOP but still runs")


@pytest.mark.extended
def test_a_paused_node_times_out_while_the_others_answer_and_index(
    three_nodes: ThreeNodes,
    indices: dict[str, str],
    encoded: Path,
    scifact_encoded: EncodedCorpus,
    queries: list[str],
    splade_tiny,
    request: pytest.FixtureRequest,
) -> None:
    """SIGSTOP one node (not the cluster manager): direct requests to it time out, the others
    answer; searches through all three URLs give the same hits, and an `index-vectors` run
    completes with exactly its input, once the cluster has dropped the silent node."""
    opensearch_only(three_nodes)
    client = three_nodes.client
    rows = client.cat.nodes(format="json", h="name,m")
    manager = next(row["name"] for row in rows if row["m"] == "*")
    members = cluster_members(three_nodes.spec, NODES)
    victim = next(m for m in members if f"splade-es-{m.port}" != manager)
    others = [m for m in members if m != victim]
    before = searcher(three_nodes, SIX, splade_tiny).search_many(queries[:20], "splade", 10)
    pid = serving_pid(client, f"splade-es-{victim.port}")
    assert pid == status(victim)["pid"], "the launcher's pid file names another process"
    name = "cluster-paused-node"
    client.indices.delete(index=name, ignore_unavailable=True)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until_stopped(pid)
        quick = dict(timeout=3.0, max_retries=0)
        with pytest.raises(ConnectionTimeout):
            connect(ConnectionSettings(url=url_of(victim), **quick)).cluster.health()  # type: ignore[arg-type]
        for member in others:
            assert connect(ConnectionSettings(url=url_of(member), **quick)).info()  # type: ignore[arg-type]
        started = time.monotonic()
        output = index_vectors(  # a request to the silent node is given up after 10 s
            three_nodes.urls, encoded, name, "--shards", "6", "--replicas", "1", "--timeout", "10"
        )
        took = time.monotonic() - started
        after = searcher(three_nodes, SIX, splade_tiny).search_many(queries[:20], "splade", 10)
        stored = held(client, name)
    finally:
        os.kill(pid, signal.SIGCONT)
    say(request, f"SIGSTOP of node {victim.port}: index-vectors took {took:.0f}s; {output.strip()}")
    assert all(same_ranking(a, b) for a, b in zip(before, after, strict=True))
    assert int(client.count(index=name)["count"]) == len(stored) == len(scifact_encoded.ids)
    assert stored == {r.id: dict(r.features) for r in scifact_encoded.records}
    health = client.cluster.health(
        wait_for_nodes=str(NODES), wait_for_status="green", timeout="180s", request_timeout=190
    )
    assert health["number_of_nodes"] == NODES and health["status"] == "green"
    client.indices.delete(index=name)


def test_a_node_killed_mid_bulk_loses_and_duplicates_nothing(
    three_nodes: ThreeNodes,
    indices: dict[str, str],
    encoded: Path,
    scifact_encoded: EncodedCorpus,
    request: pytest.FixtureRequest,
) -> None:
    name = "cluster-node-loss"
    client = three_nodes.client
    client.indices.delete(index=name, ignore_unavailable=True)
    victim = cluster_members(three_nodes.spec, NODES)[-1]
    command = splade_es(
        "index-vectors", "--input", str(encoded), "--index", name, "--url", three_nodes.urls,
        "--shards", "6", "--replicas", "1", "--bulk-size", "50", "--concurrency", "1",
    )  # fmt: skip
    output, tries = run_through_a_kill(command, [], client, name, 500, victim)
    say(request, f"kill -9 of node {victim.port} mid-bulk: exit codes {tries}")
    assert tries[-1] == 0 and "Traceback" not in output, output[-2000:]
    stored = held(client, name)
    assert int(client.count(index=name)["count"]) == len(stored) == len(scifact_encoded.ids)
    assert stored == {r.id: dict(r.features) for r in scifact_encoded.records}
    # the lost node rejoins and the replicas come back
    start_cluster(three_nodes.spec, NODES)
    health = client.cluster.health(
        index=name, wait_for_status="green", timeout="180s", request_timeout=190
    )
    assert health["status"] == "green"
    client.indices.delete(index=name)


# --------------------------------------------------------------------------- Beam, upgrade, restarts

BEAM_DOCS = 800


def expected_vectors(scifact_encoded: EncodedCorpus, ids: set[str]) -> dict[str, dict[str, float]]:
    return {r.id: dict(r.features) for r in scifact_encoded.records if r.id in ids}


def off_by_rounding(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> int:
    """How many documents differ from `want`, failing if any differs by more than rounding: the
    pipeline encodes in other batches than the fixture, so a quantized weight may move by 1 (and
    a weight of 1 appear or vanish); every id must be there, every other weight equal."""
    assert got.keys() == want.keys()
    differ = 0
    for doc, features in got.items():
        expected = want[doc]
        if features == expected:
            continue
        differ += 1
        for term in features.keys() | expected.keys():
            a, b = features.get(term, 0), expected.get(term, 0)
            assert abs(a - b) <= 1, (doc, term, a, b)
    assert differ <= 0.02 * len(want), differ
    return differ


@pytest.fixture(scope="module")
def beam_corpus(scifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first BEAM_DOCS SciFact documents, as BEIR JSONL (what `index` reads)."""
    path = tmp_path_factory.mktemp("beam") / "corpus.jsonl"
    with (scifact / "corpus.jsonl").open(encoding="utf-8") as source:
        path.write_text("".join(line for _, line in zip(range(BEAM_DOCS), source, strict=False)))
    return path


def test_beam_index_into_six_shards_survives_a_node_killed_mid_run(
    three_nodes: ThreeNodes,
    indices: dict[str, str],
    beam_corpus: Path,
    scifact_encoded: EncodedCorpus,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """`splade-es index` (Beam, FnApiRunner) encodes and writes through all three URLs into a new
    6 x 1 index; kill -9 of a data node part-way. The run completes (or `--resume` finishes it)
    and the index holds exactly the corpus's ids with the vectors the encoder gives."""
    opensearch_only(three_nodes)
    name, client = "cluster-beam", three_nodes.client
    client.indices.delete(index=name, ignore_unavailable=True)
    command = splade_es(
        "index", "--input", str(beam_corpus), "--index", name, "--url", three_nodes.urls,
        "--shards", "6", "--replicas", "1", "--bulk-size", "50", "--concurrency", "1",
        "--device", "cpu", "--workers", "1", "--dead-letter", str(tmp_path / "dead"),
    )  # fmt: skip
    victim = cluster_members(three_nodes.spec, NODES)[-1]
    output, tries = run_through_a_kill(command, ["--resume"], client, name, 300, victim)
    assert tries[-1] == 0 and "Traceback" not in output, output[-2000:]
    stored = held(client, name)
    assert int(client.count(index=name)["count"]) == len(stored) == BEAM_DOCS
    rounding = off_by_rounding(stored, expected_vectors(scifact_encoded, set(stored)))
    say(
        request,
        f"Beam index, kill -9 of node {victim.port} mid-run: exit codes {tries}; "
        f"{BEAM_DOCS} ids, {rounding} vectors off by rounding from the fixture's batches",
    )
    settings = client.indices.get_settings(index=name)[name]["settings"]["index"]
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == ("6", "1")
    start_cluster(three_nodes.spec, NODES)
    client.cluster.health(index=name, wait_for_status="green", timeout="180s", request_timeout=190)
    client.indices.delete(index=name)


def test_upgrade_adds_splade_to_a_six_shard_index_in_place(
    three_nodes: ThreeNodes,
    indices: dict[str, str],
    scifact: Path,
    scifact_encoded: EncodedCorpus,
    tmp_path: Path,
) -> None:
    """A BM25-only 6 x 1 index (text only) gets its SPLADE field through all three URLs by
    `splade-es upgrade`: sliced scrolls read every shard, partial updates write back."""
    opensearch_only(three_nodes)
    name, client = "cluster-upgrade", three_nodes.client
    client.indices.delete(index=name, ignore_unavailable=True)
    client.indices.create(
        index=name,
        body={
            "settings": {"number_of_shards": 6, "number_of_replicas": 1},
            "mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}},
        },
    )
    docs = [json.loads(line) for line in (scifact / "corpus.jsonl").open(encoding="utf-8")][:600]
    body = "".join(
        json.dumps({"index": {"_index": name, "_id": d["_id"]}})
        + "\n"
        + json.dumps({"title": d["title"], "text": d["text"]})
        + "\n"
        for d in docs
    )
    assert not client.bulk(body=body, refresh=True, params={"request_timeout": 120})["errors"]
    result = subprocess.run(
        splade_es(
            "upgrade", "--index", name, "--url", three_nodes.urls, "--slices", "6",
            "--device", "cpu", "--workers", "1", "--dead-letter", str(tmp_path / "dead"),
        ),
        env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output[-2000:]
    assert "read 600" in output and "indexed 600" in output, output[-1000:]
    client.indices.refresh(index=name)
    hits = client.search(index=name, body={"size": 1000}, params={"request_timeout": 120})
    sources = {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}
    want = expected_vectors(scifact_encoded, {d["_id"] for d in docs})
    off_by_rounding({i: src.get("splade") or {} for i, src in sources.items()}, want)
    assert all(sources[d["_id"]]["title"] == d["title"] for d in docs)
    client.indices.delete(index=name)


@pytest.mark.extended
def test_a_rolling_restart_during_a_bulk_run_loses_and_duplicates_nothing(
    three_nodes: ThreeNodes,
    indices: dict[str, str],
    scifact_encoded: EncodedCorpus,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Every node restarted in turn (clean stop, start, wait for green) while `index-vectors`
    sends small bulks of SciFact through all three URLs. A run that stops on the way is
    re-run (it resumes); so is one that ends before the restarts do. The last run's summary,
    `_count`, the ids and the stored vectors all agree with the input."""
    opensearch_only(three_nodes)
    name, client = "cluster-rolling", three_nodes.client
    client.indices.delete(index=name, ignore_unavailable=True)
    source, want = tmp_path / "rolling.jsonl", {}
    with EncodedWriter(source) as writer:
        for copy in range(1):  # ids "<id>~0": more copies make a longer run
            for record in scifact_encoded.records:
                writer.write(replace(record, id=f"{record.id}~{copy}"))
                want[f"{record.id}~{copy}"] = dict(record.features)
    FieldProfile(model="splade-tiny", quantization=100.0).write(source)
    command = splade_es(
        "index-vectors", "--input", str(source), "--index", name, "--url", three_nodes.urls,
        "--shards", "6", "--replicas", "1", "--bulk-size", "10", "--concurrency", "1",
    )  # fmt: skip
    restarted: list[tuple[int, bool]] = []  # (port, a run was in flight when it came back)
    failures: list[BaseException] = []
    runs: list[subprocess.Popen[bytes]] = []

    def roll() -> None:
        try:
            for member in cluster_members(three_nodes.spec, NODES):
                stop(member)
                start_cluster(three_nodes.spec, NODES)
                client.cluster.health(
                    wait_for_nodes=str(NODES), wait_for_status="green", timeout="180s",
                    request_timeout=190,
                )  # fmt: skip
                restarted.append((member.port, runs[-1].poll() is None))
        except BaseException as exc:  # re-raised by the test
            failures.append(exc)

    def launch() -> subprocess.Popen[bytes]:
        run = subprocess.Popen(
            command, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        runs.append(run)
        return run

    roller = threading.Thread(target=roll)
    output, codes = "", []
    run = launch()
    try:
        wait_for_count(client, name, 500, run)
        roller.start()
        while True:
            output += run.communicate(timeout=600)[0].decode()
            codes.append(run.returncode)
            if (run.returncode == 0 and not roller.is_alive()) or len(codes) >= 10:
                break
            run = launch()  # resumes what a restart interrupted; or goes on while they last
    finally:
        roller.join(timeout=600)
        for each in runs:
            if each.poll() is None:
                each.kill()
    if failures:
        raise failures[0]
    during = sum(flag for _, flag in restarted)
    say(
        request,
        f"rolling restart of {[port for port, _ in restarted]}: {during} of {NODES} nodes came "
        f"back while a run was in flight; exit codes of the runs {codes}",
    )
    assert len(restarted) == NODES and during >= 1
    assert codes[-1] == 0 and "Traceback" not in output, output[-2000:]
    stored = held(client, name)
    assert int(client.count(index=name)["count"]) == len(stored) == len(want)
    assert stored == want
    last = output.strip().splitlines()[-1]
    assert f"read {len(want)}:" in last, last
    client.indices.delete(index=name)
