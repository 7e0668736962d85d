"""Bulk writing of encoded records on the client's own helpers, plus what they lack.

`parallel_bulk` / `streaming_bulk` chunk by count and bytes and send; the client's transport retries
whole requests. What this module adds is the guarantee that every record gets a final outcome:
- items refused for a transient reason (429, 5xx, connection loss) are re-sent with exponential
  backoff; if the engine stays away, `EngineUnavailable` stops the run (the caller saves progress);
- a chunk refused as a whole for a non-transient reason (HTTP 413 too large, a 429 whose reason
  says the request alone is over the node's indexing-pressure limit, 400 validation of one item)
  is split in halves until the offending record stands alone and is dead-lettered;
- a record refused with 429 when it was sent alone, through every retry, is dead-lettered too: a
  busy node would have taken one document in that time, so waiting longer cannot help;
- items the engine refuses one by one (bad weights, mapping errors) are dead-lettered with the
  engine's reason.
Chunks are sized to what the node says it accepts (`node_limits`), so a large `--bulk-bytes`
cannot make every request too big. `_id` = record id, so re-sending is an overwrite, never a
duplicate.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal
from weakref import WeakKeyDictionary

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as ClientConnectionError
from opensearchpy.exceptions import TransportError
from opensearchpy.helpers import parallel_bulk, streaming_bulk

from splade_es.client import EngineError, describe_error
from splade_es.records import DeadLetter, EncodedRecord

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BulkAction = Literal["index", "update"]
Outcome = tuple[int, EncodedRecord, DeadLetter | None]
"""(input position, record, None if the engine acknowledged it else its dead letter)."""

_PRESSURE = re.compile(r"(\w+)_operation_bytes=(\d+), max_\w+?_bytes=(\d+)")
"""The numbers in an indexing-pressure refusal (Elasticsearch 7.9+ and OpenSearch word it alike):
`rejected execution of coordinating operation [..., coordinating_operation_bytes=60000279,
max_coordinating_and_primary_bytes=53687091]`."""
_BYTE_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}


Pending = tuple[int, EncodedRecord, "Refusal"]
"""A record not settled yet: (input position, record, the engine's last refusal of it)."""


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


@dataclass(frozen=True)
class Refusal:
    """A refusal that does not settle a record yet: send it again later, or in a smaller request."""

    retry: bool
    """True: the engine was busy or away (wait and resend); False: split the request."""
    reason: str
    status: int | None = None


@dataclass(frozen=True)
class NodeLimits:
    """What the cluster's nodes say they accept, in bytes (None where a node does not say)."""

    indexing_pressure: int | None = None
    """`indexing_pressure.memory.limit`: bytes of indexing in flight on a node, all requests."""
    max_content_length: int | None = None
    """`http.max_content_length`: the largest HTTP request body, when set on the node."""

    def chunk_bytes(self, concurrency: int) -> int | None:
        """The most bytes one request may hold: under the HTTP limit, and small enough that
        `concurrency` requests in flight (plus one more, for other writers) stay under the
        indexing-pressure limit."""
        caps = []
        if self.indexing_pressure:
            caps.append(self.indexing_pressure // (concurrency + 1))
        if self.max_content_length:
            caps.append(self.max_content_length)
        return min(caps) if caps else None


def parse_bytes(value: Any) -> int | None:
    """A byte size as the engines write it (`100mb`, `53687091b`, a number), or None."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?b?)\s*", str(value).lower())
    return int(match.group(1)) * _BYTE_UNITS[match.group(2) or ""] if match else None


_KNOWN_LIMITS: WeakKeyDictionary[Any, NodeLimits] = WeakKeyDictionary()
"""Limits read per client: both are static node settings, and a Beam worker makes one BulkWriter
per batch."""


def node_limits(client: OpenSearch) -> NodeLimits:
    """The smallest limits any node states (`_nodes/stats/indexing_pressure`, `_nodes/settings`);
    a cluster that does not answer (no monitor privilege, an older engine) states none."""
    try:
        return _KNOWN_LIMITS[client]
    except (KeyError, TypeError):
        pass

    def smallest(values: Iterable[Any]) -> int | None:
        sizes = [size for size in map(parse_bytes, values) if size]
        return min(sizes) if sizes else None

    pressure = smallest(
        (node.get("indexing_pressure") or {}).get("memory", {}).get("limit_in_bytes")
        for node in _nodes(client, "/_nodes/stats/indexing_pressure")
    )
    http = smallest(
        (node.get("settings") or {}).get("http", {}).get("max_content_length")
        for node in _nodes(client, "/_nodes/settings")
    )
    limits = NodeLimits(pressure, http)
    if pressure or http:  # a node that did not answer may answer next time
        with contextlib.suppress(TypeError):  # a client that cannot be weakly referenced
            _KNOWN_LIMITS[client] = limits
    return limits


def _nodes(client: OpenSearch, path: str) -> list[dict[str, Any]]:
    try:
        answer = client.transport.perform_request("GET", path)
    except (TransportError, ClientConnectionError):
        return []
    nodes = answer.get("nodes") if isinstance(answer, dict) else None
    return [n for n in nodes.values() if isinstance(n, dict)] if isinstance(nodes, dict) else []


def over_pressure_limit(reason: str) -> bool:
    """Whether an indexing-pressure refusal says the request by itself is over the limit (so no
    amount of waiting lets it through)."""
    return any(int(size) > int(limit) for _, size, limit in _PRESSURE.findall(reason))


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
        self.notes: list[str] = []
        self._fitted = False

    def fit_to_node(self) -> None:
        """Cap the request size at what the node accepts (once, before the first request)."""
        if self._fitted:
            return
        self._fitted = True
        limits = node_limits(self.client)
        cap = limits.chunk_bytes(self.options.concurrency)
        if cap is None or cap >= self.options.max_chunk_bytes:
            return
        self.options = replace(self.options, max_chunk_bytes=cap)
        said = [
            f"{name} {value} bytes"
            for name, value in (
                ("indexing pressure limit", limits.indexing_pressure),
                ("http.max_content_length", limits.max_content_length),
            )
            if value
        ]
        self.notes.append(
            f"bulk requests capped at {cap} bytes to fit the node "
            f"({', '.join(said)}; {self.options.concurrency} requests in flight)"
        )

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
        self.fit_to_node()
        sent: list[tuple[int, EncodedRecord]] = []  # appended by the helper's feeding thread

        def actions() -> Iterator[dict[str, Any]]:
            for position, record in items:
                sent.append((position, record))
                yield self.bulk_action(record)

        unsettled: list[Pending] = []
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
                unsettled.append((position, record, verdict))
                transient = transient or verdict.retry
                if len(unsettled) >= self.options.chunk_size:
                    yield from self._resend(unsettled, transient)
                    unsettled, transient = [], False
        if unsettled:
            yield from self._resend(unsettled, transient)

    def _resend(self, records: list[Pending], transient: bool) -> Iterator[Outcome]:
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

    def _verdict(self, ok: bool, item: dict[str, Any]) -> DeadLetter | Refusal | None:
        """None: acknowledged; a DeadLetter: refused for good; a Refusal: not settled yet."""
        if ok:
            return None
        _, info = next(iter(item.items()))
        exception = info.get("exception")
        if exception is not None:  # the whole request failed
            status = _status(exception)
            reason = self._request_reason(exception)
            if isinstance(exception, ClientConnectionError):
                return Refusal(True, reason, status)
            if status in RETRYABLE_STATUS and not over_pressure_limit(reason):
                return Refusal(True, reason, status)
            return Refusal(False, reason, status)  # too large (413, over the pressure limit), 400
        status = int(info.get("status", 500))
        reason = item_error_reason(info)
        if status in RETRYABLE_STATUS:
            return Refusal(True, reason, status)
        return DeadLetter("index", reason, status=status)

    def _request_reason(self, exception: Exception) -> str:
        """The engine's own reason for refusing a whole request, in one line."""
        info = getattr(exception, "info", None)
        if isinstance(info, dict) and isinstance(info.get("error"), dict):
            return f"bulk into {self.index!r}: HTTP {_status(exception)}: {item_error_reason(info)}"
        return describe_error(exception, f"bulk into {self.index!r}")

    def _letter(self, letter: DeadLetter, position: int, record: EncodedRecord) -> DeadLetter:
        """The dead letter with where the record came from and the record itself."""
        return replace(letter, source=self.source, line=position, id=record.id, record=record)

    def _settle(self, records: list[Pending], attempt: int) -> Iterator[Outcome]:
        """Send `records` as one request until each has a final outcome."""
        if attempt > self.options.max_retries:
            if len(records) == 1 and records[0][2].status == 429:
                # refused alone through every retry: a per-document refusal, not an outage
                position, record, refusal = records[0]
                reason = (
                    f"{refusal.reason} (refused alone through {self.options.max_retries} retries)"
                )
                letter = DeadLetter("index", reason, status=429)
                yield position, record, self._letter(letter, position, record)
                return
            raise EngineUnavailable(
                f"bulk into {self.index!r} gave up after {self.options.max_retries} retries "
                f"({len(records)} records unsettled): the engine stays unavailable or overloaded"
            )
        retry: list[Pending] = []
        split: Refusal | None = None
        results = streaming_bulk(
            self.client,
            (self.bulk_action(r) for _, r, _ in records),
            chunk_size=len(records),
            max_chunk_bytes=1 << 62,
            raise_on_error=False,
            raise_on_exception=False,
        )
        for (position, record, _), (ok, item) in zip(records, results, strict=True):
            verdict = self._verdict(ok, item)
            if verdict is None:
                yield position, record, None
            elif isinstance(verdict, DeadLetter):
                yield position, record, self._letter(verdict, position, record)
            elif not verdict.retry:
                split = verdict
            else:
                retry.append((position, record, verdict))
        if split is not None:
            if len(records) == 1:
                position, record, _ = records[0]
                letter = DeadLetter("index", split.reason, status=split.status)
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
