"""Real engine nodes (started by splade_es_workshop.engines) and SciFact encoded once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opensearchpy import OpenSearch
from splade_es_workshop.engines import DEFAULT_SPECS, EngineSpec, start

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.client import ConnectionSettings, EngineInfo, open_cluster
from splade_es.corpus import read_documents
from splade_es.records import EncodedRecord
from splade_es.sparse import SparseVector
from tests.conftest import engine_spec, generation_params


@dataclass
class Cluster:
    spec: EngineSpec
    url: str
    client: OpenSearch
    info: EngineInfo


@pytest.fixture(scope="session", params=generation_params(*sorted(DEFAULT_SPECS)))
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Each engine the launcher can start here, started (or reused) for the session: the default
    generation, then (marked `oldgen`) the previous one."""
    generation, name = request.param
    spec = engine_spec(name, generation)
    url = start(spec)
    client, info = open_cluster(ConnectionSettings(url=url))
    yield Cluster(spec, url, client, info)


@dataclass
class EncodedCorpus:
    ids: list[str]
    vectors: list[SparseVector]
    records: list[EncodedRecord]


@pytest.fixture(scope="session")
def scifact_encoded(splade_tiny, scifact: Path, request: pytest.FixtureRequest) -> EncodedCorpus:
    """The whole SciFact corpus encoded with splade-tiny (float vectors and quantized records)."""
    docs = list(read_documents(scifact / "corpus.jsonl"))
    request.config.get_terminal_writer().line(
        f"\n[fixture] encoding SciFact ({len(docs)} documents) with splade-tiny once for the "
        "session: a few minutes on 2 CPU cores"
    )
    vectors = splade_tiny.encode_documents([d.full_text for d in docs], batch_size=32)
    records = [encoded_record(d, v, DocumentPruning()) for d, v in zip(docs, vectors, strict=True)]
    return EncodedCorpus([d.id for d in docs], vectors, records)


@pytest.fixture(scope="session")
def encoded_slice(scifact_encoded: EncodedCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first SciFact documents, as encoded for the session (query-shape and BM25-scale
    tests)."""
    from . import shapes_data

    out = tmp_path_factory.mktemp("shapes") / "slice.jsonl"
    return shapes_data.write_slice(scifact_encoded.records, out)
