"""A small real index for the query-shape and BM25-scale tests: the first SciFact documents of
the session's splade-tiny encoding, indexed the way `index-vectors` does."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch

from splade_es.benchmarks.latency_scale import term_filter_near
from splade_es.client import EngineInfo
from splade_es.corpus import EncodedWriter, read_queries
from splade_es.indexing import FileIndexer
from splade_es.indices import IndexProfile, ensure_index, force_merge
from splade_es.records import EncodedRecord

N_DOCS = 800
N_QUERIES = 20


def write_slice(records: Sequence[EncodedRecord], out: Path) -> Path:
    """The first `N_DOCS` of the session's encoded SciFact records, as a file to index."""
    with EncodedWriter(out) as writer:
        for record in islice(records, N_DOCS):
            writer.write(record)
    return out


def fill(client: OpenSearch, info: EngineInfo, index: str, source: Path) -> IndexProfile:
    """A fresh index holding the encoded slice (one segment, refreshed)."""
    client.indices.delete(index=index, ignore_unavailable=True)
    profile = ensure_index(client, info, index)
    FileIndexer(client, profile, show_progress=False).run(source, source.with_suffix(f".{index}"))
    force_merge(client, index)
    client.indices.refresh(index=index)
    return IndexProfile.read(client, index)


def queries(scifact: Path) -> list[str]:
    return list(islice(read_queries(scifact / "queries.jsonl").values(), N_QUERIES))


def ten_percent_filter(client: OpenSearch, index: str) -> tuple[dict[str, Any], set[str]]:
    """The benchmark's term filter matching about 10% of the documents, and the ids it matches."""
    query, share = term_filter_near(client, index, 0.1)
    assert 0.04 <= share <= 0.25, (query, share)
    total = int(client.count(index=index)["count"])
    hits = client.search(
        index=index, body={"size": total, "_source": False, "query": {"bool": {"filter": query}}}
    )["hits"]["hits"]
    return query, {str(h["_id"]) for h in hits}
