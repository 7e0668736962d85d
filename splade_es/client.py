"""Connecting to an Elasticsearch or OpenSearch cluster and finding out which one it is.

One HTTP client (opensearch-py's) serves both engines: the REST calls used here (index admin,
`_bulk`, `_search`, `_msearch`, `_count`) are the same on both, and unlike the Elasticsearch 8+
client it does not refuse to talk to OpenSearch. Credentials come from options or environment
variables and are never printed.

A cluster of several nodes is given as several URLs (comma-separated in one string, as
``--url`` / ``SPLADE_ES_URL`` take them): the client round-robins over them and retries a failed
request on the next one, and with ``sniff`` asks the cluster for its other nodes, the way
opensearch-py and elasticsearch-py do with a list of hosts.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from opensearchpy import OpenSearch
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    ConnectionError,
    TransportError,
)

from splade_es.mappings import Engine, major_version
from splade_es.secret_files import PrivateSecrets, read_secrets

DEFAULT_URL = "http://127.0.0.1:9200"


class EngineError(RuntimeError):
    """A clear, one-line problem talking to the engine (no stack trace for users)."""


_SECRETS: set[str] = set()
_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def remember_secret(value: str | None) -> None:
    """Register a credential so that `redact` hides it from every message shown to users."""
    if value and len(value) >= 3:
        _SECRETS.add(value)
        if ":" in value:  # id:key API keys also travel base64-encoded
            _SECRETS.add(base64.b64encode(value.encode()).decode())


def redact(text: str) -> str:
    """`text` with every registered secret, and any user:password@ in a URL, replaced by ***."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _USERINFO.sub(r"\1***@", text)


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(URL without user:password@, user, password); the URL must be http(s)://host[:port]."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cluster URL {redact(url)!r} must look like http(s)://host[:port]")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    remember_secret(password)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), user, password


def split_urls(value: str) -> tuple[str, tuple[str | None, str | None]]:
    """(comma-joined URLs without credentials, (user, password) found in them).

    Every URL must be http(s)://host[:port]; credentials may sit in any of them but must agree.
    """
    urls: list[str] = []
    found: set[tuple[str, str | None]] = set()
    for part in value.split(","):
        if not part.strip():
            continue
        url, user, password = split_credentials(part)
        urls.append(url)
        if user:
            found.add((user, password))
    if not urls:
        raise ValueError("cluster URL is empty: use http(s)://host[:port][,http(s)://host2...]")
    if len(found) > 1:
        raise ValueError("the cluster URLs carry different credentials: give one user")
    user, password = next(iter(found)) if found else (None, None)
    return ",".join(urls), (user, password)


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the cluster is and how to authenticate; the repr hides secrets."""

    url: str = DEFAULT_URL
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    timeout: float = 60.0
    compress: bool = False
    """gzip request bodies: worth it over slow links, a CPU cost on a local node."""
    max_retries: int = 3
    """The transport's own retries of a whole request (timeouts, 502/503/504)."""
    sniff: bool = False
    """Ask the cluster for its nodes at start (and after a node fails) and spread requests over
    them; the URLs given are only where to start."""
    secrets_file: str | None = None
    """Where a pipeline worker finds the password / API key this copy does not hold (`sealed`)."""

    def __post_init__(self) -> None:
        url, (user, password) = split_urls(self.url)
        object.__setattr__(self, "url", url)
        if user and not self.username:
            object.__setattr__(self, "username", user)
        if password and not self.password:
            object.__setattr__(self, "password", password)
        remember_secret(self.password)
        remember_secret(self.api_key)

    @property
    def urls(self) -> list[str]:
        """Each node's URL (one for a single node)."""
        return self.url.split(",")

    @classmethod
    def from_env(cls, **overrides: Any) -> ConnectionSettings:
        """Options win over `SPLADE_ES_URL`, `SPLADE_ES_USER`, `SPLADE_ES_PASSWORD`,
        `SPLADE_ES_API_KEY`, `SPLADE_ES_CA_CERTS` and `SPLADE_ES_SNIFF` (1/true); credentials inside the URL
        (`https://user:pass@host`) work too and are never shown; `SPLADE_ES_TIMEOUT` (seconds)."""
        env = {
            "url": os.environ.get("SPLADE_ES_URL"),
            "username": os.environ.get("SPLADE_ES_USER"),
            "password": os.environ.get("SPLADE_ES_PASSWORD"),
            "api_key": os.environ.get("SPLADE_ES_API_KEY"),
            "ca_certs": os.environ.get("SPLADE_ES_CA_CERTS"),
        }
        values: dict[str, Any] = {k: v for k, v in env.items() if v}
        if os.environ.get("SPLADE_ES_SNIFF", "").lower() in ("1", "true", "yes"):
            values["sniff"] = True
        if timeout := os.environ.get("SPLADE_ES_TIMEOUT"):
            try:
                seconds = float(timeout)
            except ValueError:
                seconds = float("nan")
            if not 0 < seconds < float("inf"):
                raise ValueError(f"SPLADE_ES_TIMEOUT={timeout!r}: give seconds, a number > 0")
            values["timeout"] = seconds
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def sealed(self, secrets: PrivateSecrets) -> ConnectionSettings:
        """A copy without the password and API key, which go to a private file of `secrets`:
        what is shipped to pipeline workers (see `splade_es.secret_files`)."""
        values = {"password": self.password, "api_key": self.api_key}
        if not any(values.values()):
            return self
        path = secrets.write({k: v for k, v in values.items() if v})
        return replace(self, password=None, api_key=None, secrets_file=path)

    def unsealed(self) -> ConnectionSettings:
        """The secrets back from the file `sealed` wrote, or, where that file is not on this
        machine (a remote worker), from this process's `SPLADE_ES_PASSWORD` / `SPLADE_ES_API_KEY`."""
        if not self.secrets_file or self.password or self.api_key:
            return self
        values = read_secrets(self.secrets_file)
        if values is None:
            values = {
                "password": os.environ.get("SPLADE_ES_PASSWORD", ""),
                "api_key": os.environ.get("SPLADE_ES_API_KEY", ""),
            }
            if not any(values.values()):
                raise EngineError(
                    f"the credentials for {self.url} are not on this worker: the launcher's "
                    "private file is gone or on another machine; set SPLADE_ES_PASSWORD or "
                    "SPLADE_ES_API_KEY in the workers' environment"
                )
        return replace(
            self,
            password=values.get("password") or None,
            api_key=values.get("api_key") or None,
            secrets_file=None,
        )


@dataclass(frozen=True)
class EngineInfo:
    """What `GET /` says about the cluster."""

    engine: Engine
    version: str

    @property
    def major(self) -> int:
        return major_version(self.version)


def connect(settings: ConnectionSettings) -> OpenSearch:
    """An HTTP client for the cluster (no request is made yet)."""
    settings = settings.unsealed()
    headers = {}
    if settings.api_key:
        key = settings.api_key
        if ":" in key:  # id:secret form -> the base64 form both engines accept
            key = base64.b64encode(key.encode()).decode()
        headers["Authorization"] = f"ApiKey {key}"
    auth = (settings.username, settings.password or "") if settings.username else None
    # several hosts: the transport's pool round-robins and marks a failing node dead for a while,
    # retrying the request on the next one (max_retries)
    sniffing: dict[str, Any] = {}
    if settings.sniff:
        sniffing = {
            "sniff_on_start": True,
            "sniff_on_connection_fail": True,
            "sniffer_timeout": 60,
            "sniff_timeout": min(settings.timeout, 10.0),
        }
    return OpenSearch(
        hosts=settings.urls,
        http_auth=auth,
        headers=headers or None,
        ca_certs=settings.ca_certs,
        verify_certs=settings.verify_certs,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        retry_on_timeout=True,
        retry_on_status=(502, 503, 504),
        http_compress=settings.compress,
        **sniffing,
    )


def describe_error(exc: Exception, url: str) -> str:
    """A one-line message for the usual ways a cluster call fails (secrets redacted)."""
    return redact(" ".join(_describe(exc, redact(url)).split()))


def _describe(exc: Exception, url: str) -> str:
    if isinstance(exc, AuthenticationException):
        return f"{url}: authentication failed (HTTP 401): check the user/password or API key"
    if isinstance(exc, AuthorizationException):
        return f"{url}: permission denied (HTTP 403): {exc.error}"
    if isinstance(exc, ConnectionError):
        return f"cannot reach {url}: {exc.info if exc.info else exc.error}"
    if isinstance(exc, TransportError):
        info = exc.info if isinstance(exc.info, str | dict) else ""
        return f"{url}: HTTP {exc.status_code}: {exc.error} {str(info)[:300]}".strip()
    return f"{url}: {exc}"


def detect(client: OpenSearch, url: str = DEFAULT_URL) -> EngineInfo:
    """Ask the cluster what it is: OpenSearch names its distribution in `GET /`, Elasticsearch does not.

    Elasticsearch's integ-test build lacks the `rest-root` module (`GET /` answers 405), so the
    version then comes from `GET /_nodes/_local`.
    """
    try:
        try:
            root = client.info()
        except TransportError as exc:
            if exc.status_code != 405:
                raise
            nodes = client.transport.perform_request("GET", "/_nodes/_local")
            node = next(iter(nodes["nodes"].values()))
            root = {"version": {"number": node["version"]}}
    except (TransportError, ConnectionError) as exc:
        raise EngineError(describe_error(exc, url)) from exc
    version = root.get("version", {})
    engine: Engine = (
        "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
    )
    return EngineInfo(engine, str(version.get("number", "0")))


def open_cluster(settings: ConnectionSettings) -> tuple[OpenSearch, EngineInfo]:
    """Connect and identify the engine, failing with a one-line error."""
    client = connect(settings)
    return client, detect(client, settings.url)
