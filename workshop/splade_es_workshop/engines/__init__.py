"""Local OpenSearch / Elasticsearch nodes for development, tests and CI.

Why: SPLADE retrieval must be tested against a real engine, and CI machines have only Java and
a Maven repository. The engine's integ-test zip and the modules and plugins it lacks are fetched
with Maven's own client (or from ``SPLADE_ES_MAVEN_REPO``), verified by SHA-1
(:mod:`~splade_es_workshop.engines.fetch`), assembled into a cached home
(:mod:`~splade_es_workshop.engines.install`, :mod:`~splade_es_workshop.engines.catalog`) and run detached on
127.0.0.1 (:mod:`~splade_es_workshop.engines.node`).

Layout under :func:`cache_dir`::

    downloads/                          verified zips and jars (+ their .sha1)
    <engine>-<version>[-ml][-neural]/   engine home, one per plugin set (read-only for the node)
    run/<engine>-<version>-<port>/      config/, data/, logs/, tmp/, node.pid (JVM),
                                        launcher.pid (wrapper), console.log (+ console.prev.log)
    run/<engine>-<version>-secured-<port>/   the same for a node with basic auth
    run/<engine>-<version>-<port>-of-<first port>x<N>/   the same for a member of an N-node cluster
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Loaded lazily: `splade-es --help` should not pay for the HTTP client. (`fetch` and `install`
# are the submodules of those names: `from .install import install`.)
_EXPORTS = {
    "DEFAULT_SPECS": "splade_es_workshop.engines.spec",
    "OLDGEN_SPECS": "splade_es_workshop.engines.spec",
    "FEATURES": "splade_es_workshop.engines.spec",
    "SECURED_SPEC": "splade_es_workshop.engines.spec",
    "SECURED_USER": "splade_es_workshop.engines.spec",
    "EngineSpec": "splade_es_workshop.engines.spec",
    "LauncherError": "splade_es_workshop.engines.spec",
    "cache_dir": "splade_es_workshop.engines.spec",
    "run_dir": "splade_es_workshop.engines.spec",
    "Artifact": "splade_es_workshop.engines.fetch",
    "cluster_members": "splade_es_workshop.engines.cluster",
    "cluster_status": "splade_es_workshop.engines.cluster",
    "cluster_urls": "splade_es_workshop.engines.cluster",
    "start_cluster": "splade_es_workshop.engines.cluster",
    "stop_cluster": "splade_es_workshop.engines.cluster",
    "kill_hard": "splade_es_workshop.engines.node",
    "start": "splade_es_workshop.engines.node",
    "status": "splade_es_workshop.engines.node",
    "stop": "splade_es_workshop.engines.node",
    "require_plugin": "splade_es_workshop.engines.plugins",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'splade_es_workshop.engines' has no attribute {name!r}")
