"""Bulk indexing throughput: the project's indexer against the client's own helpers, one node.

Every method indexes the same encoded records (features + text) into a fresh index; methods are
interleaved round by round and the median docs/s per method is reported, so that a noisy shared
machine affects all of them alike.

    python -m splade_es.benchmarks.bulk_throughput --encoded scifact.parquet --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.helpers import bulk, parallel_bulk

from splade_es.bulk import BulkOptions
from splade_es.client import ConnectionSettings, connect, detect
from splade_es.corpus import read_encoded
from splade_es.indexing import FileIndexer
from splade_es.indices import ensure_index
from splade_es.records import EncodedRecord

from . import paths

INDEX = "bench-bulk"


def actions(records: list[EncodedRecord]) -> list[dict[str, Any]]:
    return [{"_index": INDEX, "_id": r.id, "_source": r.source("splade")} for r in records]


def fresh(client: OpenSearch) -> Any:
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    return ensure_index(client, detect(client), INDEX)


def helpers_bulk(client: OpenSearch, records: list[EncodedRecord], _: Path) -> None:
    bulk(client, actions(records))


def helpers_parallel(client: OpenSearch, records: list[EncodedRecord], _: Path) -> None:
    for _ok, _item in parallel_bulk(client, actions(records), thread_count=2):
        pass


def file_indexer(
    concurrency: int, chunk: int
) -> Callable[[OpenSearch, list[EncodedRecord], Path], None]:
    def run(client: OpenSearch, _: list[EncodedRecord], path: Path) -> None:
        profile = ensure_index(client, detect(client), INDEX)
        options = BulkOptions(chunk_size=chunk, concurrency=concurrency)
        with tempfile.TemporaryDirectory() as tmp:
            FileIndexer(client, profile, options=options, show_progress=False).run(
                path, Path(tmp) / "dead.jsonl", resume=False
            )

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoded", type=Path, required=True, help="what `splade-es encode` wrote")
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=paths.RESULTS / "bulk_throughput.md")
    args = parser.parse_args()
    records = [r for _, r in read_encoded(args.encoded) if isinstance(r, EncodedRecord)]
    methods: dict[str, tuple[Callable[..., None], bool]] = {
        "helpers.bulk (client defaults)": (helpers_bulk, False),
        "helpers.bulk, gzip": (helpers_bulk, True),
        "helpers.parallel_bulk, 2 threads": (helpers_parallel, False),
        "splade-es FileIndexer, 1 stream": (file_indexer(1, 500), False),
        "splade-es FileIndexer, 2 threads (default)": (file_indexer(2, 500), False),
        "splade-es FileIndexer, 4 threads": (file_indexer(4, 500), False),
    }
    rates: dict[str, list[float]] = {name: [] for name in methods}
    for round_no in range(args.rounds):
        for name, (method, gzip) in methods.items():
            client = connect(ConnectionSettings(url=args.url, compress=gzip))
            fresh(client)
            started = time.perf_counter()
            method(client, records, args.encoded)
            client.indices.refresh(index=INDEX)
            seconds = time.perf_counter() - started
            count = int(client.count(index=INDEX)["count"])
            if count != len(records):
                raise SystemExit(f"{name}: index holds {count}, expected {len(records)}")
            rates[name].append(len(records) / seconds)
            print(f"round {round_no + 1} {name}: {rates[name][-1]:.0f} docs/s", flush=True)
            client.close()
    baseline = statistics.median(rates["helpers.bulk (client defaults)"])
    lines = [
        "# Bulk indexing throughput",
        "",
        f"{len(records)} encoded documents (features + text) from `{args.encoded.name}` into a fresh "
        f"index per run on one node ({args.url}); {args.rounds} interleaved rounds, median docs/s "
        "(refresh included; every run checked to hold exactly all documents).",
        "",
        f"Command: `python -m splade_es.benchmarks.bulk_throughput --encoded {args.encoded} --rounds {args.rounds}`",
        "",
        "| method | median docs/s | × helpers.bulk |",
        "|---|---:|---:|",
    ]
    for name, values in rates.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.0f} | {median / baseline:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
