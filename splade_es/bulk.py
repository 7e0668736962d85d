"""Bulk writing of encoded records on the client's own helpers, plus what they lack.

`parallel_bulk` / `streaming_bulk` chunk by count and bytes and send; the client's transport retries
whole requests. What this module adds is the guarantee that every record gets a final outcome:
- items refused for a transient reason (429, 5xx, connection loss) are re-sent with exponential
  backoff; if the engine stays away, `EngineUnavailable` stops the run (the caller saves progress);
- a chunk refused as a whole for a non-transient reason (HTTP 413 too large, 400 validation of one
  item) is split in halves until the offending record stands alone and is dead-lettered;
- items the engine refuses one by one (bad weights, mapping errors) are dead-lettered with the
  engine's reason.
`_id` = record id, so re-sending is an overwrite, never a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as ClientConnectionError
from opensearchpy.helpers import parallel_bulk, streaming_bulk

from splade_es.client import EngineError, describe_error
from splade_es.records import DeadLetter, EncodedRecord

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BulkAction = Literal["index", "update"]
Outcome = tuple[int, EncodedRecord, DeadLetter | None]
"""(input position, record, None if the engine acknowledged it else its dead letter)."""


class EngineUnavailable(EngineError):
    """The engine stayed unreachable or overloaded through every retry."""


@dataclass(frozen=True)
class BulkOptions:
    """Chunking (count and bytes), concurrency and retry policy."""

    chunk_size: int = 500
    max_chunk_bytes: int = 10 * 1024 * 1024
    concurrency: int = 2
    max_retries: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff_s, self.backoff_s * 2**attempt))


def item_error_reason(info: dict[str, Any]) -> str:
    """The engine's reason for refusing one bulk item, with its cause."""
    error = info.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return reason
    return str(error)


class BulkWriter:
    """Writes (position, record) pairs into one index and yields each record's final outcome."""

    def __init__(
        self,
        client: OpenSearch,
        index: str,
        field: str = "splade",
        action: BulkAction = "index",
        options: BulkOptions = BulkOptions(),
        source: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.source = source
        self.index = index
        self.field = field
        self.action = action
        self.options = options
        self.sleep = sleep
        self.retries = 0

    def bulk_action(self, record: EncodedRecord) -> dict[str, Any]:
        """The helper's action: the whole document, or (upgrade) only the field as a partial update."""
        if self.action == "update":
            return {
                "_op_type": "update",
                "_index": self.index,
                "_id": record.id,
                "doc": {self.field: record.features},
            }
        return {"_index": self.index, "_id": record.id, "_source": record.source(self.field)}

    def write(self, items: Iterable[tuple[int, EncodedRecord]]) -> Iterator[Outcome]:
        """Every record's outcome, acknowledged or dead-lettered (mostly in input order)."""
        sent: list[tuple[int, EncodedRecord]] = []  # appended by the helper's feeding thread

        def actions() -> Iterator[dict[str, Any]]:
            for position, record in items:
                sent.append((position, record))
                yield self.bulk_action(record)

        unsettled: list[tuple[int, EncodedRecord]] = []
        transient = False
        taken = 0
        for ok, item in self._stream(actions()):
            position, record = sent[taken]
            taken += 1
            if taken >= self.options.chunk_size * 4:  # drop what is consumed; keep the list short
                del sent[:taken]
                taken = 0
            verdict = self._verdict(ok, item)
            if verdict is None:
                yield position, record, None
            elif isinstance(verdict, DeadLetter):
                yield position, record, self._letter(verdict, position, record)
            else:
                unsettled.append((position, record))
                transient = transient or verdict == "retry"
                if len(unsettled) >= self.options.chunk_size:
                    yield from self._resend(unsettled, transient)
                    unsettled, transient = [], False
        if unsettled:
            yield from self._resend(unsettled, transient)

    def _resend(
        self, records: list[tuple[int, EncodedRecord]], transient: bool
    ) -> Iterator[Outcome]:
        """Settle records the streaming pass left open, after a pause if the engine was busy."""
        if transient:
            self.retries += 1
            self.sleep(self.options.delay(0))
        yield from self._settle(records, attempt=1 + transient)

    def _stream(self, actions: Iterator[dict[str, Any]]) -> Iterator[tuple[bool, Any]]:
        common: dict[str, Any] = {
            "chunk_size": self.options.chunk_size,
            "max_chunk_bytes": self.options.max_chunk_bytes,
            "raise_on_error": False,
            "raise_on_exception": False,
        }
        if self.options.concurrency > 1:
            return parallel_bulk(
                self.client, actions, thread_count=self.options.concurrency, **common
            )
        return streaming_bulk(self.client, actions, **common)

    def _verdict(self, ok: bool, item: dict[str, Any]) -> DeadLetter | str | None:
        """None: acknowledged; a DeadLetter: refused for good; "retry" / "split": not settled."""
        if ok:
            return None
        _, info = next(iter(item.items()))
        exception = info.get("exception")
        if exception is not None:  # the whole request failed
            status = exception.status_code
            if isinstance(exception, ClientConnectionError) or status in RETRYABLE_STATUS:
                return "retry"
            return "split"
        status = int(info.get("status", 500))
        if status in RETRYABLE_STATUS:
            return "retry"
        return DeadLetter("index", item_error_reason(info), status=status)

    def _letter(self, letter: DeadLetter, position: int, record: EncodedRecord) -> DeadLetter:
        """The dead letter with where the record came from and the record itself."""
        return replace(letter, source=self.source, line=position, id=record.id, record=record)

    def _settle(self, records: list[tuple[int, EncodedRecord]], attempt: int) -> Iterator[Outcome]:
        """Send `records` as one request until each has a final outcome."""
        if attempt > self.options.max_retries:
            raise EngineUnavailable(
                f"bulk into {self.index!r} gave up after {self.options.max_retries} retries "
                f"({len(records)} records unsettled): the engine stays unavailable or overloaded"
            )
        retry: list[tuple[int, EncodedRecord]] = []
        split = False
        failure: Any = None
        results = streaming_bulk(
            self.client,
            (self.bulk_action(r) for _, r in records),
            chunk_size=len(records),
            max_chunk_bytes=1 << 62,
            raise_on_error=False,
            raise_on_exception=False,
        )
        for (position, record), (ok, item) in zip(records, results, strict=True):
            verdict = self._verdict(ok, item)
            if verdict is None:
                yield position, record, None
            elif isinstance(verdict, DeadLetter):
                yield position, record, self._letter(verdict, position, record)
            elif verdict == "split":
                split = True
                failure = next(iter(item.values()))["exception"]
            else:
                retry.append((position, record))
        if split:
            if len(records) == 1:
                position, record = records[0]
                reason = describe_error(failure, f"bulk into {self.index!r}")
                letter = DeadLetter("index", reason, status=_status(failure))
                yield position, record, self._letter(letter, position, record)
            else:
                half = len(records) // 2
                yield from self._settle(records[:half], attempt)
                yield from self._settle(records[half:], attempt)
        if retry:
            self.retries += 1
            self.sleep(self.options.delay(attempt - 1))
            yield from self._settle(retry, attempt + 1)


def _status(exception: Any) -> int | None:
    status = getattr(exception, "status_code", None)
    return status if isinstance(status, int) else None
