"""Encoder-service throughput: the service alone over HTTP, and indexing through the ml-commons
ingest pipeline vs indexing pre-encoded vectors (`index-vectors`) on the same OpenSearch node.

Part 1 runs `splade-es serve`'s app in-process (uvicorn in a thread) with splade-tiny and sends
SciFact texts from concurrent HTTP clients; the in-process encoder on the same texts is the
baseline. Part 2 (with --node-url: OpenSearch with ml-commons + neural-search) indexes the
same documents twice: plain documents into an index whose default pipeline calls the service, and
vectors encoded beforehand through the bulk indexer. Writes benchmarks/results/serve.md.

    python -m benchmarks.serve --docs 1000 --node-url http://127.0.0.1:9280
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import torch

from splade_es.batch_encode import DocumentPruning, encoded_record, encoder_profile
from splade_es.bulk import BulkOptions, BulkWriter
from splade_es.client import ConnectionSettings, open_cluster
from splade_es.corpus import Document, read_documents
from splade_es.encoder import SpladeEncoder
from splade_es.indices import ensure_index
from splade_es.mlcommons import RemoteModelSetup, connect_encoder_service
from splade_es.models import DEFAULT_MODEL
from splade_es.serve.app import EncoderService, ServiceLimits, create_app
from splade_es.serve.server import BackgroundServer
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

from . import paths

RESULTS = paths.RESULTS


@dataclass(frozen=True)
class HttpRun:
    clients: int
    texts_per_request: int
    seconds: float
    docs: int
    model_calls: int

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds


def http_run(url: str, texts: list[str], clients: int, per_request: int) -> HttpRun:
    """Send `texts` in requests of `per_request` texts from `clients` threads; all must succeed."""
    requests = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    before = httpx.get(f"{url}/metrics").json()
    lock = threading.Lock()
    pending = iter(requests)

    def client_loop() -> int:
        sent = 0
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    batch = next(pending, None)
                if batch is None:
                    return sent
                response = http.post(f"{url}/encode/documents", json={"texts": batch})
                response.raise_for_status()
                sent += len(response.json())

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(lambda _: client_loop(), range(clients)))
    seconds = time.perf_counter() - start
    after = httpx.get(f"{url}/metrics").json()
    assert done == len(texts)
    return HttpRun(
        clients,
        per_request,
        seconds,
        done,
        after["model_calls"] - before["model_calls"],
    )


def bulk_plain(client: Any, index: str, docs: list[Document], batch: int, workers: int) -> int:
    """Plain documents (no vectors) through the index's default pipeline; returns failures."""

    def send(chunk: list[Document]) -> int:
        lines = []
        for d in chunk:
            lines.append(json.dumps({"index": {"_index": index, "_id": d.id}}))
            lines.append(json.dumps({"title": d.title, "text": d.text}))
        response = client.bulk(body="\n".join(lines) + "\n", request_timeout=600)
        return sum(1 for item in response["items"] if item["index"]["status"] >= 300)

    chunks = [docs[i : i + batch] for i in range(0, len(docs), batch)]
    with ThreadPoolExecutor(workers) as pool:
        failed = sum(pool.map(send, chunks))
    client.indices.refresh(index=index)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--corpus", type=Path, default=paths.SCIFACT / "corpus.jsonl")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--node-url", default=None, help="OpenSearch with ml-commons (part 2)")
    parser.add_argument("--bulk-size", type=int, default=64)
    parser.add_argument("--bulk-concurrency", type=int, default=2)
    parser.add_argument("--pipeline-batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve.md")
    args = parser.parse_args()

    docs = list(islice(read_documents(args.corpus), args.docs))
    texts = [d.text for d in docs]
    encoder = SpladeEncoder.load(args.model, device="cpu")
    encoder.encode_documents(texts[:8])  # warm-up

    start = time.perf_counter()
    vectors = encoder.encode_documents(texts, batch_size=args.max_batch)
    direct_s = time.perf_counter() - start
    print(f"in-process: {len(texts) / direct_s:.1f} docs/s", flush=True)

    limits = ServiceLimits(max_batch_texts=args.max_batch, max_queue=256, max_texts=256)
    service = EncoderService(
        lambda: encoder,
        limits,
        describe=lambda e: encoder_profile(e, args.model, DEFAULT_QUANTIZATION_FACTOR),
    )
    runs: list[HttpRun] = []
    pipeline: dict[str, float] = {}
    node = "OpenSearch"
    with BackgroundServer(create_app(service)) as server:
        while httpx.get(f"{server.url}/ready").status_code != 200:
            time.sleep(0.1)
        for clients, per_request in ((1, 1), (8, 1), (1, 32), (4, 8)):
            run = http_run(server.url, texts, clients, per_request)
            runs.append(run)
            print(run, f"{run.docs_per_s:.1f} docs/s", flush=True)
        if args.node_url:
            pipeline, node = index_both_ways(args, server.url, docs, vectors)

    lines = [
        f"# Encoder service throughput: SciFact `text`, {len(texts)} docs, model `{args.model}`",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, CPU only, "
        "2 cores shared with everything else (the engine node in part 2 included). One run each.",
        "",
        "## 1. The service alone (HTTP, concurrent clients, `/encode/documents`)",
        "",
        f"Service: `--max-batch {args.max_batch}`, merge window 2 ms. In-process "
        f"`encode_documents(batch_size={args.max_batch})` on the same texts: "
        f"**{len(texts) / direct_s:.1f} docs/s**.",
        "",
        "| clients | texts/request | seconds | docs/s | model calls | texts per model call |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.clients} | {r.texts_per_request} | {r.seconds:.1f} | {r.docs_per_s:.1f} | "
            f"{r.model_calls} | {r.docs / r.model_calls:.1f} |"
        )
    lines += ["", f"## 2. Indexing on one {node} node (ml-commons + neural-search)", ""]
    if pipeline:
        n = len(docs)
        lines += [
            f"Bulk requests of {args.bulk_size} documents, {args.bulk_concurrency} in flight, "
            f"same node, same mapping. Pipeline: `sparse_encoding` with `batch_size` "
            f"{args.pipeline_batch} calling the service above.",
            "",
            "| path | seconds | docs/s |",
            "|---|---:|---:|",
            f"| ingest pipeline (plain docs; the cluster calls the service) | "
            f"{pipeline['pipeline_s']:.1f} | {n / pipeline['pipeline_s']:.1f} |",
            f"| `index-vectors` (bulk indexer, vectors encoded beforehand) | "
            f"{pipeline['vectors_s']:.1f} | {n / pipeline['vectors_s']:.1f} |",
            f"| encode in-process + `index-vectors` | "
            f"{direct_s + pipeline['vectors_s']:.1f} | {n / (direct_s + pipeline['vectors_s']):.1f} |",
            "",
            f"Pipeline documents that failed: {int(pipeline['failed'])}. Stored SPLADE fields "
            f"equal between the two indexes: {int(pipeline['equal'])} of {n} documents (batch "
            "padding differs between the paths, so a quantized weight can differ by 1 where "
            "`w * 100` sits on a rounding boundary).",
        ]
    else:
        lines.append("Not run (no `--node-url`).")
    lines += [
        "",
        f"Command: `python -m benchmarks.serve --docs {args.docs} --max-batch {args.max_batch}"
        + (f" --node-url {args.node_url}" if args.node_url else "")
        + "`",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


def index_both_ways(
    args: argparse.Namespace, service_url: str, docs: list[Document], vectors: list[Any]
) -> tuple[dict[str, float], str]:
    """Seconds per path (and documents equal both ways), and the node as `OpenSearch <version>`."""
    client, info = open_cluster(ConnectionSettings(url=args.node_url, timeout=600))
    via_pipeline, via_vectors = "serve-bench-pipeline", "serve-bench-vectors"
    for index in (via_pipeline, via_vectors):
        client.indices.delete(index=index, ignore_unavailable=True)
    setup = RemoteModelSetup(service_url, via_pipeline, batch_size=args.pipeline_batch)
    connect_encoder_service(client, info, setup)
    start = time.perf_counter()
    failed = bulk_plain(client, via_pipeline, docs, args.bulk_size, args.bulk_concurrency)
    pipeline_s = time.perf_counter() - start
    print(f"pipeline: {len(docs) / pipeline_s:.1f} docs/s, {failed} failed", flush=True)

    ensure_index(client, info, via_vectors)
    records = [
        (i, encoded_record(d, v, DocumentPruning()))
        for i, (d, v) in enumerate(zip(docs, vectors, strict=True), start=1)
    ]
    options = BulkOptions(chunk_size=args.bulk_size, concurrency=args.bulk_concurrency)
    start = time.perf_counter()
    outcomes = list(BulkWriter(client, via_vectors, options=options).write(records))
    client.indices.refresh(index=via_vectors)
    vectors_s = time.perf_counter() - start
    dead = sum(letter is not None for _, _, letter in outcomes)
    print(f"index-vectors: {len(docs) / vectors_s:.1f} docs/s ({dead} dead-lettered)", flush=True)

    equal = 0
    ids = [d.id for d in docs]
    for start_at in range(0, len(ids), 200):
        chunk = ids[start_at : start_at + 200]
        a = client.mget(index=via_pipeline, body={"ids": chunk})["docs"]
        b = client.mget(index=via_vectors, body={"ids": chunk})["docs"]
        equal += sum(
            1
            for x, y in zip(a, b, strict=True)
            if x.get("found") and x["_source"].get("splade") == y["_source"].get("splade")
        )
    for index in (via_pipeline, via_vectors):
        client.indices.delete(index=index, ignore_unavailable=True)
    times = {"pipeline_s": pipeline_s, "vectors_s": vectors_s, "failed": failed, "equal": equal}
    return times, f"OpenSearch {info.version}"


if __name__ == "__main__":
    main()
