"""The encoder service run for real (uvicorn on a free port) and an OpenSearch node with ml-commons."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import httpx
import pytest

from splade_es.records import FieldProfile
from splade_es.serve.app import Encoder, EncoderService, ServiceLimits, create_app
from splade_es.serve.server import BackgroundServer
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR, SparseVector


class FaultyEncoder:
    """Wraps a real encoder; a text containing `fail_marker` raises, one containing `block_marker`
    waits for `release` (fault injection around the real model, not a stand-in for it)."""

    fail_marker = "<<fail>>"
    block_marker = "<<block>>"

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.blocked = threading.Event()

    def _check(self, texts: Sequence[str]) -> None:
        if any(self.fail_marker in t for t in texts):
            raise ValueError("injected encoder failure")
        if any(self.block_marker in t for t in texts):
            self.blocked.set()
            self.release.wait(timeout=60)

    def encode_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        self._check(texts)
        return self.inner.encode_documents(texts, batch_size, progress)

    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        self._check(texts)
        return self.inner.encode_queries(texts, batch_size, progress)


@contextmanager
def running_service(
    load: Callable[[], Encoder],
    limits: ServiceLimits = ServiceLimits(),
    wait_ready: bool = True,
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
) -> Iterator[str]:
    """The real app served over HTTP, describing itself as splade-tiny at `quantization` (the
    model every test here serves); yields its base URL (ready, unless told not to wait)."""
    service = EncoderService(
        load, limits, quantization, describe=lambda _: FieldProfile(model="splade-tiny")
    )
    with BackgroundServer(create_app(service)) as server:
        if wait_ready:
            for _ in range(600):
                if httpx.get(f"{server.url}/ready").status_code == 200:
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("service never became ready")
        yield server.url


@pytest.fixture(scope="session")
def service_url(splade_tiny) -> Iterator[str]:
    """splade-tiny behind the service with default limits, shared by the read-only tests."""
    with running_service(lambda: splade_tiny) as url:
        yield url


# Engine node -------------------------------------------------------------------------------------


def start_ml_node() -> str:
    """The one place that starts OpenSearch (the default version, 3.6.0) with neural-search, k-NN,
    job-scheduler and ml-commons; returns its URL. SPLADE_ES_ML_NODE_URL points the tests at a
    node started elsewhere (e.g. 2.19.6 with `--plugins ml`, the previous generation)."""
    url = os.environ.get("SPLADE_ES_ML_NODE_URL")
    if url:
        return url
    from dataclasses import replace

    from splade_es_workshop.engines import start

    from tests.conftest import engine_spec

    spec = replace(engine_spec("opensearch"), heap="1g", plugins=frozenset({"ml"}))
    return str(start(replace(spec, port=spec.port + 80)))


@pytest.fixture(scope="session")
def ml_node_url() -> str:
    return start_ml_node()
