"""The encoder service as an OpenSearch ml-commons remote model, and the ingest pipeline using it.

With the service registered as a *remote connector* model, the cluster encodes by calling it:
the `sparse_encoding` ingest processor fills the SPLADE field of plain documents, and
`neural_sparse` with `query_text` encodes queries, with no model weights inside the cluster.
Two models are registered, one per service route, because documents and queries are encoded
differently (quantized document weights, scaled query weights; two encoders for pair models).

Failures: when the service refuses or fails a request, the `sparse_encoding` processor fails, and
OpenSearch's own ingest failure handling applies. Without `failure_index` the pipeline has no
`on_failure` block, so the document fails in the bulk response with the engine's reason, e.g.
(OpenSearch 2.19.6) status 500 `status_exception: Error from remote service: {"error":"encoding
failed: ..."}` for a text the encoder fails on, status 500 `Error communicating with remote
model: Connection refused` when the service is down, status 400 `illegal_argument_exception`
for a source field that is not a string; the document is not indexed. These 500s are not
transient for a bad text: a client retrying 5xx items retries it in vain. With `failure_index`
the pipeline's `on_failure` re-routes the document to that index and stores
`_ingest.on_failure_message` in `ingest_failure` (needs the `set` processor of ingest-common,
checked up front), so the bulk item succeeds and failures are kept for re-play.
One encoder request carries up to `batch_size` documents: one bad text fails all of them. A busy
service answers 503 and that batch fails the same way: give `serve --max-queue` room for the
concurrent bulk requests the cluster receives.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError, TransportError

from splade_es.client import (
    EngineError,
    EngineInfo,
    describe_error,
    redact,
    remember_secret,
    split_credentials,
)
from splade_es.indices import SpladeField, ensure_index
from splade_es.records import FieldProfile

REQUIRED_PLUGINS = {
    "opensearch-ml": "ml-commons (remote connector models)",
    "opensearch-neural-search": "neural-search (sparse_encoding processor, neural_sparse query)",
}
FAILURE_MESSAGE_FIELD = "ingest_failure"
"""Field of a document in the failure index that holds the engine's failure message."""


@dataclass(frozen=True)
class RemoteModelSetup:
    """What to connect: the service, the index it encodes for, and how the pipeline behaves."""

    service_url: str
    index: str
    field: str = "splade"
    source_field: str = "text"
    name: str = "splade-es"
    batch_size: int = 16
    failure_index: str | None = None
    relax_node_settings: bool = True
    """Let ML tasks run on data nodes and switch off the ML memory breakers (single-node clusters)."""
    read_timeout_s: int = 60
    title_field: str | None = "title"
    """Put in front of `source_field` as `Document.full_text` does (what `encode` encodes); None
    encodes `source_field` alone."""
    service_auth: str | None = dataclasses.field(default=None, repr=False)
    """base64 `user:password` for the service, taken out of `service_url`: it reaches the cluster
    only as the connector's (encrypted) `credential`, never inside a stored URL or description."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.service_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"--service-url {redact(self.service_url)!r} must be an http(s) URL with a host"
            )
        if parts.username is not None or parts.password is not None:
            url, user, password = split_credentials(self.service_url)
            token = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
            remember_secret(token)
            object.__setattr__(self, "service_url", url)
            object.__setattr__(self, "service_auth", token)
        if self.title_field == self.source_field:
            raise ValueError(f"title field and source field are both {self.source_field!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.source_field == self.field:
            raise ValueError(f"source field and SPLADE field are both {self.field!r}")

    @property
    def base_url(self) -> str:
        return self.service_url.rstrip("/")

    @property
    def pipeline_id(self) -> str:
        return f"{self.name}-{self.index}-encode"

    @property
    def needs_script(self) -> bool:
        """Joining title and text, and refusing a document with nothing to encode, take the
        `script` processor (ingest-common)."""
        return self.title_field is not None


@dataclass(frozen=True)
class ConnectedEncoder:
    """The ids the cluster now knows the encoder service by."""

    document_model_id: str
    query_model_id: str
    pipeline_id: str


def _call(
    client: OpenSearch,
    method: str,
    path: str,
    body: Any = None,
    what: str = "",
    if_missing: Any = None,
) -> Any:
    """One ml-commons request; a failure is an EngineError, a 404 `if_missing` when given."""
    try:
        return client.transport.perform_request(method, path, body=body)
    except (TransportError, ConnectionError) as exc:
        if if_missing is not None and exc.status_code == 404:
            return if_missing
        raise EngineError(describe_error(exc, what or f"{method} {path}")) from exc


def check_plugins(
    client: OpenSearch, info: EngineInfo, needs_set_processor: bool, needs_script: bool = False
) -> None:
    """One clear line naming the missing plugin and the feature that needs it."""
    if info.engine != "opensearch":
        raise EngineError(
            f"connect-model needs OpenSearch with ml-commons and neural-search; "
            f"this cluster is {info.engine} {info.version}"
        )
    rows = _call(client, "GET", "/_cat/plugins?format=json", what="list plugins")
    installed = {str(row.get("component")) for row in rows or []}
    missing = [
        f"{plugin} for {feature}"
        for plugin, feature in REQUIRED_PLUGINS.items()
        if plugin not in installed
    ]
    if missing:
        raise EngineError(f"connect-model needs the OpenSearch plugin(s) {'; '.join(missing)}")
    wanted = {"set": needs_set_processor, "script": needs_script, "remove": needs_script}
    if any(wanted.values()):
        nodes = _call(client, "GET", "/_nodes/ingest", what="list ingest processors")
        for node in nodes.get("nodes", {}).values():
            kinds = {p.get("type") for p in node.get("ingest", {}).get("processors", [])}
            if needs_set_processor and "set" not in kinds:
                raise EngineError(
                    "--failure-index needs the ingest-common module (its `set` processor) "
                    f"on every node; node {node.get('name')!r} lacks it"
                )
            if needs_script and not {"script", "remove"} <= kinds:
                raise EngineError(
                    "encoding title + text as `splade-es encode` does, and refusing documents "
                    "with nothing to encode, needs the ingest-common module (`script` processor) "
                    f"on every node; node {node.get('name')!r} lacks it"
                )


def _private_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback


def apply_cluster_settings(client: OpenSearch, setup: RemoteModelSetup) -> None:
    """Trust the service's URL (added to any trusted patterns already set) and, for a single-node
    cluster, let ML run on data nodes without the memory breakers refusing small heaps."""
    key = "plugins.ml_commons.trusted_connector_endpoints_regex"
    current = _call(client, "GET", "/_cluster/settings?include_defaults=true&flat_settings=true")
    patterns: list[str] = []
    for scope in ("defaults", "persistent", "transient"):
        value = current.get(scope, {}).get(key)
        if isinstance(value, list):
            patterns = value
    ours = "^" + re.escape(setup.base_url) + "(/.*)?$"
    settings: dict[str, Any] = {}
    if ours not in patterns:
        settings[key] = [*patterns, ours]
    host = urlsplit(setup.service_url).hostname or ""
    if _private_host(host):
        settings["plugins.ml_commons.connector.private_ip_enabled"] = True
    if setup.relax_node_settings:
        settings["plugins.ml_commons.only_run_on_ml_node"] = False
        settings["plugins.ml_commons.native_memory_threshold"] = 100
        settings["plugins.ml_commons.jvm_heap_memory_threshold"] = 100
    if settings:
        _call(client, "PUT", "/_cluster/settings", {"persistent": settings}, "cluster settings")


def connector_body(setup: RemoteModelSetup, side: str) -> dict[str, Any]:
    """A remote connector whose `predict` action posts `{"texts": [...]}` to one service route.

    ml-commons requires a non-empty `credential` map, which it encrypts and never returns. With
    credentials in `--service-url`, the map holds them and the `Authorization` header is built
    from it (`${credential.basic_auth}`); otherwise it holds a placeholder.
    """
    headers = {"content-type": "application/json"}
    credential = {"unused": "the splade-es service takes no credential"}
    if setup.service_auth:
        headers["Authorization"] = "Basic ${credential.basic_auth}"
        credential = {"basic_auth": setup.service_auth}
    return {
        "name": f"{setup.name}-{side}",
        "description": f"splade-es encoder service, {side} route",
        "version": "1",
        "protocol": "http",
        "parameters": {},
        "credential": credential,
        "client_config": {
            "read_timeout": setup.read_timeout_s,
            "connection_timeout": 10,
            "max_connection": 32,
        },
        "actions": [
            {
                "action_type": "predict",
                "method": "POST",
                "url": f"{setup.base_url}/encode/{side}",
                "headers": headers,
                "request_body": '{"texts": ${parameters.texts}}',
                "pre_process_function": "connector.pre_process.cohere.embedding",
            }
        ],
    }


def register_remote_model(
    client: OpenSearch, setup: RemoteModelSetup, side: str, wait_s: float = 120
) -> str:
    """The deployed `remote` model for one route: the one an earlier run registered for the same
    service and settings (deployed again if needed), else a new connector + model."""
    model_id = registered_model(client, setup, side)
    reused = model_id is not None
    if model_id is None:
        connector = _call(
            client,
            "POST",
            "/_plugins/_ml/connectors/_create",
            connector_body(setup, side),
            f"create the {side} connector",
        )
        registered = _call(
            client,
            "POST",
            "/_plugins/_ml/models/_register?deploy=true",
            {
                "name": f"{setup.name}-{side}",
                "function_name": "remote",
                "description": f"splade-es encoder service at {setup.base_url}, {side}",
                "connector_id": connector["connector_id"],
            },
            f"register the {side} model",
        )
        model_id = str(registered["model_id"])
    elif setup.service_auth:  # the stored credential cannot be compared: set it again
        _update_credential(client, model_id, connector_body(setup, side)["credential"])
    return _deployed(client, model_id, side, wait_s, deploy=reused)


def _update_credential(client: OpenSearch, model_id: str, credential: dict[str, str]) -> None:
    """Replace a reused connector's credential. ml-commons refuses while any model of the
    connector is deployed (an earlier run's too, which a search may not show yet), and names
    them: undeploy those it names, wait for undeploying (asynchronous) to end, and try again."""
    model = _call(client, "GET", f"/_plugins/_ml/models/{model_id}", what="model")
    path = f"/_plugins/_ml/connectors/{model['connector_id']}"
    users = {model_id}
    for _ in range(5):
        _undeploy_all(client, users)
        try:
            client.transport.perform_request("PUT", path, body={"credential": credential})
            return
        except TransportError as exc:
            named = (
                set(re.findall(r"[\w-]{20}", str(exc.info))) if exc.status_code == 400 else set()
            )
            if not named - users:  # nothing new to undeploy: a refusal of another kind
                raise EngineError(describe_error(exc, "update the connector's credential")) from exc
            users |= named
    raise EngineError(f"update the connector's credential: its models stay deployed ({users})")


def _undeploy_all(client: OpenSearch, ids: set[str]) -> None:
    for user in ids:
        _call(client, "POST", f"/_plugins/_ml/models/{user}/_undeploy", {}, "undeploy")
    deadline = time.monotonic() + 60  # undeploying is asynchronous
    while time.monotonic() < deadline:
        states = [
            _call(client, "GET", f"/_plugins/_ml/models/{user}", what="model").get("model_state")
            for user in ids
        ]
        if not any(state in ("DEPLOYED", "DEPLOYING", "PARTIALLY_DEPLOYED") for state in states):
            return
        time.sleep(0.5)


def registered_model(client: OpenSearch, setup: RemoteModelSetup, side: str) -> str | None:
    """A model named for this setup whose connector calls the same route with the same settings,
    so re-running `connect-model` reuses it instead of piling up connectors."""
    name, wanted = f"{setup.name}-{side}", connector_body(setup, side)
    found = _call(
        client,
        "POST",
        "/_plugins/_ml/models/_search",
        {"size": 100, "query": {"term": {"name.keyword": name}}},
        f"look up the {side} model",
        if_missing={},  # no model registered on this cluster yet
    )
    for hit in found.get("hits", {}).get("hits", []):
        connector_id = hit["_source"].get("connector_id")
        if not connector_id or hit["_source"].get("model_state") == "REGISTERING":
            continue
        connector = _call(
            client, "GET", f"/_plugins/_ml/connectors/{connector_id}", what="connector"
        )
        if _same_connector(connector, wanted):
            return str(hit["_id"])
    return None


def _same_connector(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """The settings `connector_body` chose, as ml-commons stores them (it upper-cases the action
    type and fills in client_config defaults)."""

    def actions(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**a, "action_type": str(a.get("action_type")).lower()} for a in body["actions"]]

    config = found.get("client_config") or {}
    return actions(found) == actions(wanted) and all(
        config.get(key) == value for key, value in wanted["client_config"].items()
    )


def _deployed(client: OpenSearch, model_id: str, side: str, wait_s: float, deploy: bool) -> str:
    """Wait until the model is deployed; with `deploy`, deploy an idle one first (a cluster restart
    undeploys remote models). Its id."""
    deadline = time.monotonic() + wait_s
    state, asked = "?", not deploy
    while time.monotonic() < deadline:
        model = _call(client, "GET", f"/_plugins/_ml/models/{model_id}", what="model state")
        state = str(model.get("model_state"))
        if state == "DEPLOYED":
            return model_id
        if state in ("DEPLOY_FAILED", "PARTIALLY_DEPLOYED_FAILED"):
            break
        if state in ("REGISTERED", "UNDEPLOYED") and not asked:
            _call(client, "POST", f"/_plugins/_ml/models/{model_id}/_deploy", {}, "deploy")
            asked = True
        time.sleep(0.5)
    raise EngineError(f"{side} model {model_id} did not deploy (state {state})")


ENCODED_TEXT_FIELD = "_splade_es_text"
"""Scratch field holding the text the pipeline encodes; removed before the document is stored."""

DOCUMENT_TEXT_SCRIPT = """
def title = params.title == null ? '' : ctx[params.title];
def text = ctx[params.text];
if (title == null) { title = ''; }
if (!(title instanceof String)) {
  throw new IllegalArgumentException("'" + params.title + "' must be a string");
}
if (text == null) {
  throw new IllegalArgumentException("nothing to encode: missing '" + params.text + "'");
}
if (!(text instanceof String)) {
  throw new IllegalArgumentException("'" + params.text + "' must be a string");
}
if (title.trim().isEmpty() && text.trim().isEmpty()) {
  throw new IllegalArgumentException(
      "nothing to encode: empty '" + params.title + "' and '" + params.text + "'");
}
ctx[params.target] = title.isEmpty() ? text : (title + ' ' + text).trim();
"""
"""`corpus.parse_document` + `Document.full_text` in Painless: the same refusals (no text, not a
string, nothing but blanks) and the same joined string, so a document gets the vector `encode`
gives it. (Python's `strip` and Java's `trim` differ only on exotic Unicode spaces at the ends.)"""


def pipeline_body(setup: RemoteModelSetup, document_model_id: str) -> dict[str, Any]:
    """A `sparse_encoding` pipeline writing the service's document weights into the SPLADE field;
    with a title field, a script first builds title + text (refusing a document with nothing to
    encode) into a scratch field that is removed afterwards."""
    source = setup.source_field
    processors: list[dict[str, Any]] = []
    if setup.title_field is not None:
        source = ENCODED_TEXT_FIELD
        params = {"title": setup.title_field, "text": setup.source_field, "target": source}
        processors.append(
            {
                "script": {
                    "tag": "splade-es-document-text",
                    "lang": "painless",
                    "source": DOCUMENT_TEXT_SCRIPT.strip(),
                    "params": params,
                }
            }
        )
    processors.append(
        {
            "sparse_encoding": {
                "tag": "splade-es-encode",
                "model_id": document_model_id,
                "field_map": {source: setup.field},
                "batch_size": setup.batch_size,
            }
        }
    )
    if setup.title_field is not None:
        processors.append({"remove": {"field": source}})
    read = f"{setup.title_field} + {setup.source_field}" if setup.title_field else source
    body: dict[str, Any] = {
        "description": f"SPLADE: {read} -> {setup.field} via {setup.base_url}",
        "processors": processors,
    }
    if setup.failure_index:
        body["on_failure"] = [
            {"set": {"field": "_index", "value": setup.failure_index}},
            {"set": {"field": FAILURE_MESSAGE_FIELD, "value": "{{ _ingest.on_failure_message }}"}},
        ]
    return body


def service_profile(setup: RemoteModelSetup, wait_s: float = 120.0) -> FieldProfile:
    """The FieldProfile the service answers on `GET /ready` (its model, query model and factor),
    waiting while it loads its model. Read from here, so the service must be reachable from where
    `connect-model` runs as well as from the cluster; EngineError says why not."""
    request = urllib.request.Request(f"{setup.base_url}/ready")
    if setup.service_auth:
        request.add_header("Authorization", f"Basic {setup.service_auth}")
    where = f"{redact(setup.base_url)}/ready"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read())
            break
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise EngineError(f"encoder service {where}: HTTP {exc.code}") from None
            body = json.loads(exc.read() or b"{}")
            if "error" in body:
                raise EngineError(f"encoder service {where}: {body['error']}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EngineError(
                f"cannot read the encoder service's profile at {where} ({reason}): connect-model "
                "records the service's model and factor in the index, so run it where the "
                "service is reachable"
            ) from None
        time.sleep(1.0)
    try:
        return FieldProfile.from_json(body.get("profile"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise EngineError(f"encoder service {where}: no usable profile ({exc})") from None


def connect_encoder_service(
    client: OpenSearch,
    info: EngineInfo,
    setup: RemoteModelSetup,
    profile: FieldProfile | None = None,
) -> ConnectedEncoder:
    """Plugins checked; settings, two remote models, the index (created from `mappings/` if
    missing, recording how the service fills the field: `profile`, read from the service's
    `/ready` when not given), the pipeline, and the pipeline as the index's default.

    An existing index whose field was filled otherwise (another model or factor) is refused, as
    `index-vectors` refuses such a file."""
    check_plugins(
        client,
        info,
        needs_set_processor=setup.failure_index is not None,
        needs_script=setup.needs_script,
    )
    made = profile if profile is not None else service_profile(setup)
    ensure_index(client, info, setup.index, setup.field, splade=SpladeField.of(made))
    apply_cluster_settings(client, setup)
    document_model = register_remote_model(client, setup, "documents")
    query_model = register_remote_model(client, setup, "queries")
    _call(
        client,
        "PUT",
        f"/_ingest/pipeline/{setup.pipeline_id}",
        pipeline_body(setup, document_model),
        "create the ingest pipeline",
    )
    _call(
        client,
        "PUT",
        f"/{setup.index}/_settings",
        {"index.default_pipeline": setup.pipeline_id},
        f"set the default pipeline of {setup.index!r}",
    )
    return ConnectedEncoder(document_model, query_model, setup.pipeline_id)


def neural_sparse_query(field: str, text: str, query_model_id: str) -> dict[str, Any]:
    """The query clause that has the cluster encode `text` through the service."""
    return {"neural_sparse": {field: {"query_text": text, "model_id": query_model_id}}}
