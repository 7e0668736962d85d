"""The Starlette app: `POST /encode/documents` and `/encode/queries`, health, readiness, metrics.

Request: `{"texts": ["...", ...]}`. Answer: `[{feature: weight}, ...]`, one object per text, in
the shape an ml-commons remote connector hands to the `sparse_encoding` processor and to
`neural_sparse` `query_text` (weights as in `splade_es.serve.weights`).

Every bad request gets a 4xx with `{"error": reason}`: 400 malformed JSON (a nesting bomb or an
integer too long to convert included), 422 wrong shape or types or a text that is not Unicode,
413 body or text count over the limit, 503 queue full or model not loaded yet (with
`Retry-After`). A text that makes the encoder fail gives 500 for its request only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from splade_es.query import QueryPruning
from splade_es.records import FieldProfile
from splade_es.serve.batching import EncodingFailed, MicroBatcher, QueueFull, Side
from splade_es.serve.weights import document_weights, query_weights
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR, SparseVector

SIDES: tuple[Side, ...] = ("documents", "queries")


class Encoder(Protocol):
    """What the service needs from `SpladeEncoder` (any of its three model shapes)."""

    def encode_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]: ...

    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]: ...


@dataclass(frozen=True)
class ServiceLimits:
    """Bounds on what one request may ask and how much may wait."""

    max_body_bytes: int = 1 << 20
    max_texts: int = 256
    max_batch_texts: int = 32
    max_queue: int = 64
    max_wait_s: float = 0.002

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_texts", "max_batch_texts", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {self.max_wait_s}")


class BadRequest(Exception):
    """A request the service refuses, with the HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def error(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers or None)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it (or its declared length) passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, f"bad Content-Length {declared!r}")
        if int(declared) > limit:
            raise BadRequest(413, f"request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_texts(body: bytes, max_texts: int) -> list[str]:
    """`{"texts": [str, ...]}` -> the texts, or BadRequest naming what is wrong."""
    try:
        payload = json.loads(body)
    except RecursionError:  # a nesting bomb: `[[[[...]]]]` deeper than the parser recurses
        raise BadRequest(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # bad syntax or bytes, or an integer longer than Python converts
        raise BadRequest(400, f"malformed JSON: {str(exc).split(';')[0]}") from None
    if not isinstance(payload, dict) or "texts" not in payload:
        raise BadRequest(422, 'expected a JSON object {"texts": [string, ...]}')
    unknown = sorted(set(payload) - {"texts"})
    if unknown:
        raise BadRequest(422, f"unknown field(s) {unknown}; expected only 'texts'")
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise BadRequest(422, f"'texts' must be a list of strings, not {type(texts).__name__}")
    if len(texts) > max_texts:
        raise BadRequest(413, f"{len(texts)} texts in one request; the limit is {max_texts}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(422, f"texts[{i}] is {type(text).__name__}, not a string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # JSON's \ud800 escape decodes to a lone surrogate
            raise BadRequest(
                422, f"texts[{i}] is not valid Unicode (a lone surrogate at character {exc.start})"
            ) from None
    return texts


class EncoderService:
    """Holds the encoder (loaded in the background), the batcher and the limits."""

    def __init__(
        self,
        load: Callable[[], Encoder],
        limits: ServiceLimits = ServiceLimits(),
        quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
        query_pruning: QueryPruning = QueryPruning(),
        describe: Callable[[Any], FieldProfile] | None = None,
    ) -> None:
        self.load = load
        self.limits = limits
        self.quantization = quantization
        self.query_pruning = query_pruning
        self.describe = describe
        self.encoder: Encoder | None = None
        self.profile: FieldProfile | None = None
        """How the vectors this service answers are made, once the model is loaded: what
        `connect-model` records in the index, so the query side and `index-vectors` read the
        service's model and factor instead of assuming them."""
        self.load_error: str | None = None
        self.batcher = MicroBatcher(
            self.encode, limits.max_batch_texts, limits.max_queue, limits.max_wait_s
        )

    def encode(self, side: Side, texts: Sequence[str]) -> list[dict[str, float]]:
        """Runs in the batcher's thread: one model call for the merged texts."""
        assert self.encoder is not None
        size = self.limits.max_batch_texts
        if side == "documents":
            vectors = self.encoder.encode_documents(texts, batch_size=size)
            return [document_weights(v, self.quantization) for v in vectors]
        vectors = self.encoder.encode_queries(texts, batch_size=size)
        return [query_weights(v, self.quantization, self.query_pruning) for v in vectors]

    def _load_in_background(self) -> None:
        try:
            encoder = self.load()
            described = self.describe(encoder) if self.describe else FieldProfile()
            # the factor is the service's, whatever the description says
            self.profile = dataclasses.replace(described, quantization=self.quantization)
            self.encoder = encoder
        except Exception as exc:  # reported by /ready; the process stays up for /health
            self.load_error = f"{type(exc).__name__}: {exc}"

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        loader = threading.Thread(target=self._load_in_background, name="model-load", daemon=True)
        loader.start()
        self.batcher.start()
        try:
            yield
        finally:
            await self.batcher.stop()

    async def health(self, request: Request) -> JSONResponse:
        """Liveness: the process answers HTTP."""
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> JSONResponse:
        """Readiness: the model is loaded (503 until then, or with the reason it failed to load),
        and the FieldProfile of the vectors the service answers."""
        profile = self.profile.to_json() if self.profile is not None else None
        body: dict[str, Any] = {"ready": self.encoder is not None, "profile": profile}
        if self.load_error:
            body["error"] = f"model failed to load: {self.load_error}"
        return JSONResponse(body, status_code=200 if self.encoder is not None else 503)

    async def metrics(self, request: Request) -> JSONResponse:
        """Batching counters and the current queue depth."""
        return JSONResponse({**self.batcher.stats.as_json(), "queued": self.batcher.queued})

    def encode_route(self, side: Side) -> Callable[[Request], Awaitable[JSONResponse]]:
        """The endpoint for one side."""

        async def endpoint(request: Request) -> JSONResponse:
            return await self.encode_request(side, request)

        return endpoint

    async def encode_request(self, side: Side, request: Request) -> JSONResponse:
        try:
            texts = parse_texts(
                await read_body(request, self.limits.max_body_bytes), self.limits.max_texts
            )
        except BadRequest as exc:
            return error(exc.status, exc.reason)
        if self.encoder is None:
            reason = self.load_error or "the model is still loading"
            return error(503, f"not ready: {reason}", **{"Retry-After": "5"})
        if not texts:
            return JSONResponse([])
        try:
            vectors = await self.batcher.submit(side, texts)
        except QueueFull as exc:
            return error(503, f"busy: {exc}; retry later", **{"Retry-After": "1"})
        except EncodingFailed as exc:
            return error(500, f"encoding failed: {exc}")
        return JSONResponse(vectors)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return error(404, f"no route {request.method} {request.url.path}")


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    return error(405, f"{request.method} is not allowed on {request.url.path}")


def create_app(service: EncoderService) -> Starlette:
    """The ASGI app for one service (routes documents and queries to the matching side)."""
    app = Starlette(
        routes=[
            *(
                Route(f"/encode/{side}", service.encode_route(side), methods=["POST"])
                for side in SIDES
            ),
            Route("/health", service.health, methods=["GET"]),
            Route("/ready", service.ready, methods=["GET"]),
            Route("/metrics", service.metrics, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
        lifespan=service.lifespan,
    )
    app.state.service = service
    return app
