"""Integration tests for splade_es_workshop.engines against real engines fetched with Maven.

Why: SPLADE scores are computed by the engine (``rank_feature`` linear on OpenSearch,
``sparse_vector`` on Elasticsearch 9); these tests prove a fresh machine can fetch, start,
query and crash-recover each engine in ``DEFAULT_SPECS`` using raw HTTP only. The nodes are
left running afterwards so later integration tests reuse them (``start`` is idempotent).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from splade_es_workshop import engines as launcher
from splade_es_workshop.engines import EngineSpec, LauncherError
from splade_es_workshop.engines.install import install
from splade_es_workshop.engines.spec import run_dir

pytestmark = pytest.mark.engine

INDEX = "splade-launcher-test"
WEIGHT = 1.5
BOOST = 2.0


def _http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {url}: {exc.code} {exc.read()[:500]!r}") from exc


def _uses_sparse_vector(spec: EngineSpec) -> bool:
    return spec.engine == "elasticsearch" and int(spec.version.split(".")[0]) >= 8


def _mapping(spec: EngineSpec) -> dict[str, Any]:
    field_type = "sparse_vector" if _uses_sparse_vector(spec) else "rank_features"
    return {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"splade": {"type": field_type}}},
    }


def _query(spec: EngineSpec) -> dict[str, Any]:
    if _uses_sparse_vector(spec):
        # sparse_vector scores sum(query weight * doc weight): query weight plays the boost.
        return {"query": {"sparse_vector": {"field": "splade", "query_vector": {"hello": BOOST}}}}
    return {"query": {"rank_feature": {"field": "splade.hello", "linear": {}, "boost": BOOST}}}


def _version_of(url: str) -> str:
    try:
        return str(_http("GET", url + "/")["version"]["number"])
    except AssertionError:
        # Elasticsearch's integ-test zip has no rest-root module: GET / answers 405.
        nodes = _http("GET", url + "/_nodes/_local?filter_path=nodes.*.version")["nodes"]
        return str(next(iter(nodes.values()))["version"])


def _search_score(url: str, spec: EngineSpec) -> float:
    res = _http("POST", f"{url}/{INDEX}/_search", _query(spec))
    hits = res["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["doc-1"], res
    return float(hits[0]["_score"])


@pytest.mark.one_generation
def test_start_index_query_and_crash_recovery(spec: EngineSpec) -> None:
    url = launcher.start(spec, wait_s=180)
    assert url == f"http://127.0.0.1:{spec.port}"
    assert _version_of(url) == spec.version
    st = launcher.status(spec)
    assert st["running"] and st["version"] == spec.version and st["url"] == url

    # idempotent: a second start on a healthy node returns at once, same node
    assert launcher.start(spec, wait_s=30) == url
    assert launcher.status(spec)["pid"] == st["pid"]

    with contextlib.suppress(AssertionError):  # not there on a fresh node
        _http("DELETE", f"{url}/{INDEX}")
    _http("PUT", f"{url}/{INDEX}", _mapping(spec))
    _http(
        "PUT",
        f"{url}/{INDEX}/_doc/doc-1?refresh=true",
        {"splade": {"hello": WEIGHT, "world": 0.25}},
    )

    score = _search_score(url, spec)
    assert score == pytest.approx(WEIGHT * BOOST, rel=0.005)

    # crash: SIGKILL, then start again: the acknowledged doc must still be there
    launcher.kill_hard(spec)
    assert not launcher.status(spec)["running"]
    assert launcher.start(spec, wait_s=180) == url
    _http("GET", f"{url}/_cluster/health/{INDEX}?wait_for_status=yellow&timeout=60s")
    assert _http("GET", f"{url}/{INDEX}/_doc/doc-1")["found"] is True
    assert _search_score(url, spec) == pytest.approx(WEIGHT * BOOST, rel=0.005)


@pytest.mark.one_generation
def test_stop_then_start_keeps_data(spec: EngineSpec) -> None:
    url = launcher.start(spec, wait_s=180)
    _http("PUT", f"{url}/{INDEX}-stop", _mapping(spec))
    _http("PUT", f"{url}/{INDEX}-stop/_doc/a?refresh=true", {"splade": {"hello": 1.0}})
    assert launcher.stop(spec) is True
    st = launcher.status(spec)
    assert not st["running"] and st["pid"] is None
    assert launcher.stop(spec) is False  # nothing left to stop
    # a stale pid file naming a live process that is not the node is ignored and replaced
    (run_dir(spec) / "node.pid").write_text(str(os.getpid()))
    assert launcher.status(spec)["pid"] is None
    launcher.start(spec, wait_s=180)
    _http("GET", f"{url}/_cluster/health/{INDEX}-stop?wait_for_status=yellow&timeout=60s")
    assert _http("GET", f"{url}/{INDEX}-stop/_count")["count"] == 1
    _http("DELETE", f"{url}/{INDEX}-stop")


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPLADE_ES_CACHE", str(tmp_path / "c"))
    assert launcher.cache_dir() == (tmp_path / "c").resolve()


def test_unknown_engine_and_missing_version_fail_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPLADE_ES_CACHE", str(tmp_path))
    with pytest.raises(LauncherError, match="unknown engine"):
        install(EngineSpec("solr", "9.0.0", 8983))
    with pytest.raises(
        LauncherError,
        match=r"download failed: org\.opensearch\.distribution\.integ-test-zip:opensearch:0\.0\.1:zip",
    ) as missing:
        install(EngineSpec("opensearch", "0.0.1", 9299))
    assert "\n" not in str(missing.value)
    with pytest.raises(LauncherError) as bad:
        install(EngineSpec("opensearch", "x", 1))
    assert "\n" not in str(bad.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user is only used when running as root")
def test_node_runs_as_service_user(spec: EngineSpec) -> None:
    launcher.start(spec, wait_s=180)
    pid = launcher.status(spec)["pid"]
    assert pid is not None
    uid = Path(f"/proc/{pid}").stat().st_uid
    assert uid != 0
    data = run_dir(spec) / "data"
    assert all(p.stat().st_uid == uid for p in [data, *data.rglob("*")][:50])
