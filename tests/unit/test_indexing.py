"""The bulk layer's decisions (retry, split, dead-letter) and file indexing's accounting, against
stand-in engines that answer the way real nodes do under load or refusal (not reproducible on
demand); the real-node paths run in tests/integration and tests/failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opensearchpy.exceptions import ConnectionError, TransportError
from opensearchpy.serializer import JSONSerializer

from splade_es.bulk import BulkOptions, BulkWriter, EngineUnavailable
from splade_es.corpus import EncodedWriter
from splade_es.indexing import FileIndexer, superseded_positions
from splade_es.indices import IndexProfile
from splade_es.records import EncodedRecord

RECORDS = [EncodedRecord("1", {"a": 1}, text="t"), EncodedRecord("2", {"b": 2})]


class FakeEngine:
    """Answers `_bulk` like a node: scripted whole-request failures, per-item statuses, and a
    request-size limit (HTTP 413); keeps the documents it accepted."""

    def __init__(
        self,
        failures: list[Exception] | None = None,
        item_status: dict[str, list[int]] | None = None,
        max_body: int | None = None,
        pressure_limit: int | None = None,
        states_limits: bool = True,
    ) -> None:
        self.failures = failures or []
        self.pressure_limit = pressure_limit
        self.states_limits = states_limits
        self.item_status = item_status or {}
        self.max_body = max_body
        self.docs: dict[str, Any] = {}
        self.requests = 0
        self.bodies: list[int] = []
        self.transport = self
        self.serializer = JSONSerializer()
        self.indices = self

    def bulk(self, body: str, **_: Any) -> dict[str, Any]:
        self.requests += 1
        self.bodies.append(len(body.encode()))
        if self.failures:
            raise self.failures.pop(0)
        if self.pressure_limit is not None and len(body.encode()) > self.pressure_limit:
            reason = (
                "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                f"replica_bytes=0, all_bytes=0, coordinating_operation_bytes={len(body.encode())}, "
                f"max_coordinating_and_primary_bytes={self.pressure_limit}]"
            )
            error = {"type": "rejected_execution_exception", "reason": reason}
            raise TransportError(429, "rejected_execution_exception", {"error": error})
        if self.max_body is not None and len(body.encode()) > self.max_body:
            raise TransportError(413, "Request Entity Too Large", {})
        lines = body.splitlines()
        items = []
        for action_line, source_line in zip(lines[::2], lines[1::2], strict=True):
            action = json.loads(action_line)
            op, meta = next(iter(action.items()))
            statuses = self.item_status.get(meta["_id"])
            status = statuses.pop(0) if statuses else 201
            if status < 300:
                self.docs[meta["_id"]] = json.loads(source_line)
            items.append(
                {
                    op: {
                        "_id": meta["_id"],
                        "status": status,
                        "error": {"type": f"s{status}", "reason": "r"},
                    }
                }
            )
        return {"errors": True, "items": items}

    def refresh(self, index: str) -> None:
        return None

    def perform_request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        """`_nodes/stats/indexing_pressure` and `_nodes/settings` as one node answers them."""
        node: dict[str, Any] = {"settings": {"http": {"port": "9200"}}}
        if self.pressure_limit is not None and self.states_limits:
            node["indexing_pressure"] = {"memory": {"limit_in_bytes": self.pressure_limit}}
        return {"nodes": {"n1": node}}

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted = body["query"]["bool"]["filter"][0]["ids"]["values"]
        return {"hits": {"hits": [{"_id": i} for i in wanted if i in self.docs]}}


def no_sleep(_: float) -> None:
    return None


def write_all(engine: FakeEngine, records: list[EncodedRecord], **options: Any) -> list[Any]:
    writer = BulkWriter(engine, "i", options=BulkOptions(**options), sleep=no_sleep)  # type: ignore[arg-type]
    outcomes = list(writer.write(enumerate(records, start=1)))
    assert sorted(pos for pos, _, _ in outcomes) == list(range(1, len(records) + 1))
    return outcomes


@pytest.mark.parametrize("concurrency", [1, 3])
def test_transient_failures_are_retried_until_acknowledged(concurrency: int) -> None:
    engine = FakeEngine(
        failures=[
            TransportError(429, "es_rejected_execution_exception", {}),
            ConnectionError("N/A", "refused", None),
        ]
    )
    outcomes = write_all(engine, RECORDS * 3, concurrency=concurrency, chunk_size=2)
    assert all(letter is None for _, _, letter in outcomes)
    assert set(engine.docs) == {"1", "2"}


def test_per_item_429_is_retried_and_400_dead_lettered() -> None:
    engine = FakeEngine(item_status={"1": [429], "2": [400]})
    outcomes = write_all(engine, RECORDS, concurrency=1)
    letters = {r.id: letter for _, r, letter in outcomes}
    assert letters["1"] is None and "1" in engine.docs
    assert letters["2"] is not None and letters["2"].status == 400 and letters["2"].stage == "index"
    assert letters["2"].record == RECORDS[1]


def test_gives_up_with_a_clear_error() -> None:
    engine = FakeEngine(failures=[TransportError(503, "unavailable", {})] * 20)
    with pytest.raises(EngineUnavailable, match="gave up after 2 retries"):
        write_all(engine, RECORDS, max_retries=2, concurrency=1)
    assert BulkOptions(backoff_s=1, max_backoff_s=5).delay(10) == 5


def test_a_request_too_large_is_split_and_a_lone_giant_dead_lettered() -> None:
    records = [EncodedRecord(str(i), {"t": 1}, text="x" * 50) for i in range(40)]
    records[17] = EncodedRecord("giant", {"t": 1}, text="y" * 5000)
    engine = FakeEngine(max_body=2000)
    outcomes = write_all(engine, records, chunk_size=40, concurrency=2)
    dead = {r.id: letter for _, r, letter in outcomes if letter is not None}
    assert list(dead) == ["giant"] and dead["giant"].status == 413
    assert len(engine.docs) == 39


def test_a_lone_document_over_the_pressure_limit_is_dead_lettered_without_waiting() -> None:
    records = [EncodedRecord(str(i), {"t": 1}, text="x" * 50) for i in range(20)]
    records[5] = EncodedRecord("giant", {"t": 1}, text="y" * 5000)
    engine = FakeEngine(pressure_limit=4000, states_limits=False)  # the 429's reason must do
    slept: list[float] = []
    options = BulkOptions(chunk_size=20, concurrency=1)
    writer = BulkWriter(engine, "i", options=options, sleep=slept.append)  # type: ignore[arg-type]
    outcomes = list(writer.write(enumerate(records, start=1)))
    dead = {r.id: letter for _, r, letter in outcomes if letter is not None}
    assert list(dead) == ["giant"] and dead["giant"].status == 429
    assert "coordinating_operation_bytes=" in dead["giant"].reason
    assert slept == [] and len(engine.docs) == 19


def test_a_document_refused_429_alone_through_every_retry_is_dead_lettered() -> None:
    engine = FakeEngine(item_status={"1": [429] * 50})
    outcomes = write_all(engine, RECORDS, concurrency=1, max_retries=3)
    letters = {r.id: letter for _, r, letter in outcomes}
    assert letters["2"] is None and set(engine.docs) == {"2"}
    assert letters["1"] is not None and letters["1"].status == 429
    assert "refused alone through 3 retries" in letters["1"].reason
    # several documents refused together are an overloaded engine, not a document's fault
    busy = FakeEngine(failures=[TransportError(429, "es_rejected_execution_exception", {})] * 50)
    with pytest.raises(EngineUnavailable, match="gave up after 3 retries"):
        write_all(busy, RECORDS, concurrency=1, max_retries=3)


def test_requests_are_sized_to_the_limit_the_node_states() -> None:
    records = [EncodedRecord(str(i), {"t": 1}, text="x" * 400) for i in range(40)]
    engine = FakeEngine(pressure_limit=3000)
    writer = BulkWriter(engine, "i", options=BulkOptions(concurrency=2), sleep=no_sleep)  # type: ignore[arg-type]
    outcomes = list(writer.write(enumerate(records, start=1)))
    assert all(letter is None for _, _, letter in outcomes) and len(engine.docs) == 40
    assert max(engine.bodies) <= 1000  # 3000 shared by 2 requests in flight and one more
    assert writer.notes == [
        "bulk requests capped at 1000 bytes to fit the node (indexing pressure limit 3000 bytes; "
        "2 requests in flight)"
    ]


def test_bulk_actions_index_whole_documents_or_update_only_the_field() -> None:
    engine = FakeEngine()
    index = BulkWriter(engine, "i", "splade")  # type: ignore[arg-type]
    assert index.bulk_action(RECORDS[0]) == {
        "_index": "i",
        "_id": "1",
        "_source": {"splade": {"a": 1}, "text": "t"},
    }
    update = BulkWriter(engine, "i", "splade", action="update")  # type: ignore[arg-type]
    assert update.bulk_action(RECORDS[0])["doc"] == {"splade": {"a": 1}}


def encoded_file(tmp_path: Path, records: list[EncodedRecord]) -> Path:
    path = tmp_path / "enc.jsonl"
    with EncodedWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_duplicates_keep_the_last_copy_and_counts_are_true(
    tmp_path: Path, concurrency: int
) -> None:
    records = [EncodedRecord(str(i % 70), {"v": i + 1}) for i in range(100)]
    path = encoded_file(tmp_path, records)
    with path.open("a") as handle:
        handle.write("{broken\n")
    assert len(superseded_positions(path)) == 30
    engine = FakeEngine()
    profile = IndexProfile("i", "uuid-1", {})
    summary = FileIndexer(
        engine,  # type: ignore[arg-type]
        profile,
        options=BulkOptions(chunk_size=7, concurrency=concurrency),
        show_progress=False,
    ).run(path, tmp_path / "dead.jsonl")
    assert (summary.read, summary.indexed, summary.duplicates, summary.rejected) == (101, 70, 30, 1)
    assert summary.adds_up()
    last_copies = {str(i): i + 71 for i in range(30)} | {str(i): i + 1 for i in range(30, 70)}
    assert {k: v["splade"]["v"] for k, v in engine.docs.items()} == last_copies
    (reject,) = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert reject["line"] == 101 and reject["stage"] == "read"
