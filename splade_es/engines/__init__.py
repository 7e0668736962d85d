"""Local OpenSearch / Elasticsearch nodes for development, tests and CI.

Why: SPLADE retrieval must be tested against a real engine, and CI machines have only Java and
a Maven repository. The engine's integ-test zip and the modules and plugins it lacks are fetched
with Maven's own client (or from ``SPLADE_ES_MAVEN_REPO``), verified by SHA-1
(:mod:`~splade_es.engines.fetch`), assembled into a cached home
(:mod:`~splade_es.engines.install`, :mod:`~splade_es.engines.catalog`) and run detached on
127.0.0.1 (:mod:`~splade_es.engines.node`).

Layout under :func:`cache_dir`::

    downloads/                          verified zips and jars (+ their .sha1)
    <engine>-<version>[-ml][-neural]/   engine home, one per plugin set (read-only for the node)
    run/<engine>-<version>-<port>/      config/, data/, logs/, tmp/, node.pid (JVM),
                                        launcher.pid (wrapper), console.log (+ console.prev.log)
    run/<engine>-<version>-secured-<port>/   the same for a node with basic auth
"""

from splade_es.engines.fetch import Artifact, fetch
from splade_es.engines.install import install
from splade_es.engines.node import kill_hard, start, status, stop
from splade_es.engines.plugins import require_plugin
from splade_es.engines.spec import (
    DEFAULT_SPECS,
    FEATURES,
    SECURED_SPEC,
    SECURED_USER,
    EngineSpec,
    LauncherError,
    cache_dir,
    run_dir,
)

__all__ = [
    "DEFAULT_SPECS",
    "FEATURES",
    "SECURED_SPEC",
    "SECURED_USER",
    "Artifact",
    "EngineSpec",
    "LauncherError",
    "cache_dir",
    "fetch",
    "install",
    "kill_hard",
    "require_plugin",
    "run_dir",
    "start",
    "status",
    "stop",
]
