"""Engine-free tests of the launcher's logic: specs, the module/plugin catalog, SHA-1 checked
fetching (from a file:// repository built here), process states, ports and options."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import click
import pytest
from splade_es_workshop.engines import fetch as fetch_mod
from splade_es_workshop.engines.catalog import (
    PLUGIN_FEATURE,
    Module,
    distribution,
    modules,
    plugin_versions,
    plugin_zips,
)
from splade_es_workshop.engines.cli import parse_plugins
from splade_es_workshop.engines.fetch import PINNED_SHA1, Artifact, cached_path, fetch
from splade_es_workshop.engines.install import add_module, descriptor, plugin_classname
from splade_es_workshop.engines.java import java_range
from splade_es_workshop.engines.node import node_settings, process_state, start, start_wait
from splade_es_workshop.engines.spec import (
    DEFAULT_SPECS,
    OLDGEN_SPECS,
    SECURED_SPEC,
    EngineSpec,
    LauncherError,
    check_spec,
    features,
    home_dir,
    node_heap,
    run_dir,
)

OS = EngineSpec("opensearch", "2.19.6", 9400)


# --------------------------------------------------------------------------- specs


def test_defaults_are_the_lucene_10_generation_with_the_old_one_beside() -> None:
    spec = DEFAULT_SPECS["opensearch"]
    assert (spec.version, spec.port, spec.plugins) == ("3.6.0", 9200, frozenset({"neural"}))
    assert (DEFAULT_SPECS["elasticsearch"].version, DEFAULT_SPECS["elasticsearch"].port) == (
        "9.2.4",
        9250,
    )
    assert SECURED_SPEC.version == "9.2.4"
    old = OLDGEN_SPECS["opensearch"]
    assert (old.version, old.plugins) == ("2.19.6", frozenset({"neural"}))
    assert OLDGEN_SPECS["elasticsearch"].version == "8.19.21"
    # every spec the tests may start at once has its own port (and transport port + 100)
    ports = [s.port for s in (*DEFAULT_SPECS.values(), *OLDGEN_SPECS.values(), SECURED_SPEC)]
    assert len(set(ports)) == len(ports)
    # Java: the new generation needs 21+, the old one runs on 17
    assert java_range(spec)[0] == 21 and java_range(DEFAULT_SPECS["elasticsearch"])[0] == 21
    assert java_range(old)[0] <= 17 <= java_range(old)[1]
    # the 9.x zip has no published .sha1: it must be pinned
    assert distribution(DEFAULT_SPECS["elasticsearch"]).pinned_sha1 is not None


def test_ml_implies_neural_and_a_bigger_heap() -> None:
    ml = replace(OS, plugins=frozenset({"ml"}))
    assert features(ml) == {"ml", "neural"}
    assert node_heap(ml) == "1g"
    assert node_heap(replace(ml, heap="2g")) == "2g"
    assert node_heap(replace(OS, plugins=frozenset({"neural"}))) == "512m"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (EngineSpec("solr", "9.0.0", 8983), "unknown engine 'solr'"),
        (EngineSpec("opensearch", "x", 9400), "bad version 'x'"),
        (replace(OS, heap="lots"), "bad heap 'lots'"),
        (replace(OS, port=70000), "bad port 70000"),
        (replace(OS, plugins=frozenset({"vision"})), "unknown plugin feature 'vision'"),
        (
            replace(DEFAULT_SPECS["elasticsearch"], plugins=frozenset({"neural"})),
            "OpenSearch only",
        ),
        (replace(OS, password="secret-pw"), r"Elasticsearch 8\+ only"),
    ],
)
def test_bad_specs_fail_with_one_line(spec: EngineSpec, message: str) -> None:
    with pytest.raises(LauncherError, match=message) as err:
        check_spec(spec)
    assert "\n" not in str(err.value)


def test_home_per_plugin_set_run_dir_per_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPLADE_ES_CACHE", str(tmp_path))
    bare, neural = OS, replace(OS, plugins=frozenset({"neural"}))
    ml = replace(OS, plugins=frozenset({"ml"}))
    assert home_dir(bare).name == "opensearch-2.19.6"
    assert home_dir(neural).name == "opensearch-2.19.6-neural"
    assert home_dir(ml).name == "opensearch-2.19.6-ml-neural"
    assert run_dir(bare) == run_dir(ml) == tmp_path / "run" / "opensearch-2.19.6-9400"


# --------------------------------------------------------------------------- catalog


def test_neural_plugins_install_knn_before_neural_search() -> None:
    zips = plugin_zips(replace(OS, plugins=frozenset({"neural"})))
    assert [z.zip.artifact for z in zips] == ["opensearch-knn", "neural-search"]
    assert [z.name for z in zips] == ["opensearch-knn", "opensearch-neural-search"]
    assert all(z.zip.version == "2.19.6.0" and z.zip.ext == "zip" for z in zips)


def test_ml_plugins_in_the_documented_order() -> None:
    zips = plugin_zips(replace(OS, version="3.6.0", plugins=frozenset({"ml"})))
    assert [z.zip.artifact for z in zips] == [
        "opensearch-job-scheduler",
        "opensearch-ml-plugin",
        "opensearch-knn",
        "neural-search",
    ]
    assert all(z.zip.pinned_sha1 == PINNED_SHA1[z.zip.filename] for z in zips)
    assert PLUGIN_FEATURE["opensearch-ml"] == "ml"


def test_every_pinned_hash_is_a_sha1() -> None:
    for name, digest in PINNED_SHA1.items():
        assert len(digest) == 40 and int(digest, 16) >= 0, name


def test_plugins_without_a_pinned_zip_are_refused_naming_the_versions_that_have_one() -> None:
    assert plugin_versions("neural-search") == ["2.19.6", "3.6.0"]
    with pytest.raises(LauncherError, match=r"opensearch-knn-3\.5\.0\.0\.zip.*2\.19\.6 or 3\.6\.0"):
        plugin_zips(replace(OS, version="3.5.0", plugins=frozenset({"neural"})))


def test_opensearch_2_gets_painless_and_analysis_common_modules() -> None:
    mods = {m.name: m for m in modules(OS)}
    assert set(mods) == {"mapper-extras", "lang-painless", "analysis-common"}
    painless = mods["lang-painless"]
    assert len(painless.jars) == 8  # the plugin, its spi, antlr4-runtime and five asm jars
    assert painless.security_policy is not None and "createClassLoader" in painless.security_policy
    assert mods["analysis-common"].extended_plugins == ("lang-painless",)
    # 3.x zips carry their own modules; only mapper-extras is added where missing
    assert [m.name for m in modules(replace(OS, version="3.6.0"))] == ["mapper-extras"]
    assert modules(DEFAULT_SPECS["elasticsearch"]) == []


def _jar(path: Path, classes: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for cls in classes:
            zf.writestr(cls.replace(".", "/") + ".class", b"\xca\xfe\xba\xbe")
    return path


def test_module_folder_with_descriptor_and_policy(tmp_path: Path) -> None:
    main = _jar(tmp_path / "a.jar", ["org.example.ThePlugin"])
    dep = _jar(tmp_path / "b.jar", ["org.example.Helper"])
    module = Module(
        "demo",
        (Artifact("org.example", "demo", "1.0"), Artifact("org.example", "dep", "2.0")),
        ("org.example.Missing", "org.example.ThePlugin"),
        "A demo",
        extended_plugins=("lang-painless",),
        security_policy="grant {};\n",
    )
    add_module(tmp_path / "home", OS, module, [main, dep])
    folder = tmp_path / "home" / "modules" / "demo"
    assert sorted(p.name for p in folder.iterdir()) == [
        "demo-1.0.jar",
        "dep-2.0.jar",
        "plugin-descriptor.properties",
        "plugin-security.policy",
    ]
    props = dict(
        line.split("=", 1)
        for line in (folder / "plugin-descriptor.properties").read_text().splitlines()
    )
    assert props["classname"] == "org.example.ThePlugin"
    assert props["extended.plugins"] == "lang-painless"
    assert props["opensearch.version"] == "2.19.6"
    with pytest.raises(LauncherError, match="no plugin class"):
        plugin_classname(dep, ("org.example.ThePlugin",))
    assert "elasticsearch.version=8.19.21" in descriptor(
        OLDGEN_SPECS["elasticsearch"], module, "x.Y"
    )


def test_ml_node_settings_allow_local_connectors(tmp_path: Path) -> None:
    settings = node_settings(replace(OS, plugins=frozenset({"ml"})), tmp_path)
    assert settings["plugins.ml_commons.only_run_on_ml_node"] is False
    assert settings["transport.port"] == 9500
    (regex,) = settings["plugins.ml_commons.trusted_connector_endpoints_regex"]
    import re

    assert re.match(regex, "http://127.0.0.1:8765/encode")
    assert not re.match(regex, "http://example.org/encode")
    assert not any(k.startswith("plugins.ml") for k in node_settings(OS, tmp_path))


# --------------------------------------------------------------------------- fetch


@pytest.fixture()
def file_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A Maven-layout repository on disk, used through SPLADE_ES_MAVEN_REPO=file://..."""
    repo = tmp_path / "repo"
    monkeypatch.setenv("SPLADE_ES_MAVEN_REPO", repo.as_uri())
    monkeypatch.setenv("SPLADE_ES_CACHE", str(tmp_path / "cache"))
    return repo


def _publish(repo: Path, artifact: Artifact, data: bytes, sha1: str | None) -> None:
    path = repo / artifact.repository_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if sha1 is not None:
        path.with_name(path.name + ".sha1").write_text(f"{sha1}  {artifact.filename}\n")


JAR = Artifact("org.example", "thing", "1.0")


def test_fetch_verifies_against_the_repository_sha1(file_repo: Path) -> None:
    data = b"jar bytes"
    _publish(file_repo, JAR, data, hashlib.sha1(data).hexdigest())
    got = fetch(JAR)
    assert got == cached_path(JAR) and got.read_bytes() == data
    assert got.with_name(got.name + ".sha1").read_text().strip() == hashlib.sha1(data).hexdigest()


def test_fetch_rejects_a_file_that_does_not_match_its_sha1(file_repo: Path) -> None:
    _publish(file_repo, JAR, b"tampered", hashlib.sha1(b"original").hexdigest())
    with pytest.raises(LauncherError, match=r"checksum mismatch for org\.example:thing:1\.0:jar"):
        fetch(JAR)
    assert not cached_path(JAR).exists()


def test_fetch_refuses_an_artifact_without_sha1_or_pin(file_repo: Path) -> None:
    _publish(file_repo, JAR, b"jar bytes", None)
    with pytest.raises(LauncherError, match=r"no checksum for org\.example:thing:1\.0:jar"):
        fetch(JAR)


def test_fetch_checks_pinned_artifacts_against_the_pin(
    file_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zip_ = Artifact("org.example", "plugin", "1.0.0", "zip")
    monkeypatch.setitem(fetch_mod.PINNED_SHA1, zip_.filename, hashlib.sha1(b"good").hexdigest())
    _publish(file_repo, zip_, b"evil", None)
    with pytest.raises(LauncherError, match="checksum mismatch"):
        fetch(zip_)
    _publish(file_repo, zip_, b"good", None)
    assert fetch(zip_).read_bytes() == b"good"


def test_a_corrupted_cached_file_is_detected_and_fetched_again(file_repo: Path) -> None:
    data = b"the real jar"
    _publish(file_repo, JAR, data, hashlib.sha1(data).hexdigest())
    cached = fetch(JAR)
    cached.write_bytes(b"the real jaR")  # bit rot / an interrupted copy
    assert fetch(JAR).read_bytes() == data


def test_missing_artifact_names_the_url(file_repo: Path) -> None:
    with pytest.raises(LauncherError, match=r"download failed: file://\S+/thing-1\.0\.jar"):
        fetch(JAR)


# --------------------------------------------------------------------------- processes, options


def test_process_states_running_stopped_gone() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert process_state(proc.pid) == "running"
        proc.send_signal(signal.SIGSTOP)
        _wait_for(lambda: process_state(proc.pid) == "stopped")
        proc.send_signal(signal.SIGCONT)
        _wait_for(lambda: process_state(proc.pid) == "running")
        proc.kill()
        _wait_for(lambda: process_state(proc.pid) == "gone")  # a zombie until reaped
    finally:
        proc.kill()
        proc.wait()
    assert process_state(proc.pid) == "gone"


def _wait_for(condition: object) -> None:
    import time

    for _ in range(200):
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_start_wait_from_argument_env_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPLADE_ES_START_WAIT", raising=False)
    assert start_wait(None) == 180
    monkeypatch.setenv("SPLADE_ES_START_WAIT", "600")
    assert start_wait(None) == 600
    assert start_wait(30) == 30
    monkeypatch.setenv("SPLADE_ES_START_WAIT", "soon")
    with pytest.raises(LauncherError, match="bad SPLADE_ES_START_WAIT='soon'"):
        start_wait(None)


def test_plugins_option() -> None:
    assert parse_plugins(None) is None
    assert parse_plugins("none") == frozenset()
    assert parse_plugins("neural, ml") == {"neural", "ml"}
    with pytest.raises(click.BadParameter, match="'vision'"):
        parse_plugins("neural,vision")


def test_a_port_taken_by_another_program_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPLADE_ES_CACHE", str(tmp_path))
    monkeypatch.setenv("SPLADE_ES_MAVEN_REPO", (tmp_path / "no-repo").as_uri())  # never reached
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        sock.settimeout(0.1)
        with pytest.raises(LauncherError) as err:
            start(replace(OS, port=port), wait_s=5)
    assert str(err.value) == (
        f"port {port} is in use by another program (not a node started here): "
        "choose another with --port"
    )


def test_maven_errors_become_one_short_line_without_urls() -> None:
    output = (
        "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-dependency-plugin:2.8:copy "
        "(default-cli) on project standalone-pom: Unable to resolve artifact. Could not transfer "
        "artifact g:a:zip:1 from/to central (https://repo.example/maven2): Checksum validation "
        "failed, no checksums available -> [Help 1]\n[ERROR] \n"
        "[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.\n"
    )
    assert fetch_mod._maven_error(output) == (
        "Unable to resolve artifact. Could not transfer artifact g:a:zip:1 from/to central: "
        "Checksum validation failed, no checksums available"
    )


def test_a_port_answering_other_http_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import http.server
    import threading

    monkeypatch.setenv("SPLADE_ES_CACHE", str(tmp_path))
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        with pytest.raises(LauncherError, match=f"^port {port} is in use by another program"):
            start(replace(OS, port=port), wait_s=5)
    finally:
        server.shutdown()
        server.server_close()
