"""The default OpenSearch node with its neural stack, and how `start` handles crashed nodes.

Real node, real HTTP: the default spec (3.6.0 + k-NN + neural-search; its zip has every module)
and, marked `oldgen`, 2.19.6 with the lang-painless and analysis-common modules the launcher adds.
One node per generation for the whole module.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from opensearchpy import OpenSearch
from splade_es_workshop import engines
from splade_es_workshop.engines import EngineSpec, LauncherError, require_plugin
from splade_es_workshop.engines.fetch import Artifact, cached_path, fetch, sha1_of
from splade_es_workshop.engines.node import process_state
from splade_es_workshop.engines.spec import run_dir

from splade_es.cli import main
from splade_es.client import ConnectionSettings, EngineError, connect
from tests.conftest import generation_params

pytestmark = pytest.mark.engine

INDEX = "splade-engines-neural-test"
DOCS = {"d1": {"hello": 1.5, "world": 0.25}, "d2": {"hello": 0.5, "planet": 2.0}}
QUERY = {"hello": 2.0, "planet": 0.5}


@pytest.fixture(scope="module")
def node(opensearch_module: EngineSpec) -> Iterator[tuple[EngineSpec, OpenSearch]]:
    url = engines.start(opensearch_module, wait_s=300)
    client = connect(ConnectionSettings(url=url))
    yield opensearch_module, client
    client.close()


@pytest.fixture(scope="module", params=generation_params("opensearch"))
def opensearch_module(request: pytest.FixtureRequest) -> EngineSpec:
    from tests.engines.conftest import shifted_spec

    generation, name = request.param
    return shifted_spec(name, generation)


def test_status_lists_the_neural_plugins(node: tuple[EngineSpec, OpenSearch]) -> None:
    spec, _ = node
    st = engines.status(spec)
    assert st["running"] and st["process"] == "running"
    assert {"opensearch-knn", "opensearch-neural-search"} <= set(st["plugins"])
    out = CliRunner().invoke(main, ["engine", "status", "--port", str(spec.port)])
    assert out.exit_code == 0, out.output
    assert "opensearch-neural-search" in json.loads(out.output)["plugins"]


def test_english_analyzer_stems(node: tuple[EngineSpec, OpenSearch]) -> None:
    _, client = node
    res = client.indices.analyze(body={"analyzer": "english", "text": "running studies"})
    assert [t["token"] for t in res["tokens"]] == ["run", "studi"]


def test_neural_sparse_scores_like_rank_feature_linear(node: tuple[EngineSpec, OpenSearch]) -> None:
    _, client = node
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    client.indices.create(
        index=INDEX,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"splade": {"type": "rank_features"}}},
        },
    )
    for doc_id, vector in DOCS.items():
        client.index(index=INDEX, id=doc_id, body={"splade": vector}, refresh=True)

    neural = {"query": {"neural_sparse": {"splade": {"query_tokens": QUERY}}}}
    linear = {
        "query": {
            "bool": {
                "should": [
                    {"rank_feature": {"field": f"splade.{t}", "linear": {}, "boost": w}}
                    for t, w in QUERY.items()
                ]
            }
        }
    }
    scores = {}
    for name, body in (("neural", neural), ("linear", linear)):
        hits = client.search(index=INDEX, body=body)["hits"]["hits"]
        scores[name] = {h["_id"]: h["_score"] for h in hits}
    assert scores["neural"] == scores["linear"]
    expected = {
        d: sum(w * DOCS[d].get(t, 0.0) for t, w in QUERY.items()) for d in DOCS
    }  # 3.0 and 2.0; rank_features keeps 9 significant bits
    assert scores["neural"] == pytest.approx(expected, rel=0.005)
    client.indices.delete(index=INDEX)


def test_require_plugin_names_the_feature_and_the_fix(node: tuple[EngineSpec, OpenSearch]) -> None:
    _, client = node
    require_plugin(client, "opensearch-neural-search", feature="neural_sparse queries")
    with pytest.raises(EngineError) as err:
        require_plugin(client, "opensearch-ml", feature="sparse_encoding ingest processors")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("sparse_encoding ingest processors need the opensearch-ml plugin")
    assert message.endswith("start one with `splade-es engine start --plugins ml`")


def _wait_state(pid: int, state: str) -> None:
    for _ in range(100):
        if process_state(pid) == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"pid {pid} never became {state}")


@pytest.mark.one_generation
def test_stopped_and_killed_nodes_are_detected(node: tuple[EngineSpec, OpenSearch]) -> None:
    spec, client = node
    client.index(index=INDEX + "-crash", id="a", body={"splade": {"x": 1.0}}, refresh=True)
    jvm = engines.status(spec)["pid"]
    assert jvm is not None

    # SIGSTOP: not a live node; start refuses at once with the way out
    os.kill(jvm, signal.SIGSTOP)
    try:
        _wait_state(jvm, "stopped")
        assert engines.status(spec)["process"] == "stopped"
        with pytest.raises(LauncherError, match=rf"is stopped \(pid {jvm}, SIGSTOP\)") as err:
            engines.start(spec, wait_s=30)
        assert "\n" not in str(err.value)
    finally:
        os.kill(jvm, signal.SIGCONT)
    # SIGCONT of the JVM alone (as root its runuser wrapper stays stopped): healthy again
    assert engines.start(spec, wait_s=120) == f"http://127.0.0.1:{spec.port}"
    assert engines.status(spec)["pid"] == jvm

    # kill -9 of the JVM: a dead node (zombie under a stopped wrapper) and stale pid files;
    # start spawns a new node. A short --wait gives up with the new run's log and leaves it
    # starting; the next start waits for that node instead of spawning another.
    os.kill(jvm, signal.SIGKILL)
    _wait_state(jvm, "gone")
    console = run_dir(spec) / "console.log"
    with pytest.raises(LauncherError, match=r"\(started\) not healthy .* after 1s") as err:
        engines.start(spec, wait_s=1)
    assert str(console) in str(err.value)
    engines.start(spec, wait_s=300)
    new_jvm = engines.status(spec)["pid"]
    assert new_jvm is not None and new_jvm != jvm
    client.cluster.health(
        index=INDEX + "-crash", wait_for_status="yellow", timeout="60s", request_timeout=90
    )
    assert client.get(index=INDEX + "-crash", id="a")["found"] is True
    client.indices.delete(index=INDEX + "-crash")
    log = console.read_text(errors="replace")  # the current run's console, not the old one
    assert f"pid[{new_jvm}]" in log and f"pid[{jvm}]" not in log


def test_maven_fetch_verifies_and_refetches_a_corrupted_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPLADE_ES_CACHE", str(tmp_path))
    monkeypatch.delenv("SPLADE_ES_MAVEN_REPO", raising=False)
    jar = Artifact("org.opensearch.plugin", "mapper-extras-client", "2.19.6")
    got = fetch(jar)
    assert got == cached_path(jar)
    digest = got.with_name(got.name + ".sha1").read_text().strip()
    assert sha1_of(got) == digest
    with got.open("r+b") as handle:  # flip one byte
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    assert sha1_of(got) != digest
    assert sha1_of(fetch(jar)) == digest
