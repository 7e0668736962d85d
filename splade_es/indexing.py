"""Index management and resilient bulk indexing of encoded records.

Guarantees: `_id` = document id, so re-runs overwrite instead of duplicating; every record read is
either acknowledged by the engine or written to the dead-letter file with the engine's reason
(read = indexed + dead-lettered); transient failures (429, 5xx, connection loss) are retried with
exponential backoff, and if the engine stays away the run stops with its progress saved so that the
next run resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError, TransportError
from tqdm.auto import tqdm

from splade_es.client import EngineError, EngineInfo, describe_error
from splade_es.corpus import Reject
from splade_es.mappings import index_body, sparse_field_type

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


# Index management -------------------------------------------------------------------------------


def ensure_index(
    client: OpenSearch,
    info: EngineInfo,
    index: str,
    field: str = "splade",
    field_type: str | None = None,
) -> str:
    """Create `index` from `mappings/` unless it exists; returns the SPLADE field's type.

    An existing index is reused only if its SPLADE field has the requested type (or, when no type
    was asked for, any sparse type); a different mapping is refused rather than silently
    overwritten. An existing index without the field gets it added (drop-in upgrade).
    """
    wanted = index_body(info.engine, info.version, field, field_type)
    wanted_type = wanted["mappings"]["properties"][field]["type"]
    try:
        if not client.indices.exists(index=index):
            client.indices.create(index=index, body=wanted)
            return str(wanted_type)
        current = client.indices.get_mapping(index=index)
    except (TransportError, ConnectionError) as exc:
        raise EngineError(describe_error(exc, index)) from exc
    mapping = next(iter(current.values()))["mappings"]
    existing = sparse_field_type(mapping, field)
    refuse = f"index {index!r} already maps {field!r} as {existing}"
    if existing is None and field not in mapping.get("properties", {}):
        client.indices.put_mapping(index=index, body={"properties": {field: {"type": wanted_type}}})
        return str(wanted_type)
    if existing not in ("rank_features", "sparse_vector"):
        raise EngineError(f"{refuse}, not a sparse field; refusing to change it")
    if field_type is not None and existing != field_type:
        raise EngineError(
            f"{refuse}, not {field_type}; refusing to change it: "
            "pick another index name or delete it first"
        )
    return existing


def index_size_bytes(client: OpenSearch, index: str, force_merge: bool = False) -> int:
    """Primary store size in bytes after a refresh and a flush (segments on disk); with
    `force_merge`, merged to one segment first so sizes compare across indexes."""
    client.indices.refresh(index=index)
    if force_merge:
        client.indices.forcemerge(index=index, max_num_segments=1)
    client.indices.flush(index=index)
    stats = client.indices.stats(index=index, metric="store")
    return int(stats["indices"][index]["primaries"]["store"]["size_in_bytes"])


# Bulk indexing ----------------------------------------------------------------------------------


@dataclass
class BulkSummary:
    """Counts for one run: `read == indexed + dead_lettered + skipped_done`."""

    read: int = 0
    indexed: int = 0
    dead_lettered: int = 0
    skipped_done: int = 0
    retries: int = 0
    seconds: float = 0.0

    def adds_up(self) -> bool:
        return self.read == self.indexed + self.dead_lettered + self.skipped_done

    def line(self) -> str:
        return (
            f"read {self.read}: indexed {self.indexed}, dead-lettered {self.dead_lettered}, "
            f"already done {self.skipped_done} ({self.retries} retries, {self.seconds:.1f}s)"
        )


@dataclass(frozen=True)
class BulkOptions:
    """Batching, concurrency and retry policy."""

    batch_size: int = 500
    concurrency: int = 2
    max_retries: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    refresh: bool = True


@dataclass
class _Batch:
    records: list[tuple[int, dict[str, Any]]]  # (input position, record)
    indexed: int = 0
    dead: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0


def document_source(record: dict[str, Any], field: str) -> dict[str, Any]:
    """The engine document for an encoded record: SPLADE features plus text for BM25."""
    source: dict[str, Any] = {field: record["features"]}
    for key in ("title", "text"):
        if record.get(key):
            source[key] = record[key]
    return source


BulkAction = Literal["index", "update"]


def bulk_body(
    records: Sequence[dict[str, Any]], index: str, field: str, action: BulkAction = "index"
) -> str:
    """NDJSON `_bulk` body with `_id` = record id.

    `index` writes the whole document (features + text); `update` sends only `{field: features}`
    as a partial update, for adding SPLADE to documents already in an index without re-sending text.
    """
    lines = []
    for record in records:
        lines.append(json.dumps({action: {"_index": index, "_id": str(record["id"])}}))
        if action == "update":
            lines.append(json.dumps({"doc": {field: record["features"]}}, ensure_ascii=False))
        else:
            lines.append(json.dumps(document_source(record, field), ensure_ascii=False))
    return "\n".join(lines) + "\n"


def item_error_reason(item: dict[str, Any]) -> str:
    """The engine's reason for refusing one bulk item, with its cause."""
    error = item.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return reason
    return str(error)


class EngineUnavailable(EngineError):
    """The engine stayed unreachable or overloaded through every retry; progress was saved."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient bulk failures."""

    max_retries: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt)


@dataclass
class BulkOutcome:
    """What one batch came to: acknowledged items, retries, and dead-letter entries."""

    indexed: int = 0
    retries: int = 0
    dead: list[dict[str, Any]] = field(default_factory=list)


def send_bulk(
    client: OpenSearch,
    records: Sequence[dict[str, Any]],
    index: str,
    field: str = "splade",
    action: BulkAction = "index",
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> BulkOutcome:
    """Send one batch until every item is acknowledged or refused for a non-transient reason.

    Connection errors and 429/5xx (whole request or per item) are retried with backoff; other
    per-item failures become dead-letter entries `{id, status, reason, record}`. If the engine
    stays away, `EngineUnavailable` is raised; `_id` = record id makes re-sending an overwrite.
    """
    outcome = BulkOutcome()
    pending = list(records)
    problem = ""
    for attempt in range(policy.max_retries + 1):
        if attempt:
            outcome.retries += 1
            sleep(policy.delay(attempt - 1))
        try:
            response = client.bulk(body=bulk_body(pending, index, field, action))
        except ConnectionError as exc:
            problem = describe_error(exc, "bulk")
            continue
        except TransportError as exc:
            if isinstance(exc.status_code, int) and exc.status_code in RETRYABLE_STATUS:
                problem = describe_error(exc, "bulk")
                continue
            raise EngineError(describe_error(exc, f"bulk into {index!r}")) from exc
        retry = []
        for record, item in zip(pending, response["items"], strict=True):
            result = next(iter(item.values()))
            status = int(result.get("status", 500))
            if 200 <= status < 300:
                outcome.indexed += 1
            elif status in RETRYABLE_STATUS:
                retry.append(record)
                problem = item_error_reason(result)
            else:
                outcome.dead.append(
                    {
                        "id": record.get("id"),
                        "status": status,
                        "reason": item_error_reason(result),
                        "record": record,
                    }
                )
        pending = retry
        if not pending:
            return outcome
    raise EngineUnavailable(
        f"bulk into {index!r} gave up after {policy.max_retries} retries: {problem}"
    )


class BulkIndexer:
    """Streams encoded records into an index in bounded, concurrent, retried `_bulk` batches."""

    def __init__(
        self,
        client: OpenSearch,
        index: str,
        field: str = "splade",
        options: BulkOptions = BulkOptions(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.index = index
        self.field = field
        self.options = options
        self.sleep = sleep

    def _send(self, batch: _Batch) -> _Batch:
        policy = RetryPolicy(
            self.options.max_retries, self.options.backoff_s, self.options.max_backoff_s
        )
        outcome = send_bulk(
            self.client,
            [r for _, r in batch.records],
            self.index,
            self.field,
            policy=policy,
            sleep=self.sleep,
        )
        positions = {id(record): position for position, record in batch.records}
        batch.indexed, batch.retries = outcome.indexed, outcome.retries
        batch.dead = [
            {**entry, "position": positions[id(entry["record"])]} for entry in outcome.dead
        ]
        return batch

    def run(
        self,
        records: Iterable[tuple[int, dict[str, Any] | Reject]],
        dead_letter: Path,
        progress_file: Path | None = None,
        total: int | None = None,
        show_progress: bool = True,
    ) -> BulkSummary:
        """Index `(position, record-or-reject)` pairs; rejects go straight to the dead-letter file.

        With `progress_file`, the number of leading input records fully handled is stored after
        every batch, and a re-run skips them (resume). Records after that point may be sent again:
        `_id` makes that an overwrite, never a duplicate.
        """
        summary = BulkSummary()
        started = time.monotonic()
        done_before = _read_progress(progress_file)
        iterator: Iterator[tuple[int, dict[str, Any] | Reject]] = iter(records)
        bar = tqdm(total=total, unit="doc", disable=not show_progress, desc=f"index {self.index}")
        dead_letter.parent.mkdir(parents=True, exist_ok=True)
        with (
            dead_letter.open("a" if done_before else "w", encoding="utf-8") as dead,
            ThreadPoolExecutor(max_workers=self.options.concurrency) as pool,
        ):
            in_flight: list[Future[_Batch]] = []
            last_position = done_before

            def drain(block: bool) -> None:
                """Commit finished batches in submission order; `block` waits for all of them."""
                while in_flight and (
                    block or in_flight[0].done() or len(in_flight) >= self.options.concurrency
                ):
                    batch = in_flight.pop(0).result()
                    summary.indexed += batch.indexed
                    summary.retries += batch.retries
                    for entry in batch.dead:
                        dead.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    summary.dead_lettered += len(batch.dead)
                    bar.update(len(batch.records))
                    dead.flush()
                    _write_progress(progress_file, batch.records[-1][0])

            while True:
                chunk = list(islice(iterator, self.options.batch_size))
                if not chunk:
                    break
                good: list[tuple[int, dict[str, Any]]] = []
                for position, item in chunk:
                    summary.read += 1
                    last_position = position
                    if position <= done_before:
                        summary.skipped_done += 1
                    elif isinstance(item, Reject):
                        dead.write(json.dumps({"position": position, **item.as_json()}) + "\n")
                        summary.dead_lettered += 1
                    else:
                        good.append((position, item))
                bar.update(len(chunk) - len(good))  # the good ones count when committed
                if not good:
                    continue
                in_flight.append(pool.submit(self._send, _Batch(good)))
                try:
                    drain(block=False)
                except EngineError:
                    for future in in_flight:
                        future.cancel()
                    raise
            drain(block=True)
            _write_progress(progress_file, last_position)
        bar.close()
        if self.options.refresh:
            self.client.indices.refresh(index=self.index)
        summary.seconds = time.monotonic() - started
        return summary


def _read_progress(path: Path | None) -> int:
    if path is None or not path.is_file():
        return 0
    return int(json.loads(path.read_text()).get("done_through", 0))


def _write_progress(path: Path | None, position: int) -> None:
    if path is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"done_through": position}))
    tmp.replace(path)
