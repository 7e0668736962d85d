"""ml-commons objects and checks, without an engine (a minimal HTTP stand-in answers the few
cluster calls `check_plugins` makes; the real flow is in test_pipeline_engine.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from splade_es.cli import main
from splade_es.client import ConnectionSettings, EngineError, EngineInfo, open_cluster
from splade_es.mlcommons import RemoteModelSetup, check_plugins, connector_body, pipeline_body
from splade_es.serve.server import BackgroundServer


def test_connector_posts_texts_to_one_route_with_a_placeholder_credential() -> None:
    body = connector_body(RemoteModelSetup("http://10.0.0.5:8080/", "docs"), "queries")
    (action,) = body["actions"]
    assert action["url"] == "http://10.0.0.5:8080/encode/queries"
    assert json.loads(action["request_body"].replace("${parameters.texts}", '["a"]')) == {
        "texts": ["a"]
    }
    assert body["credential"] and action["action_type"] == "predict"


def test_pipeline_maps_source_to_splade_field_with_optional_on_failure() -> None:
    plain = pipeline_body(
        RemoteModelSetup("http://h:1", "i", source_field="body", title_field=None), "m1"
    )
    (processor,) = plain["processors"]
    assert processor["sparse_encoding"]["field_map"] == {"body": "splade"}
    assert processor["sparse_encoding"]["model_id"] == "m1"
    assert "on_failure" not in plain
    routed = pipeline_body(RemoteModelSetup("http://h:1", "i", failure_index="failed"), "m1")
    assert routed["on_failure"][0] == {"set": {"field": "_index", "value": "failed"}}


def test_pipeline_encodes_title_and_text_through_a_scratch_field_it_removes() -> None:
    body = pipeline_body(RemoteModelSetup("http://h:1", "i"), "m1")
    script, encode, remove = body["processors"]
    target = script["script"]["params"]["target"]
    assert script["script"]["params"] == {"title": "title", "text": "text", "target": target}
    assert encode["sparse_encoding"]["field_map"] == {target: "splade"}
    assert remove == {"remove": {"field": target}}
    assert "title + text" in body["description"]


def test_credentials_in_the_service_url_go_to_the_credential_map_only() -> None:
    secret = "s3cret-service-pw"
    setup = RemoteModelSetup(f"http://bob:{secret}@10.0.0.5:8080/", "docs")
    assert setup.service_url == "http://10.0.0.5:8080/" and secret not in repr(setup)
    body = connector_body(setup, "documents")
    token = body["credential"]["basic_auth"]
    assert base64.b64decode(token).decode() == f"bob:{secret}"
    (action,) = body["actions"]
    assert action["headers"]["Authorization"] == "Basic ${credential.basic_auth}"
    shown = json.dumps({k: v for k, v in body.items() if k != "credential"})
    assert secret not in shown and token not in shown and "bob" not in shown
    pipeline = json.dumps(pipeline_body(setup, "m1"))
    assert secret not in pipeline and token not in pipeline


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service_url": "localhost:8080"}, "must be an http(s) URL"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"source_field": "splade"}, "both 'splade'"),
    ],
)
def test_setup_refuses_bad_options(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"service_url": "http://127.0.0.1:8080", "index": "i", **kwargs}
    with pytest.raises(ValueError) as caught:
        RemoteModelSetup(**args)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_cli_bad_service_url_is_one_line() -> None:
    result = CliRunner().invoke(main, ["connect-model", "--service-url", "ftp://x", "--index", "i"])
    assert result.exit_code != 0
    assert "must be an http(s) URL" in result.output and "Traceback" not in result.output


@pytest.fixture()
def opensearch_without_neural_search() -> Iterator[str]:
    async def root(request: Request) -> JSONResponse:
        return JSONResponse({"version": {"number": "2.19.6", "distribution": "opensearch"}})

    async def plugins(request: Request) -> JSONResponse:
        return JSONResponse([{"name": "n", "component": "opensearch-ml", "version": "2.19.6.0"}])

    app = Starlette(routes=[Route("/", root), Route("/_cat/plugins", plugins)])
    with BackgroundServer(app) as server:
        yield server.url


def test_a_missing_plugin_is_named_with_the_feature_needing_it(
    opensearch_without_neural_search: str,
) -> None:
    client, info = open_cluster(ConnectionSettings(url=opensearch_without_neural_search))
    with pytest.raises(EngineError) as caught:
        check_plugins(client, info, needs_set_processor=False)
    message = str(caught.value)
    assert "opensearch-neural-search for neural-search" in message
    assert "opensearch-ml" not in message and "\n" not in message


def test_elasticsearch_is_refused_in_one_line() -> None:
    with pytest.raises(EngineError, match="needs OpenSearch"):
        check_plugins(None, EngineInfo("elasticsearch", "8.19.21"), needs_set_processor=False)  # type: ignore[arg-type]


def test_a_service_that_cannot_be_read_is_one_line_naming_its_ready_url() -> None:
    """connect-model records what the service says it serves; with no service there is nothing
    to record, so it stops before touching the cluster, saying where it looked."""
    from splade_es.mlcommons import service_profile

    setup = RemoteModelSetup("http://user:hunter2@127.0.0.1:9", "i")
    with pytest.raises(EngineError) as caught:
        service_profile(setup, wait_s=1)
    message = str(caught.value)
    assert "http://127.0.0.1:9/ready" in message and "cannot read" in message
    assert "hunter2" not in message and "\n" not in message
