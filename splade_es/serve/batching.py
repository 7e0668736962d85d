"""Micro-batching: concurrent requests for the same side share one model call.

Requests wait in a bounded asyncio queue (a full queue is refused at once, so overload shows up
as 503s rather than as unbounded memory and latency). One worker task takes the oldest request,
adds every queued request of the same side that still fits `max_batch_texts` (waiting at most
`max_wait_s` for more to arrive), and runs the encoder in a thread. One worker means one model call
at a time: the encoder is not thread-safe (pooling swaps a model layer while it runs).

If a merged call fails, each request in it is retried alone, so a text that breaks the encoder
fails only the request that carried it; the worker itself never dies of an encoding error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Side = Literal["documents", "queries"]
EncodeFn = Callable[[Side, Sequence[str]], list[dict[str, float]]]


class QueueFull(RuntimeError):
    """The request queue is at its bound; the client should retry later (HTTP 503)."""


class EncodingFailed(RuntimeError):
    """The encoder raised on this request's texts (HTTP 500 with the reason)."""


@dataclass
class BatchStats:
    """Counters the service exposes, e.g. to see that concurrent requests were merged."""

    requests: int = 0
    texts: int = 0
    model_calls: int = 0
    merged_calls: int = 0
    """Model calls that served more than one request."""
    max_requests_per_call: int = 0
    max_texts_per_call: int = 0
    rejected_queue_full: int = 0
    failed_requests: int = 0
    encode_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Job:
    side: Side
    texts: list[str]
    future: asyncio.Future[list[dict[str, float]]]
    queued_at: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Bounded queue + one worker that merges same-side requests into one encoder call."""

    def __init__(
        self,
        encode: EncodeFn,
        max_batch_texts: int = 32,
        max_queue: int = 64,
        max_wait_s: float = 0.002,
    ) -> None:
        if max_batch_texts < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch_texts and max_queue must be >= 1, max_wait_s >= 0")
        self.encode = encode
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_queue)
        self._held: _Job | None = None  # a job of the other side, first in line next round
        self._worker: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize() + (self._held is not None)

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="encoder")

    async def stop(self) -> None:
        """Stop the worker; requests still waiting fail with QueueFull (the service is going away)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        pending = [self._held] if self._held else []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        self._held = None
        for job in pending:
            if not job.future.done():
                job.future.set_exception(QueueFull("the service is shutting down"))

    async def submit(self, side: Side, texts: Sequence[str]) -> list[dict[str, float]]:
        """Queue one request and wait for its vectors (one dict per text, in order)."""
        job = _Job(side, list(texts), asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats.rejected_queue_full += 1
            raise QueueFull(f"{self._queue.maxsize} requests already queued") from None
        self.stats.requests += 1
        self.stats.texts += len(job.texts)
        return await job.future

    async def _next_job(self, timeout: float | None) -> _Job | None:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _collect(self) -> list[_Job]:
        """The oldest job plus same-side jobs that fit, waiting up to `max_wait_s` for them."""
        first = await self._next_job(None)
        assert first is not None
        jobs, size = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_texts:
            job = await self._next_job(deadline - time.monotonic())
            if job is None:
                break
            if job.side != first.side or size + len(job.texts) > self.max_batch_texts:
                self._held = job
                break
            jobs.append(job)
            size += len(job.texts)
        return [j for j in jobs if not j.future.done()]  # drop clients that went away

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            if jobs:
                await self._serve(jobs)

    async def _call(self, side: Side, texts: list[str]) -> list[dict[str, float]]:
        started = time.monotonic()
        try:
            return await asyncio.to_thread(self.encode, side, texts)
        finally:
            self.stats.model_calls += 1
            self.stats.encode_seconds += time.monotonic() - started

    async def _serve(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        self.stats.max_requests_per_call = max(self.stats.max_requests_per_call, len(jobs))
        self.stats.max_texts_per_call = max(self.stats.max_texts_per_call, len(texts))
        self.stats.merged_calls += len(jobs) > 1
        try:
            vectors = await self._call(jobs[0].side, texts)
            if len(vectors) != len(texts):
                raise EncodingFailed(f"encoder returned {len(vectors)} vectors for {len(texts)}")
        except Exception as exc:
            if len(jobs) == 1:
                self._fail(jobs[0], exc)
                return
            for job in jobs:  # isolate the request that broke the merged call
                await self._serve([job])
            return
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(vectors[start : start + len(job.texts)])
            start += len(job.texts)

    def _fail(self, job: _Job, exc: Exception) -> None:
        self.stats.failed_requests += 1
        if not job.future.done():
            reason = exc if isinstance(exc, EncodingFailed) else f"{type(exc).__name__}: {exc}"
            job.future.set_exception(EncodingFailed(str(reason)))
