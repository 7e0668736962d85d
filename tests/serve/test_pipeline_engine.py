"""End to end on a real OpenSearch node with ml-commons: text in, hits out, the external path's scores.

The service runs splade-tiny with one text per model call and the pipeline sends one document per
request, and the external path encodes one text at a time too: so both paths run the model on
identical inputs and must give identical stored weights and identical scores (batching several
texts into one padded call changes weights only by float rounding, ~1e-6 relative).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.bulk import BulkOptions, BulkWriter
from splade_es.client import ConnectionSettings, EngineError, EngineInfo, open_cluster
from splade_es.corpus import Document, read_documents, read_queries
from splade_es.indices import ensure_index
from splade_es.mlcommons import (
    FAILURE_MESSAGE_FIELD,
    ConnectedEncoder,
    RemoteModelSetup,
    connect_encoder_service,
    neural_sparse_query,
    registered_model,
)
from splade_es.query import QueryRewriter
from splade_es.serve.app import ServiceLimits
from tests.serve.conftest import FaultyEncoder, running_service

pytestmark = pytest.mark.engine

PIPELINE_INDEX = "serve-test-pipeline"
EXTERNAL_INDEX = "serve-test-external"
DOCS = 40
QUERIES = 12


@dataclass
class Connected:
    client: OpenSearch
    info: EngineInfo
    service_url: str
    encoder: FaultyEncoder
    ids: ConnectedEncoder


@pytest.fixture(scope="module")
def connected(ml_node_url: str, splade_tiny) -> Iterator[Connected]:
    client, info = open_cluster(ConnectionSettings(url=ml_node_url))
    for index in (PIPELINE_INDEX, EXTERNAL_INDEX):
        client.indices.delete(index=index, ignore_unavailable=True)
    encoder = FaultyEncoder(splade_tiny)
    with running_service(lambda: encoder, ServiceLimits(max_batch_texts=1)) as url:
        setup = RemoteModelSetup(url, PIPELINE_INDEX, batch_size=1)
        ids = connect_encoder_service(client, info, setup)
        yield Connected(client, info, url, encoder, ids)


@pytest.fixture(scope="module")
def scifact_docs(scifact: Path) -> list[Document]:
    return list(read_documents(scifact / "corpus.jsonl"))[:DOCS]


def bulk_plain(client: OpenSearch, index: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = []
    for doc in docs:
        lines.append(json.dumps({"index": {"_index": index, "_id": doc["id"]}}))
        lines.append(json.dumps({k: v for k, v in doc.items() if k != "id"}))
    response = client.bulk(body="\n".join(lines) + "\n", refresh=True)
    return [item["index"] for item in response["items"]]


def stored_features(client: OpenSearch, index: str, ids: list[str]) -> dict[str, Any]:
    found = client.mget(index=index, body={"ids": ids})["docs"]
    return {d["_id"]: d["_source"].get("splade") for d in found}


def test_text_in_hits_out_with_the_external_paths_scores(
    connected: Connected, scifact_docs: list[Document], scifact: Path, splade_tiny
) -> None:
    client = connected.client
    items = bulk_plain(
        client,
        PIPELINE_INDEX,
        [{"id": d.id, "title": d.title, "text": d.text} for d in scifact_docs],
    )
    assert all(item["status"] == 201 for item in items), items[:2]

    # The external path: encode (one text at a time) -> records -> the bulk indexer.
    ensure_index(client, connected.info, EXTERNAL_INDEX)
    records = [
        (
            i,
            encoded_record(
                d, splade_tiny.encode_documents([d.full_text], batch_size=1)[0], DocumentPruning()
            ),
        )
        for i, d in enumerate(scifact_docs, start=1)
    ]
    writer = BulkWriter(client, EXTERNAL_INDEX, options=BulkOptions(chunk_size=20))
    outcomes = list(writer.write(records))
    client.indices.refresh(index=EXTERNAL_INDEX)
    assert len(outcomes) == len(scifact_docs) and all(dead is None for _, _, dead in outcomes)

    ids = [d.id for d in scifact_docs]
    via_pipeline = stored_features(client, PIPELINE_INDEX, ids)
    via_external = stored_features(client, EXTERNAL_INDEX, ids)
    assert via_pipeline == via_external
    assert all(via_pipeline[i] for i in ids)

    rewriter = QueryRewriter(splade_tiny, engine="opensearch", form="rank_feature")
    queries = list(read_queries(scifact / "queries.jsonl").values())[:QUERIES]
    compared = 0
    for text in queries:
        external = client.search(index=EXTERNAL_INDEX, body=rewriter.body(text, size=10))
        cluster_side = client.search(
            index=PIPELINE_INDEX,
            body={
                "size": 10,
                "query": neural_sparse_query("splade", text, connected.ids.query_model_id),
            },
        )
        got = [(h["_id"], h["_score"]) for h in cluster_side["hits"]["hits"]]
        want = [(h["_id"], h["_score"]) for h in external["hits"]["hits"]]
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6)
        compared += len(got)
    assert compared > 0


def test_an_encoding_failure_fails_only_that_document(connected: Connected) -> None:
    items = bulk_plain(
        connected.client,
        PIPELINE_INDEX,
        [
            {"id": "fault-ok-1", "text": "insulin resistance"},
            {"id": "fault-bad", "text": f"this one breaks {FaultyEncoder.fail_marker}"},
            {"id": "fault-ok-2", "text": "gut microbiome"},
        ],
    )
    assert [item["status"] for item in items][::2] == [201, 201]
    bad = items[1]
    assert bad["status"] >= 400
    assert "injected encoder failure" in json.dumps(bad["error"])
    assert not connected.client.exists(index=PIPELINE_INDEX, id="fault-bad")


def test_failure_index_routes_bad_documents_or_is_refused_without_ingest_common(
    connected: Connected,
) -> None:
    """3.x integ-test zips have ingest-common: a document the encoder fails on lands in the
    failure index with the reason. 2.19's has no `set` processor: the route is refused up front."""
    client = connected.client
    kinds = {
        p["type"]
        for node in client.nodes.info(metric="ingest")["nodes"].values()
        for p in node["ingest"]["processors"]
    }
    index, failed = PIPELINE_INDEX + "-routed", "serve-test-failed"
    for name in (index, failed):
        client.indices.delete(index=name, ignore_unavailable=True)
    setup = RemoteModelSetup(connected.service_url, index, failure_index=failed, batch_size=1)
    if "set" not in kinds:
        assert connected.info.major < 3
        with pytest.raises(EngineError, match="ingest-common module"):
            connect_encoder_service(client, connected.info, setup)
        return
    connect_encoder_service(client, connected.info, setup)
    items = bulk_plain(
        client,
        index,
        [
            {"id": "routed-ok", "text": "insulin resistance"},
            {"id": "routed-bad", "text": f"this one breaks {FaultyEncoder.fail_marker}"},
        ],
    )
    assert [item["status"] for item in items] == [201, 201]
    assert [item["_index"] for item in items] == [index, failed]
    client.indices.refresh(index=failed)
    reason = client.get(index=failed, id="routed-bad")["_source"][FAILURE_MESSAGE_FIELD]
    assert "injected encoder failure" in reason
    assert stored_features(client, index, ["routed-ok"])["routed-ok"]
    for name in (index, failed):
        client.indices.delete(index=name, ignore_unavailable=True)


def connectors_named(client: OpenSearch, name: str) -> int:
    found = client.transport.perform_request(
        "POST",
        "/_plugins/_ml/connectors/_search",
        body={"size": 100, "query": {"term": {"name.keyword": name}}},
    )
    return len(found["hits"]["hits"])


def test_connecting_again_reuses_the_models(connected: Connected) -> None:
    client = connected.client
    before = {
        side: connectors_named(client, f"splade-es-{side}") for side in ("documents", "queries")
    }
    setup = RemoteModelSetup(connected.service_url, PIPELINE_INDEX, batch_size=1)
    again = connect_encoder_service(client, connected.info, setup)
    assert again == connected.ids
    after = {
        side: connectors_named(client, f"splade-es-{side}") for side in ("documents", "queries")
    }
    assert after == before

    # an undeployed model (as after a cluster restart) is deployed again, not replaced
    model = connected.ids.query_model_id
    client.transport.perform_request("POST", f"/_plugins/_ml/models/{model}/_undeploy")
    assert connect_encoder_service(client, connected.info, setup) == connected.ids
    state = client.transport.perform_request("GET", f"/_plugins/_ml/models/{model}")
    assert state["model_state"] == "DEPLOYED"

    # another service URL is another connector
    moved = RemoteModelSetup(connected.service_url + "/", PIPELINE_INDEX, batch_size=1)
    assert connect_encoder_service(client, connected.info, moved) == connected.ids  # same base URL
    elsewhere = RemoteModelSetup("http://127.0.0.1:9", "serve-test-elsewhere", batch_size=1)
    assert registered_model(client, elsewhere, "documents") is None


def test_the_index_records_the_services_model_and_factor(connected: Connected, splade_tiny) -> None:
    """The index's _meta says what the service said on /ready, and a service filling the field
    otherwise (another factor) is refused on that index before any model is registered."""
    from splade_es.indices import IndexProfile
    from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

    recorded = IndexProfile.read(connected.client, PIPELINE_INDEX).splade_field("splade")
    assert recorded.model == "splade-tiny"
    assert recorded.quantization == DEFAULT_QUANTIZATION_FACTOR
    with running_service(lambda: splade_tiny, quantization=50.0) as url:
        setup = RemoteModelSetup(url, PIPELINE_INDEX, name="other-factor", batch_size=1)
        with pytest.raises(EngineError, match=r"quantization 100.0 \(this run: 50.0"):
            connect_encoder_service(connected.client, connected.info, setup)
    assert registered_model(connected.client, setup, "documents") is None
