"""Engine-free tests of multi-node clusters: member specs, their discovery settings, run dirs,
and the client's several URLs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from splade_es_workshop.engines.cluster import cluster_members, cluster_urls
from splade_es_workshop.engines.node import node_settings
from splade_es_workshop.engines.spec import EngineSpec, LauncherError, check_spec, run_dir

from splade_es.cli import main
from splade_es.client import ConnectionSettings, connect, redact

OS = EngineSpec("opensearch", "2.19.6", 9400)
ES = EngineSpec("elasticsearch", "8.19.21", 9450)


def test_members_take_consecutive_ports_and_know_each_other() -> None:
    members = cluster_members(OS, 3)
    assert [m.port for m in members] == [9400, 9401, 9402]
    assert {m.cluster for m in members} == {(9400, 9401, 9402)}
    assert (
        cluster_urls(OS, 3) == "http://127.0.0.1:9400,http://127.0.0.1:9401,http://127.0.0.1:9402"
    )
    assert cluster_members(OS, 1) == [OS]  # one node: today's single-node spec, unchanged


@pytest.mark.parametrize("spec", [OS, ES])
def test_member_settings_discover_the_others_instead_of_running_single_node(
    spec: EngineSpec, tmp_path: Path
) -> None:
    member = cluster_members(spec, 3)[1]
    settings = node_settings(member, tmp_path)
    assert "discovery.type" not in settings
    assert settings["cluster.name"] == f"splade-es-cluster-{spec.port}"
    assert settings["node.name"] == f"splade-es-{spec.port + 1}"
    assert settings["http.port"] == spec.port + 1 and settings["transport.port"] == spec.port + 101
    seeds = [f"127.0.0.1:{spec.port + 100 + i}" for i in range(3)]
    assert settings["discovery.seed_hosts"] == seeds
    initial = (
        "cluster.initial_cluster_manager_nodes"
        if spec.engine == "opensearch"
        else "cluster.initial_master_nodes"
    )
    assert settings[initial] == [f"splade-es-{spec.port + i}" for i in range(3)]
    single = node_settings(spec, tmp_path)
    assert single["discovery.type"] == "single-node" and "discovery.seed_hosts" not in single


def test_a_member_never_shares_the_single_nodes_run_dir() -> None:
    member = cluster_members(OS, 3)[0]
    assert member.port == OS.port and run_dir(member) != run_dir(OS)
    assert run_dir(OS).name == "opensearch-2.19.6-9400"


@pytest.mark.parametrize(
    ("spec", "nodes", "message"),
    [
        (OS, 0, "bad node count 0"),
        (OS, 10, "bad node count 10"),
        (replace(OS, port=65434), 3, "need ports up to 65436"),
    ],
)
def test_bad_clusters_fail_with_one_line(spec: EngineSpec, nodes: int, message: str) -> None:
    with pytest.raises(LauncherError, match=message):
        cluster_members(spec, nodes)


def test_a_secured_cluster_is_refused() -> None:
    member = replace(cluster_members(ES, 2)[0], password="secret-pw")
    with pytest.raises(LauncherError, match="single node only"):
        check_spec(member)


def test_engine_nodes_option_is_checked() -> None:
    result = CliRunner().invoke(main, ["engine", "status", "--nodes", "0"])
    assert result.exit_code == 2 and "--nodes" in result.output


# --------------------------------------------------------------------------- the client


def test_several_urls_become_one_host_each_and_credentials_stay_hidden() -> None:
    settings = ConnectionSettings(url="http://127.0.0.1:9400, http://u:pw-123@127.0.0.1:9401")
    assert settings.urls == ["http://127.0.0.1:9400", "http://127.0.0.1:9401"]
    assert (settings.username, settings.password) == ("u", "pw-123")
    assert "pw-123" not in repr(settings) and "pw-123" not in redact(settings.url)
    hosts = connect(settings).transport.hosts
    assert [(h["host"], h["port"]) for h in hosts] == [("127.0.0.1", 9400), ("127.0.0.1", 9401)]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://a:1,ftp://b:2", "must look like"),
        (" , ", "empty"),
        ("http://u:pw1@a:1,http://v:pw2@b:2", "different credentials"),
    ],
)
def test_bad_url_lists_are_one_line(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectionSettings(url=url)


def test_bad_url_in_a_list_is_named_by_the_cli() -> None:
    result = CliRunner().invoke(
        main, ["search", "q", "--index", "i", "--url", "http://127.0.0.1:9,nope"]
    )
    assert result.exit_code == 2 and "--url" in result.output and "Traceback" not in result.output


def test_global_rescore_needs_a_window() -> None:
    result = CliRunner().invoke(
        main, ["search", "q", "--index", "i", "--global-rescore", "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2 and "--rescore-window" in result.output


def test_the_request_timeout_comes_from_the_option_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from splade_es.options import connection_settings

    assert connection_settings({}).timeout == 60.0
    monkeypatch.setenv("SPLADE_ES_TIMEOUT", "7.5")
    assert connection_settings({}).timeout == 7.5
    assert connection_settings({"timeout": 3.0}).timeout == 3.0  # the option wins
    assert connect(connection_settings({"timeout": 3.0})).transport.kwargs["timeout"] == 3.0


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf"])
def test_a_bad_timeout_is_one_line(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SPLADE_ES_TIMEOUT", value)
    result = CliRunner().invoke(
        main, ["search", "q", "--index", "i", "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code != 0 and "SPLADE_ES_TIMEOUT" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    monkeypatch.delenv("SPLADE_ES_TIMEOUT")
    option = CliRunner().invoke(
        main, ["search", "q", "--index", "i", "--url", "http://127.0.0.1:9", "--timeout", value]
    )
    assert option.exit_code == 2 and "--timeout" in option.output
