"""The ingest path (`engine connect-model`) on a real OpenSearch node with ml-commons: a password in
`--service-url` is stored nowhere the cluster shows (pipelines, connectors, models, index settings)
yet reaches the service as basic auth; documents with titles get the vector `encode` gives them;
a document with nothing to encode is refused in the bulk response, not indexed without a vector."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import pytest
from opensearchpy import OpenSearch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.client import ConnectionSettings, open_cluster
from splade_es.corpus import Document, read_documents
from splade_es.mlcommons import ConnectedEncoder, RemoteModelSetup, connect_encoder_service
from splade_es.serve.app import ServiceLimits
from splade_es.serve.server import BackgroundServer
from tests.serve.conftest import running_service, start_ml_node

pytestmark = [pytest.mark.failure, pytest.mark.engine]

DOCS = 40


class BasicAuthProxy:
    """A gate in front of the encoder service that forwards only requests carrying
    `Authorization: Basic base64(user:password)`, as a real authenticating proxy would."""

    def __init__(self, upstream: str, user: str, password: str) -> None:
        self.upstream = upstream
        self.expect(user, password)
        self.passed = 0
        self.refused = 0

    def expect(self, user: str, password: str) -> None:
        self.wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def forward(self, request: Request) -> Response:
        if request.headers.get("authorization") != self.wanted:
            self.refused += 1
            return JSONResponse({"error": "authentication required"}, status_code=401)
        if request.url.path.startswith("/encode/"):  # the cluster's calls, not connect-model's
            self.passed += 1
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.request(
                request.method,
                self.upstream + request.url.path,
                content=await request.body(),
                headers={"content-type": "application/json"},
            )
        return Response(answer.content, answer.status_code, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/encode/{side}", self.forward, methods=["POST"]),
                Route("/ready", self.forward, methods=["GET"]),  # connect-model reads the profile
            ]
        )


@dataclass
class Setup:
    client: OpenSearch
    index: str
    proxy: BasicAuthProxy
    proxy_url: str
    password: str
    ids: ConnectedEncoder


@pytest.fixture(scope="module")
def connected(splade_tiny: Any) -> Iterator[Setup]:
    client, info = open_cluster(ConnectionSettings(url=start_ml_node()))
    index = f"failure-ingest-{uuid.uuid4().hex[:8]}"
    password = f"svc-pw-{uuid.uuid4().hex[:10]}"
    with running_service(lambda: splade_tiny, ServiceLimits(max_batch_texts=1)) as service:
        proxy = BasicAuthProxy(service, "alice", password)
        with BackgroundServer(proxy.app()) as gate:
            host = gate.url.split("://", 1)[1]
            setup = RemoteModelSetup(f"http://alice:{password}@{host}", index, batch_size=1)
            ids = connect_encoder_service(client, info, setup)
            yield Setup(client, index, proxy, gate.url, password, ids)
    client.indices.delete(index=index, ignore_unavailable=True)
    client.close()


def bulk(client: OpenSearch, index: str, docs: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    lines = []
    for doc_id, source in docs:
        lines += [json.dumps({"index": {"_index": index, "_id": doc_id}}), json.dumps(source)]
    response = client.bulk(body="\n".join(lines) + "\n", refresh=True)
    return [item["index"] for item in response["items"]]


def stored_objects(client: OpenSearch, index: str) -> str:
    """Everything the cluster shows about the connection: pipelines, connectors, models, the
    index's settings and mapping."""
    call = client.transport.perform_request
    every = {"size": 100, "query": {"match_all": {}}}
    return json.dumps(
        [
            call("GET", "/_ingest/pipeline"),
            call("POST", "/_plugins/_ml/connectors/_search", body=every),
            call("POST", "/_plugins/_ml/models/_search", body=every),
            client.indices.get(index=index),
            call("GET", "/_cluster/settings"),
        ]
    )


def own_objects(client: OpenSearch, ids: ConnectedEncoder) -> str:
    """This setup's pipeline, models and their connectors (other runs' objects left aside)."""
    call = client.transport.perform_request
    found: list[Any] = [call("GET", f"/_ingest/pipeline/{ids.pipeline_id}")]
    for model_id in (ids.document_model_id, ids.query_model_id):
        model = call("GET", f"/_plugins/_ml/models/{model_id}")
        found += [model, call("GET", f"/_plugins/_ml/connectors/{model['connector_id']}")]
    return json.dumps(found)


def test_a_password_in_the_service_url_is_sent_but_never_stored(connected: Setup) -> None:
    docs = [("auth-1", {"title": "Vitamin D", "text": "and bone density"})]
    assert [item["status"] for item in bulk(connected.client, connected.index, docs)] == [201]
    assert connected.proxy.passed > 0, "the service never got the credentials"
    token = base64.b64encode(f"alice:{connected.password}".encode()).decode()
    shown = stored_objects(connected.client, connected.index)
    assert connected.password not in shown and token not in shown
    own = own_objects(connected.client, connected.ids)
    assert "alice" not in own and connected.proxy_url in own  # the URL, without user-info

    # connecting again with a new password replaces the stored credential
    client, info = open_cluster(ConnectionSettings(url=start_ml_node()))
    new = f"svc-pw-{uuid.uuid4().hex[:10]}"
    connected.proxy.expect("alice", new)
    host = connected.proxy_url.split("://", 1)[1]
    setup = RemoteModelSetup(f"http://alice:{new}@{host}", connected.index, batch_size=1)
    connect_encoder_service(client, info, setup)
    docs = [("auth-2", {"title": "Insulin", "text": "resistance"})]
    assert [item["status"] for item in bulk(connected.client, connected.index, docs)] == [201]
    assert new not in stored_objects(connected.client, connected.index)
    client.close()


def test_documents_with_titles_get_the_vector_encode_gives_them(
    connected: Setup, scifact: Path, splade_tiny: Any
) -> None:
    docs: list[Document] = list(islice(read_documents(scifact / "corpus.jsonl"), DOCS))
    assert sum(1 for d in docs if d.title) >= DOCS // 2, "the slice must have titled documents"
    items = bulk(
        connected.client,
        connected.index,
        [(d.id, {"title": d.title, "text": d.text}) for d in docs],
    )
    assert [item["status"] for item in items] == [201] * DOCS, items[:2]
    found = connected.client.mget(index=connected.index, body={"ids": [d.id for d in docs]})
    stored = {d["_id"]: d["_source"] for d in found["docs"]}
    for doc in docs:
        vector = splade_tiny.encode_documents([doc.full_text], batch_size=1)[0]
        want = encoded_record(doc, vector, DocumentPruning()).features
        assert stored[doc.id]["splade"] == want, doc.id
        assert set(stored[doc.id]) == {"title", "text", "splade"}  # no scratch field left


@pytest.mark.parametrize(
    "source",
    [{"title": "only a title"}, {"title": "t", "text": None}, {}, {"title": " ", "text": "\n"}],
    ids=["no-text", "null-text", "empty", "blank"],
)
def test_a_document_with_nothing_to_encode_is_refused(
    connected: Setup, source: dict[str, Any]
) -> None:
    doc_id = f"nothing-{uuid.uuid4().hex[:6]}"
    (item,) = bulk(connected.client, connected.index, [(doc_id, source)])
    assert item["status"] == 400, item
    assert "nothing to encode" in json.dumps(item["error"])
    assert not connected.client.exists(index=connected.index, id=doc_id)
