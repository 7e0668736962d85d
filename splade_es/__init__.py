"""splade-es: SPLADE learned sparse retrieval for Elasticsearch and OpenSearch.

The main entry points are importable from here; they load lazily so that `import splade_es`
(and the CLI's start-up) does not pay for importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "SpladeEncoder": "splade_es.encoder",
    "SparseVector": "splade_es.sparse",
    "QueryRewriter": "splade_es.query",
    "QueryPruning": "splade_es.query",
    "Hybrid": "splade_es.query",
    "BulkWriter": "splade_es.bulk",
    "FileIndexer": "splade_es.indexing",
    "index_file": "splade_es.indexing",
    "encode_file": "splade_es.batch_encode",
    "FieldProfile": "splade_es.records",
    "EncodedRecord": "splade_es.records",
    "DeadLetter": "splade_es.records",
    "RunSummary": "splade_es.records",
    "IndexProfile": "splade_es.indices",
    "ensure_index": "splade_es.indices",
    "Searcher": "splade_es.search",
    "ConnectionSettings": "splade_es.client",
    "open_cluster": "splade_es.client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'splade_es' has no attribute {name!r}")
