"""What node to run: engine, version, port, heap, optional basic auth and plugin features."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from splade_es.mappings import DEFAULT_VERSIONS

# File-realm superuser created on nodes whose spec has a password (Elasticsearch 8+ only).
SECURED_USER = "elastic-test"

# Plugin features a spec can ask for (OpenSearch only). "ml" needs the neural stack too.
FEATURES = ("neural", "ml")
_FEATURE_IMPLIES = {"ml": frozenset({"neural"})}


class LauncherError(RuntimeError):
    """One-line, actionable failure of fetching, installing or running an engine."""


@dataclass(frozen=True)
class EngineSpec:
    """What to run: engine name, version, HTTP port on 127.0.0.1, JVM heap and plugin features.

    ``password`` (Elasticsearch 8+ only) turns on HTTP basic auth: ``xpack.security.enabled``
    without TLS and a file-realm superuser :data:`SECURED_USER` with that password. ``None``
    (the default) runs the node without security. The repr hides it.

    ``plugins`` (OpenSearch only) names features from :data:`FEATURES`: ``"neural"`` adds the
    k-NN and neural-search plugins, ``"ml"`` adds job-scheduler and ml-commons on top (and at
    least 1g of heap).

    ``cluster`` (empty: a single node) lists the HTTP ports of every node of a multi-node
    cluster this node belongs to; :func:`splade_es_workshop.engines.node.cluster_members` makes them.
    """

    engine: str  # "opensearch" | "elasticsearch"
    version: str
    port: int
    heap: str = "512m"
    password: str | None = field(default=None, repr=False)
    plugins: frozenset[str] = frozenset()
    cluster: tuple[int, ...] = ()


# Only engines verified to start and serve SPLADE queries here. The defaults are the Lucene-10
# generation (OpenSearch 3.x, Elasticsearch 9.x: Java 21+); much faster on SPLADE's many-clause
# queries than Lucene 9 (see BM25_LEGACY_SCALE for the one scoring difference).
DEFAULT_SPECS: dict[str, EngineSpec] = {
    "opensearch": EngineSpec(
        "opensearch", DEFAULT_VERSIONS["opensearch"], 9200, plugins=frozenset({"neural"})
    ),
    # 9.x integ-test zips have no .sha1 on the repository: pinned in fetch.PINNED_SHA1.
    "elasticsearch": EngineSpec("elasticsearch", DEFAULT_VERSIONS["elasticsearch"], 9250),
}

# The previous generation (Lucene 9: OpenSearch 2.19, Elasticsearch 8.19, Java 17), still
# supported; the tests marked `oldgen` run on these (on their own ports, beside the defaults).
OLDGEN_SPECS: dict[str, EngineSpec] = {
    "opensearch": EngineSpec("opensearch", "2.19.6", 9210, plugins=frozenset({"neural"})),
    # 8.19.x: fully published (pom, .sha1) and runs on Java 17.
    "elasticsearch": EngineSpec("elasticsearch", "8.19.21", 9260),
}

# Elasticsearch with basic auth (user SECURED_USER) for authentication tests; a fixed test
# password, not a secret: the node listens on 127.0.0.1 only.
SECURED_SPEC = EngineSpec(
    "elasticsearch", DEFAULT_VERSIONS["elasticsearch"], 9251, password="splade-es-test-pw"
)


def major(version: str) -> int:
    """The major version number, or a LauncherError for something that is not a version."""
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise LauncherError(f"bad version {version!r}") from exc


def features(spec: EngineSpec) -> frozenset[str]:
    """The spec's plugin features with what they imply ("ml" brings "neural")."""
    out = set(spec.plugins)
    for name in spec.plugins:
        out |= _FEATURE_IMPLIES.get(name, frozenset())
    return frozenset(out)


def node_heap(spec: EngineSpec) -> str:
    """The heap to run with: ml-commons needs at least 1g."""
    if "ml" in spec.plugins and _heap_bytes(spec.heap) < _heap_bytes("1g"):
        return "1g"
    return spec.heap


def _heap_bytes(heap: str) -> int:
    return int(heap[:-1]) * {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[heap[-1].lower()]


def check_spec(spec: EngineSpec) -> None:
    """Reject a spec the launcher cannot run, with one line naming the bad field."""
    if spec.engine not in ("opensearch", "elasticsearch"):
        raise LauncherError(f"unknown engine {spec.engine!r}: use 'opensearch' or 'elasticsearch'")
    if not re.fullmatch(r"\d+(\.\d+){1,2}", spec.version):
        raise LauncherError(f"bad version {spec.version!r}: use e.g. '2.19.6'")
    if not re.fullmatch(r"\d+[kKmMgG]", spec.heap):
        raise LauncherError(f"bad heap {spec.heap!r}: use e.g. '512m' or '2g'")
    if not 1 <= spec.port <= 65435:  # the transport port is port + 100
        raise LauncherError(f"bad port {spec.port}: use 1..65435")
    unknown = sorted(set(spec.plugins) - set(FEATURES))
    if unknown:
        raise LauncherError(
            f"unknown plugin feature {unknown[0]!r}: use one of {', '.join(FEATURES)}"
        )
    if spec.plugins and spec.engine != "opensearch":
        raise LauncherError(
            f"plugin features ({', '.join(sorted(spec.plugins))}) are OpenSearch only, "
            f"not {spec.engine}"
        )
    if spec.cluster and spec.password is not None:
        # Elasticsearch 8+ security across nodes needs transport TLS, which the launcher omits
        raise LauncherError("password (basic auth) is supported on a single node only")
    if spec.password is not None:
        if spec.engine != "elasticsearch" or major(spec.version) < 8:
            raise LauncherError(
                f"password (basic auth) is supported on Elasticsearch 8+ only, "
                f"not {spec.engine} {spec.version}"
            )
        # elasticsearch-users rejects shorter passwords; newlines would break its stdin prompt.
        if len(spec.password) < 6 or any(c in spec.password for c in "\r\n"):
            raise LauncherError("bad password: use at least 6 characters and no line breaks")


# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """Root of downloads, engine homes and node runtime dirs (env ``SPLADE_ES_CACHE`` wins)."""
    env = os.environ.get("SPLADE_ES_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        # /root is 0700: the unprivileged node user could not read a home under it.
        return Path("/var/cache/splade-es/engines")
    return Path.home() / ".cache" / "splade-es" / "engines"


def home_dir(spec: EngineSpec) -> Path:
    """The installed engine (read-only for the node); one per version and plugin set."""
    suffix = "".join(f"-{name}" for name in sorted(features(spec)))
    return cache_dir() / f"{spec.engine}-{spec.version}{suffix}"


def run_dir(spec: EngineSpec) -> Path:
    """The node's config, data, logs and pid files; one per version and port (not per plugin
    set, so the data survives a change of plugins and ``stop`` finds the node either way)."""
    secured = "-secured" if spec.password is not None else ""
    # a cluster member's data belongs to its cluster: never the single node's dir on that port
    member = f"-of-{spec.cluster[0]}x{len(spec.cluster)}" if spec.cluster else ""
    return cache_dir() / "run" / f"{spec.engine}-{spec.version}{secured}-{spec.port}{member}"
