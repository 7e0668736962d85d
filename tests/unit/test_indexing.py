"""Bulk retry policy and bulk bodies (the engine paths themselves run in tests/integration)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opensearchpy.exceptions import ConnectionError, TransportError

from splade_es.corpus import Reject
from splade_es.indexing import (
    BulkIndexer,
    BulkOptions,
    EngineUnavailable,
    RetryPolicy,
    bulk_body,
    send_bulk,
)

RECORDS = [{"id": "1", "features": {"a": 1}, "text": "t"}, {"id": "2", "features": {"b": 2}}]


class FakeOverloadedEngine:
    """Stands in for a node answering 429 / dropping connections (not reproducible on demand)."""

    def __init__(self, failures: list[Exception], item_status: list[int] | None = None) -> None:
        self.failures = failures
        self.item_status = item_status
        self.bodies: list[str] = []

    def bulk(self, body: str) -> dict[str, Any]:
        self.bodies.append(body)
        if self.failures:
            raise self.failures.pop(0)
        n = body.count("\n") // 2
        status = self.item_status or [201] * n
        self.item_status = None
        return {
            "items": [
                {"index": {"status": s, "error": {"type": "x", "reason": f"s{s}"}}}
                for s in status[:n]
            ]
        }


def no_sleep(_: float) -> None:
    return None


def test_transient_failures_are_retried_until_acknowledged() -> None:
    engine = FakeOverloadedEngine(
        [
            TransportError(429, "es_rejected_execution_exception", {}),
            ConnectionError("N/A", "refused", None),
        ]
    )
    outcome = send_bulk(engine, RECORDS, "i", policy=RetryPolicy(max_retries=3), sleep=no_sleep)  # type: ignore[arg-type]
    assert (outcome.indexed, outcome.retries, outcome.dead) == (2, 2, [])


def test_per_item_429_is_retried_and_400_dead_lettered() -> None:
    engine = FakeOverloadedEngine([], item_status=[429, 400])
    outcome = send_bulk(engine, RECORDS, "i", sleep=no_sleep)  # type: ignore[arg-type]
    assert outcome.indexed == 1 and outcome.retries == 1
    assert [(d["id"], d["status"]) for d in outcome.dead] == [("2", 400)]
    assert '"_id": "1"' in engine.bodies[1] and '"_id": "2"' not in engine.bodies[1]


def test_gives_up_with_a_clear_error() -> None:
    engine = FakeOverloadedEngine([TransportError(503, "unavailable", {})] * 5)
    with pytest.raises(EngineUnavailable, match="gave up after 2 retries"):
        send_bulk(engine, RECORDS, "i", policy=RetryPolicy(max_retries=2), sleep=no_sleep)  # type: ignore[arg-type]
    assert RetryPolicy(backoff_s=1, max_backoff_s=5).delay(10) == 5


def test_bulk_bodies_index_whole_documents_or_update_only_the_field() -> None:
    index_lines = [json.loads(x) for x in bulk_body(RECORDS, "i", "splade").splitlines()]
    assert index_lines[0] == {"index": {"_index": "i", "_id": "1"}}
    assert index_lines[1] == {"splade": {"a": 1}, "text": "t"}
    update_lines = [json.loads(x) for x in bulk_body(RECORDS, "i", "splade", "update").splitlines()]
    assert update_lines[0] == {"update": {"_index": "i", "_id": "1"}}
    assert update_lines[1] == {"doc": {"splade": {"a": 1}}}


class SlowAcceptingEngine:
    """Stands in for a node that acknowledges every item; the last batches answer slowest."""

    def __init__(self) -> None:
        self.indices = self
        self.ids: list[str] = []

    def bulk(self, body: str) -> dict[str, Any]:
        import time

        lines = body.splitlines()[::2]
        last_id = int(json.loads(lines[-1])["index"]["_id"])
        time.sleep(0.2 if last_id > 90 else 0.001)
        self.ids.extend(json.loads(line)["index"]["_id"] for line in lines)
        return {"items": [{"index": {"status": 201}} for _ in lines]}

    def refresh(self, index: str) -> None:
        return None


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_every_batch_in_flight_is_counted_at_any_concurrency(
    tmp_path: Any, concurrency: int
) -> None:
    engine = SlowAcceptingEngine()
    records: list[tuple[int, dict[str, Any] | Reject]] = [
        (i, {"id": str(i), "features": {"a": 1}}) for i in range(1, 101)
    ]
    records[49] = (50, Reject("in.jsonl", 50, "invalid JSON", "{"))
    options = BulkOptions(batch_size=7, concurrency=concurrency)
    summary = BulkIndexer(engine, "i", options=options).run(  # type: ignore[arg-type]
        records, tmp_path / "dead.jsonl", progress_file=tmp_path / "p.json", show_progress=False
    )
    assert (summary.read, summary.indexed, summary.dead_lettered) == (100, 99, 1)
    assert sorted(engine.ids, key=int) == [str(i) for i in range(1, 101) if i != 50]
    assert json.loads((tmp_path / "p.json").read_text())["done_through"] == 100
