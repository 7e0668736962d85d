"""`require_plugin` for local nodes: the library's check, with the `--plugins` value that brings
the plugin on a node this launcher starts."""

from __future__ import annotations

from opensearchpy import OpenSearch

from splade_es import plugins

from .catalog import PLUGIN_FEATURE


def require_plugin(client: OpenSearch, plugin: str, feature: str) -> None:
    """The library's `require_plugin`, naming `splade-es engine start --plugins X` as the fix."""
    fix = ""
    if plugin in PLUGIN_FEATURE:
        fix = f"start one with `splade-es engine start --plugins {PLUGIN_FEATURE[plugin]}`"
    plugins.require_plugin(client, plugin, feature, fix)
