"""SPLADE vs BM25 latency on the same Lucene engine: percentiles, throughput, index size, nDCG.

Runs every query of a BEIR split against an index built by `splade-es index-vectors` (it holds the
BM25 `content` field and the SPLADE field side by side, so both run on the same engine, node, JVM and
data). Per mode: query-encoding time, client-side latency percentiles one query at a time, the
engine's own `took`, throughput with concurrent clients, and nDCG@10. Writes Markdown + PNG.

    python -m splade_es.benchmarks.latency --url http://127.0.0.1:9200 --index scifact
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from . import paths

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from splade_es.client import ConnectionSettings, open_cluster
from splade_es.corpus import read_qrels, read_queries
from splade_es.encoder import SpladeEncoder
from splade_es.evaluation import evaluate
from splade_es.mappings import sparse_field_type
from splade_es.models import DEFAULT_MODEL
from splade_es.query import QueryPruning
from splade_es.search import Mode, Searcher


@dataclass(frozen=True)
class Variant:
    name: str
    mode: Mode
    top_k: int | None = None
    rescore_window: int | None = None


VARIANTS = [
    Variant("BM25", "bm25"),
    Variant("SPLADE (full query)", "splade"),
    Variant("SPLADE (query top-10 terms)", "splade", top_k=10),
    Variant(
        "SPLADE two-phase (top-5 retrieve, full rescore 100)", "splade", top_k=5, rescore_window=100
    ),
    Variant("hybrid BM25 + SPLADE", "hybrid"),
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure(
    searcher: Searcher, bodies: list[dict[str, Any]], index: str, concurrency: int
) -> dict[str, float]:
    """Sequential latencies (ms, client and engine `took`) and concurrent throughput (queries/s)."""
    client = searcher.client
    for body in bodies[:20]:  # warm-up: caches, JIT
        client.search(index=index, body=body)
    latencies, took = [], []
    for body in bodies:
        start = time.perf_counter()
        response = client.search(index=index, body=body)
        latencies.append((time.perf_counter() - start) * 1000)
        took.append(float(response["took"]))

    def run(chunk: list[dict[str, Any]]) -> None:
        for body in chunk:
            client.search(index=index, body=body)

    chunks = [bodies[i::concurrency] for i in range(concurrency)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run, chunks))
    qps = len(bodies) / (time.perf_counter() - start)
    return {
        "p50": statistics.median(latencies),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "took_p50": statistics.median(took),
        "qps": qps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--index", default="scifact")
    parser.add_argument("--field", default="splade")
    parser.add_argument("--beir-dir", type=Path, default=paths.SCIFACT)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=paths.RESULTS / "latency")
    args = parser.parse_args()

    client, info = open_cluster(ConnectionSettings(url=args.url))
    mapping = client.indices.get_mapping(index=args.index)[args.index]["mappings"]
    field_type = sparse_field_type(mapping, args.field) or "rank_features"
    stats = client.indices.stats(index=args.index, metric="store,docs")["indices"][args.index][
        "primaries"
    ]
    encoder = SpladeEncoder.load(args.model)
    qrels = read_qrels(args.beir_dir / "qrels" / f"{args.split}.tsv")
    queries = {q: t for q, t in read_queries(args.beir_dir / "queries.jsonl").items() if q in qrels}
    qids = list(queries)

    encode_ms = []
    for qid in qids:  # query-encoding cost, paid by every SPLADE mode (0 for BM25)
        start = time.perf_counter()
        encoder.encode_query(queries[qid])
        encode_ms.append((time.perf_counter() - start) * 1000)
    encode_p50 = statistics.median(encode_ms)

    rows = []
    for variant in VARIANTS:
        searcher = Searcher(
            client,
            info,
            args.index,
            encoder,
            args.field,
            field_type,
            QueryPruning(top_k=variant.top_k),
            rescore_window=variant.rescore_window,
        )
        # ids and scores only: fetching 100 stored texts would dominate and hide the scoring cost
        bodies = [
            {**searcher.body(queries[q], variant.mode, size=100), "_source": False} for q in qids
        ]
        timing = measure(searcher, bodies, args.index, args.concurrency)
        hits = searcher.search_many([queries[q] for q in qids], variant.mode, size=100)
        ndcg = evaluate(
            {q: {h.id: h.score for h in hs} for q, hs in zip(qids, hits, strict=True)}, qrels
        )["ndcg@10"]
        timing["encode_p50"] = 0.0 if variant.mode == "bm25" else encode_p50
        timing["ndcg"] = ndcg
        rows.append((variant.name, timing))
        print(variant.name, {k: round(v, 3) for k, v in timing.items()}, flush=True)

    base = rows[0][1]
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# SPLADE vs BM25 latency: {info.engine} {info.version}, index `{args.index}`",
        "",
        f"{stats['docs']['count']} docs, primary store {stats['store']['size_in_bytes'] / 1e6:.1f} MB "
        f"(BM25 fields and the `{args.field}` {field_type} field together; see index_size.md for the split). "
        f"{len(qids)} {args.split} queries, top 100 hits (ids and scores, no `_source`), model `{args.model}` on CPU. One run; client and "
        "engine share this machine, so read ratios, not absolute numbers.",
        "",
        "| mode | p50 ms | p90 ms | p99 ms | engine took p50 ms | p50 × BM25 | query encode p50 ms | "
        f"QPS ({args.concurrency} clients) | QPS × BM25 | nDCG@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in rows:
        lines.append(
            f"| {name} | {t['p50']:.1f} | {t['p90']:.1f} | {t['p99']:.1f} | {t['took_p50']:.1f} | "
            f"{t['p50'] / base['p50']:.2f} | {t['encode_p50']:.1f} | {t['qps']:.0f} | "
            f"{t['qps'] / base['qps']:.2f} | {t['ndcg']:.4f} |"
        )
    lines += [
        "",
        "Latency is search only; a SPLADE query also pays the encode time in its column.",
        "",
        "![latency](latency.png)",
        "",
        f"Command: `python -m splade_es.benchmarks.latency --url {args.url} --index {args.index} "
        f"--concurrency {args.concurrency}`",
        "",
    ]
    (args.out / "README.md").write_text("\n".join(lines))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [n for n, _ in rows]
    x = range(len(rows))
    ax1.bar([i - 0.2 for i in x], [t["p50"] for _, t in rows], 0.4, label="p50")
    ax1.bar([i + 0.2 for i in x], [t["p99"] for _, t in rows], 0.4, label="p99")
    ax1.set_ylabel("search latency (ms)")
    ax1.legend()
    ax2.scatter([t["p50"] for _, t in rows], [t["ndcg"] for _, t in rows])
    for name, t in rows:
        ax2.annotate(name, (t["p50"], t["ndcg"]), fontsize=7)
    ax2.set_xlabel("p50 latency (ms)")
    ax2.set_ylabel("nDCG@10")
    for ax in (ax1,):
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=7)
    fig.suptitle(f"SPLADE vs BM25 on {info.engine} {info.version}")
    fig.tight_layout()
    fig.savefig(args.out / "latency.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
