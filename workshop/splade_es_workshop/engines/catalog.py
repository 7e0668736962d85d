"""Which artifacts make up a node: the distribution, the modules it lacks, the plugin zips.

Why here: the integ-test distributions on a Maven repository are bare (OpenSearch 2.x has only
``transport-netty4``), so the launcher adds the modules SPLADE needs (``mapper-extras`` for
``rank_features``; ``lang-painless`` + ``analysis-common`` for stemming; ``ingest-common`` with ml)
and, per requested feature,
the plugin zips in the order their ``extended.plugins`` demand.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fetch import PINNED_SHA1, Artifact
from .spec import EngineSpec, LauncherError, features, major

OS_PLUGIN_GROUP = "org.opensearch.plugin"


@dataclass(frozen=True)
class Module:
    """A plugin installed as a bundled module: a folder of jars with a plugin descriptor."""

    name: str
    jars: tuple[Artifact, ...]
    classnames: tuple[str, ...]  # candidates; the first one present in the main jar wins
    description: str
    extended_plugins: tuple[str, ...] = ()
    security_policy: str | None = None


@dataclass(frozen=True)
class PluginZip:
    """A plugin installed with ``bin/opensearch-plugin``; ``name`` is what ``_cat/plugins`` shows."""

    name: str
    zip: Artifact
    feature: str


# (artifactId, name in _cat/plugins) per feature, in install order: a plugin's extended plugins
# come before it (neural-search extends k-NN; ml-commons extends job-scheduler).
_FEATURE_PLUGINS: dict[str, tuple[tuple[str, str], ...]] = {
    "ml": (
        ("opensearch-job-scheduler", "opensearch-job-scheduler"),
        ("opensearch-ml-plugin", "opensearch-ml"),
    ),
    "neural": (
        ("opensearch-knn", "opensearch-knn"),
        ("neural-search", "opensearch-neural-search"),
    ),
}
_FEATURE_ORDER = ("ml", "neural")

# Which feature brings a plugin (for "start a node with --plugins X" hints).
PLUGIN_FEATURE: dict[str, str] = {
    name: feature for feature, plugins in _FEATURE_PLUGINS.items() for _, name in plugins
}

# lang-painless's runtime dependencies on OpenSearch 2.19 (only these: the spi's own transitive
# dependencies are already on the server classpath and would cause jar hell).
_PAINLESS_DEPS = (
    Artifact("org.antlr", "antlr4-runtime", "4.13.1"),
    *(
        Artifact("org.ow2.asm", name, "9.7")
        for name in ("asm", "asm-util", "asm-tree", "asm-commons", "asm-analysis")
    ),
)
_PAINLESS_POLICY = """grant {
  // Painless compiles scripts into classes loaded by its own class loader
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
"""


def distribution(spec: EngineSpec) -> Artifact:
    """The engine's integ-test zip."""
    if spec.engine == "opensearch":
        return Artifact(
            "org.opensearch.distribution.integ-test-zip", "opensearch", spec.version, "zip"
        )
    return Artifact(
        "org.elasticsearch.distribution.integ-test-zip", "elasticsearch", spec.version, "zip"
    )


def modules(spec: EngineSpec) -> list[Module]:
    """Modules to add to the distribution (those it already has are skipped at install)."""
    v = spec.version
    if spec.engine == "elasticsearch":
        if major(v) > 7:
            return []  # sparse_vector is in the server
        jar = Artifact("org.elasticsearch.plugin", "mapper-extras-client", v)
        return [
            Module(
                "mapper-extras",
                (jar,),
                ("org.elasticsearch.index.mapper.MapperExtrasPlugin",),
                "Adds advanced field mappers (rank_features)",
            )
        ]
    out = [
        Module(
            "mapper-extras",
            (Artifact(OS_PLUGIN_GROUP, "mapper-extras-client", v),),
            (
                "org.opensearch.index.mapper.MapperExtrasModulePlugin",
                "org.opensearch.index.mapper.MapperExtrasPlugin",
            ),
            "Adds advanced field mappers (rank_features)",
        )
    ]
    if major(v) == 2:
        out += [
            Module(
                "lang-painless",
                (
                    Artifact(OS_PLUGIN_GROUP, "lang-painless", v),
                    Artifact(OS_PLUGIN_GROUP, "opensearch-scripting-painless-spi", v),
                    *_PAINLESS_DEPS,
                ),
                ("org.opensearch.painless.PainlessPlugin",),
                "An easy, safe and fast scripting language for OpenSearch",
                security_policy=_PAINLESS_POLICY,
            ),
            Module(
                "analysis-common",
                (Artifact(OS_PLUGIN_GROUP, "analysis-common", v),),
                ("org.opensearch.analysis.common.CommonAnalysisPlugin",),
                "Adds analyzers, tokenizers and filters (stemming, the english analyzer)",
                extended_plugins=("lang-painless",),
            ),
        ]
        if "ml" in features(spec):
            out.append(_ingest_common(v))
    return out


def _ingest_common(v: str) -> Module:
    """The `script`, `set` and `remove` ingest processors: `engine connect-model`'s pipeline
    builds the encoded text (title + text, as `encode` does) and refuses a document with nothing
    to encode with them. Released distributions bundle it; the integ-test zip does not."""
    return Module(
        "ingest-common",
        (
            Artifact(OS_PLUGIN_GROUP, "ingest-common", v),
            Artifact("org.opensearch", "opensearch-grok", v),
            Artifact("org.opensearch", "opensearch-dissect", v),
            Artifact("org.jruby.joni", "joni", "2.2.1"),
            Artifact("org.jruby.jcodings", "jcodings", "1.0.61"),
        ),
        ("org.opensearch.ingest.common.IngestCommonPlugin",),
        "Module for ingest processors that do not require additional security permissions",
        extended_plugins=("lang-painless",),
    )


def plugin_zips(spec: EngineSpec) -> list[PluginZip]:
    """The plugin zips the spec's features need, in install order, each with a pinned SHA-1."""
    wanted = features(spec)
    out: list[PluginZip] = []
    for feature in _FEATURE_ORDER:
        if feature not in wanted:
            continue
        for artifact_id, name in _FEATURE_PLUGINS[feature]:
            zip_ = Artifact(OS_PLUGIN_GROUP, artifact_id, f"{spec.version}.0", "zip")
            if zip_.pinned_sha1 is None:
                raise LauncherError(
                    f"feature {feature!r} needs {zip_.filename}, which has no pinned SHA-1: "
                    f"use OpenSearch {' or '.join(plugin_versions(artifact_id))}"
                )
            out.append(PluginZip(name, zip_, feature))
    return out


def plugin_versions(artifact_id: str) -> list[str]:
    """OpenSearch versions whose zip of this plugin has a pinned SHA-1."""
    prefix = artifact_id + "-"
    return sorted(
        name[len(prefix) : -len(".0.zip")]
        for name in PINNED_SHA1
        if name.startswith(prefix) and name[len(prefix)].isdigit()
    )
