"""Check that a cluster has the plugin a feature needs, with one line saying which and how."""

from __future__ import annotations

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from splade_es.client import EngineError, describe_error


def require_plugin(client: OpenSearch, plugin: str, feature: str, fix: str = "") -> None:
    """Raise a one-line :class:`EngineError` unless the node runs ``plugin`` (a ``_cat/plugins``
    name such as ``opensearch-neural-search``); ``feature`` names what needs it, ``fix`` how to
    get it (appended after a semicolon)."""
    url = _url_of(client)
    try:
        rows = client.cat.plugins(format="json")
    except TransportError as exc:
        raise EngineError(describe_error(exc, url)) from exc
    names = {str(row.get("component")) for row in rows if isinstance(row, dict)}
    if plugin in names:
        return
    hint = f"; {fix}" if fix else ""
    raise EngineError(f"{feature} need the {plugin} plugin, which {url} does not have{hint}")


def _url_of(client: OpenSearch) -> str:
    hosts = client.transport.hosts or [{}]
    host = hosts[0]
    scheme = "https" if host.get("use_ssl") else host.get("scheme", "http")
    return f"{scheme}://{host.get('host', '?')}:{host.get('port', '?')}"
