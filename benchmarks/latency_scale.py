"""SPLADE vs BM25 latency as the corpus grows: a judged collection inside real distractors.

`--distractors`: the collection's documents, then the Wikipedia passages encoded by
`benchmarks.distractors`, then (past them) documents spliced from the collection; without it the
corpus is the collection then spliced documents only (the older, synthetic report). One node
holds, per corpus size, the BM25 text and the full SPLADE field in one index (so BM25, SPLADE and
hybrid run on the same node, JVM and documents), plus document-pruned copies of the SPLADE field;
a second node (OpenSearch 3.6, `--seismic-url`) holds the same vectors in a `sparse_vector` field
with the SEISMIC approximate method. Every variant runs every SciFact test query: client round
trip and engine `took` percentiles one query at a time, throughput with 1 and 4 clients, nDCG@10
and recall@100 against the qrels, and recall@100 against exact full SPLADE on the same corpus
(what an approximation loses). Each size's results go to `<out>/<size>.json`;
`--report` turns all of them into README.md and plots (latency vs size, fitted slopes, Pareto).

    python -m splade_es.benchmarks.latency_scale --distractors --sizes 5183,100000,671341,1000000
    python -m splade_es.benchmarks.latency_scale --report

`--shapes` instead compares query shapes on the main index, interleaved (each query runs every
shape in a rotating order, so a drift of the machine hits all shapes alike): counting totals
(`track_total_hits: true`) or not, and under a term filter matching ~10% of the documents,
`minimum_should_match` 1 or 0 on the scoring clauses; it also checks the top hits are identical.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from opensearchpy import OpenSearch

from splade_es.bulk import BulkOptions, BulkWriter
from splade_es.client import ConnectionSettings, EngineInfo, open_cluster
from splade_es.corpus import read_qrels, read_queries
from splade_es.encoder import SpladeEncoder
from splade_es.evaluation import evaluate
from splade_es.fusion import Fusion
from splade_es.indices import ShardLayout, SpladeField, ensure_index, force_merge
from splade_es.models import DEFAULT_MODEL, model_identity, serves
from splade_es.options import LAYOUT, shard_layout
from splade_es.query import QueryPruning
from splade_es.records import EncodedRecord, FieldProfile
from splade_es.search import Mode, Searcher
from splade_es.search_pipelines import TwoPhase
from splade_es.sparse import SparseVector, token_from_feature_name
from splade_es.term_stats import DocumentFrequencies

from . import paths
from .distractors import CACHE, MixedCorpus
from .synthetic import CorpusShape, Recombiner, df_correlation, load_real

RESULTS = paths.RESULTS / "latency_scale"
SCIFACT = paths.SCIFACT
QUANTIZATION = 100.0
Transform = Callable[[EncodedRecord], EncodedRecord]


@dataclass(frozen=True)
class DocPruning:
    """A document-pruned copy of the SPLADE field, in its own (sparse-only) index."""

    name: str
    top_k: int | None = None
    alpha_mass: float | None = None

    def apply(self, record: EncodedRecord) -> EncodedRecord:
        vector = SparseVector.from_mapping(record.features)
        kept = vector.prune(top_k=self.top_k, alpha_mass=self.alpha_mass)
        return EncodedRecord(record.id, dict(kept.weights))


DOC_PRUNINGS = (DocPruning("doc-top64", top_k=64), DocPruning("doc-mass80", alpha_mass=0.8))
TUNED_TWO_PHASE = TwoPhase(prune_ratio=0.6, expansion_rate=2.0)


@dataclass(frozen=True)
class Variant:
    """One way to answer a query: which index (suffix), which mode, which pruning."""

    name: str
    mode: Mode
    index: str = ""
    """'' (the main index), a DocPruning name, or 'seismic' (the 3.6 node)."""
    top_k: int | None = None
    threshold: float | None = None
    max_df_ratio: float | None = None
    rescore_window: int | None = None
    two_phase: TwoPhase | None = None
    seismic_top_n: int = 10
    seismic_heap_factor: float = 1.0
    fusion: str | None = None
    """A hybrid as two searches in one `_msearch`, fused by the client (`Fusion.parse`)."""


VARIANTS = (
    Variant("BM25", "bm25"),
    Variant("SPLADE full", "splade"),
    Variant("query top-10", "splade", top_k=10),
    Variant("query weight >= 0.5", "splade", threshold=0.5),
    Variant("query DF <= 10%", "splade", max_df_ratio=0.1),
    Variant("two-phase (top-5, rescore 100)", "splade", top_k=5, rescore_window=100),
    Variant("OpenSearch two-phase (0.4, 5)", "splade", two_phase=TwoPhase()),
    Variant("OpenSearch two-phase (0.6, 2)", "splade", two_phase=TUNED_TWO_PHASE),
    Variant("doc top-64", "splade", index="doc-top64"),
    Variant("doc mass 80%", "splade", index="doc-mass80"),
    Variant(
        "doc mass 80% + two-phase (0.6, 2)", "splade", index="doc-mass80", two_phase=TUNED_TWO_PHASE
    ),
    Variant("SEISMIC top_n 10", "splade", index="seismic"),
    Variant(
        "SEISMIC top_n 50, heap 1.5",
        "splade",
        index="seismic",
        seismic_top_n=50,
        seismic_heap_factor=1.5,
    ),
    Variant("hybrid BM25 + SPLADE", "hybrid"),
    Variant("hybrid + two-phase (0.6, 2)", "hybrid", two_phase=TUNED_TWO_PHASE),
    # the project's own two-phase on the hybrid: BM25 + SPLADE's 5 heaviest terms retrieve, the
    # full hybrid rescores 100 (a Lucene `rescore`: Elasticsearch has no two-phase processor)
    Variant("hybrid + two-phase (top-5, rescore 100)", "hybrid", top_k=5, rescore_window=100),
    # BM25 and SPLADE as two searches of one `_msearch` (the node runs them side by side), their
    # top 100 each fused at the client: what `search --fusion METHOD@client` sends and computes
    Variant("hybrid, sum of two searches (client)", "hybrid", fusion="sum@client"),
    Variant("hybrid, rrf of two searches (client)", "hybrid", fusion="rrf@client"),
)


REQUIRED = ("BM25", "SPLADE full")
"""Every ratio is to BM25 and every recall to full SPLADE: these two always run."""


def chosen_variants(skipped: Sequence[str]) -> tuple[Variant, ...]:
    """VARIANTS less those `--skip-variant` names (an unknown or a required name is refused)."""
    names = [v.name for v in VARIANTS]
    for name in skipped:
        if name not in names:
            raise ValueError(
                f"--skip-variant {name!r}: no such variant (one of: {', '.join(names)})"
            )
        if name in REQUIRED:
            raise ValueError(f"--skip-variant {name!r}: {' and '.join(REQUIRED)} always run")
    return tuple(v for v in VARIANTS if v.name not in skipped)


@dataclass(frozen=True)
class Shape:
    """One query shape for `--shapes`: mode, whether totals are counted, filter and msm."""

    name: str
    mode: Mode
    track_total_hits: bool = False
    filtered: bool = False
    minimum_should_match: int = 1
    same_as: str | None = None
    """The shape whose top hits this one must equal (checked, counted in the report)."""
    nested: bool = False
    """The filter around the whole query (a disjunction inside a conjunction), for comparison
    with the flat form `query.filtered` gives SPLADE and the sum hybrid."""


SHAPES = (
    Shape("BM25", "bm25"),
    Shape("BM25, counting totals", "bm25", track_total_hits=True, same_as="BM25"),
    Shape("SPLADE full", "splade"),
    Shape("SPLADE full, counting totals", "splade", track_total_hits=True, same_as="SPLADE full"),
    Shape("hybrid", "hybrid"),
    Shape("hybrid, counting totals", "hybrid", track_total_hits=True, same_as="hybrid"),
    Shape("filtered BM25, msm 1", "bm25", filtered=True),
    Shape("filtered BM25, msm 0", "bm25", filtered=True, minimum_should_match=0),
    Shape("filtered SPLADE, msm 1", "splade", filtered=True),
    Shape(
        "filtered SPLADE, msm 0",
        "splade",
        filtered=True,
        minimum_should_match=0,
        same_as="filtered SPLADE, msm 1",
    ),
    Shape(
        "filtered SPLADE, msm 1, nested",
        "splade",
        filtered=True,
        nested=True,
        same_as="filtered SPLADE, msm 1",
    ),
    Shape("filtered hybrid, msm 1", "hybrid", filtered=True),
    Shape(
        "filtered hybrid, msm 0",
        "hybrid",
        filtered=True,
        minimum_should_match=0,
        same_as="filtered hybrid, msm 1",
    ),
    Shape(
        "filtered hybrid, msm 1, nested",
        "hybrid",
        filtered=True,
        nested=True,
        same_as="filtered hybrid, msm 1",
    ),
)
# Filter candidates: frequent SciFact terms, stemmed (english analyzer) and not (standard).
FILTER_WORDS = (
    "cell", "cells", "patient", "patients", "studi", "study", "protein", "proteins", "express",
    "expression", "increas", "increased", "associ", "associated", "diseas", "disease", "risk",
    "gene", "genes", "human", "effect", "effects", "level", "levels", "activ", "role",
)  # fmt: skip


def term_filter_near(
    client: OpenSearch, index: str, share: float = 0.1, words: tuple[str, ...] = FILTER_WORDS
) -> tuple[dict[str, Any], float]:
    """A `term` filter on the BM25 field matching the share of documents closest to `share`
    (production queries carry filters; this one needs no extra field in the documents)."""
    total = int(client.count(index=index)["count"])
    best: tuple[float, dict[str, Any]] | None = None
    for word in words:
        query = {"term": {"content": word}}
        got = int(client.count(index=index, body={"query": query})["count"]) / max(1, total)
        if got and (best is None or abs(got - share) < abs(best[0] - share)):
            best = (got, query)
    if best is None:
        raise RuntimeError(f"no candidate filter term occurs in {index}")
    return best[1], best[0]


@dataclass
class Timing:
    p50: float
    p90: float
    p99: float
    took_p50: float
    qps_1: float
    qps_4: float


@dataclass
class Result:
    variant: str
    timing: Timing
    ndcg10: float
    recall100: float
    exact_recall100: float | None
    """Recall@100 against full SPLADE's top 100 on the same corpus (SPLADE variants)."""
    query_terms: float


@dataclass
class SizeRun:
    size: int
    engine: str
    seismic_engine: str | None
    index_bytes: dict[str, int]
    load_seconds: dict[str, float]
    shape: CorpusShape
    df_correlation: float
    encode_ms_p50: float
    results: list[Result] = field(default_factory=list)
    command: str = ""
    makeup: dict[str, int] | None = None
    """Real distractors (`--distractors`): judged, Wikipedia and spliced documents; None: the
    synthetic corpus (real documents, then spliced ones)."""
    nodes: int = 1
    shards: int = 1
    replicas: int = 0
    """Where the main indexes lived (`--shards`, `--replicas` on a cluster of `nodes`)."""
    warmed_all: bool = False
    """Every variant's queries ran once before any was timed (runs before that: only each
    variant's own untimed pass)."""
    model: str = DEFAULT_MODEL
    """The model that encodes the queries (`--model`)."""
    documents_model: str | None = None
    """The model that encoded the corpus (`documents_model`): `model`, or the one whose document
    side `model` was trained against. None in runs from before it was recorded."""
    end_to_end_ms_p50: float | None = None
    """Full SPLADE as a user's search runs it, one query at a time: encode, then search."""
    queries: int = 300
    """How many of the judged collection's test queries ran (`--queries`)."""
    seismic_postings: int | None = None
    """SEISMIC's `n_postings` at this size (None: not built here, or a run from before it was
    recorded)."""
    seismic_memory: dict[str, int] | None = None
    """The SEISMIC node's `neural_search` circuit breaker after SEISMIC's queries ran: what its
    caches (clustered postings, forward index) held, the limit, and how often it tripped."""


def index_prefix(distractors: bool, model: str) -> str:
    """`wiki-` (real distractors) or `scale-` (spliced), then the model's folder name unless it
    is the default: indexes are reused when their count is right, so two models' indexes must
    never share a name."""
    prefix = "wiki-" if distractors else "scale-"
    if model == DEFAULT_MODEL:
        return prefix
    slug = re.sub(r"[^a-z0-9._-]+", "-", Path(model).name.lower()).strip("-._")
    return f"{prefix}{slug}-"


def documents_model(encoded: Path, model: str) -> str:
    """The model whose vectors fill the indexes: the one that encoded `encoded` (its profile;
    `model` when it has none). Indexes are named after it, so a query encoder trained on its
    document side (`--freeze-documents`) reuses them instead of loading a million documents
    again; a `model` it does not serve (`models.serves`) is refused, since its queries would be
    scored against another model's vectors."""
    made = (FieldProfile.read(encoded) or FieldProfile()).model or model
    if not serves(made, model):
        raise SystemExit(
            f"--encoded {encoded} holds vectors of {made}, which --model {model} cannot query "
            "(neither that model nor trained on its document side): encode its own corpus"
        )
    return made


def main_index(size: int, prefix: str = "scale-") -> str:
    """The main index of one corpus size (`wiki-` for the real-distractor corpus)."""
    return f"{prefix}{size}"


class Corpus(Protocol):
    """What a size's documents come from: the judged collection, then distractors."""

    real: Sequence[EncodedRecord]

    def documents(self, size: int) -> Iterator[EncodedRecord]: ...


def ids_of(response: dict[str, Any]) -> dict[str, float]:
    return {str(h["_id"]): float(h["_score"] or 0.0) for h in response["hits"]["hits"]}


FUSED = "_fused"
"""A request body of this one key holds the BM25 and SPLADE bodies of a client-fused hybrid."""


def send(
    client: OpenSearch, index: str, body: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """One request as a user's search sends it: a `search`, or for a client-fused hybrid the one
    `_msearch` of its two bodies that `Searcher.search_many` sends, fused by the same
    `Searcher.fused_hits` into a response of the same shape (`took`: the slower of the two)."""
    if FUSED not in body:
        return dict(client.search(index=index, body=body, params=params))
    searcher, bodies = body[FUSED]
    lines = "".join(f"{json.dumps({'index': index})}\n{json.dumps(b)}\n" for b in bodies)
    bm25, splade = client.msearch(body=lines)["responses"]
    fused = searcher.fused_hits(bm25, splade, size=100)
    return {
        "took": max(bm25["took"], splade["took"]),
        "hits": {"hits": [{"_id": h.id, "_score": h.score} for h in fused]},
    }


def measure(
    client: OpenSearch, index: str, requests: list[tuple[dict[str, Any], dict[str, Any]]]
) -> tuple[Timing, list[dict[str, float]]]:
    """Latency one query at a time, then throughput with 4 clients, after one untimed pass over
    every query (a 1M-document index is read from disk the first time)."""
    for body, params in requests:
        send(client, index, body, params)
    latencies, took, hits = [], [], []
    start_all = time.perf_counter()
    for body, params in requests:
        start = time.perf_counter()
        response = send(client, index, body, params)
        latencies.append((time.perf_counter() - start) * 1000)
        took.append(float(response["took"]))
        hits.append(ids_of(response))
    qps_1 = len(requests) / (time.perf_counter() - start_all)

    def run(chunk: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        for body, params in chunk:
            send(client, index, body, params)

    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, [requests[i::4] for i in range(4)]))
    qps_4 = len(requests) / (time.perf_counter() - start)
    timing = Timing(
        statistics.median(latencies),
        float(np.percentile(latencies, 90)),
        float(np.percentile(latencies, 99)),
        statistics.median(took),
        qps_1,
        qps_4,
    )
    return timing, hits


def measure_interleaved(
    client: OpenSearch, index: str, bodies: dict[str, list[dict[str, Any]]]
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, float]]]]:
    """Client latency (ms) of every body, interleaved: query i runs each shape once, starting
    from a rotating shape, after one untimed pass over everything."""
    names = list(bodies)
    for name in names:
        for body in bodies[name]:
            client.search(index=index, body=body)
    latencies: dict[str, list[float]] = {n: [] for n in names}
    hits: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for i in range(len(bodies[names[0]])):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            response = client.search(index=index, body=bodies[name][i])
            latencies[name].append((time.perf_counter() - start) * 1000)
            hits[name].append(ids_of(response))
    return latencies, hits


def same_hits(a: dict[str, float], b: dict[str, float]) -> bool:
    """`a` has `b`'s hits first (same order, same scores to float32 precision), then only
    score-0 ones: what `minimum_should_match: 0` adds when fewer documents match than asked."""
    head, tail = list(a)[: len(b)], list(a)[len(b) :]
    return (
        head == list(b)
        and all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(b[k])) for k in b)
        and all(a[k] == 0 for k in tail)
    )


def shapes_report(runs: list[dict[str, Any]], command: str) -> str:
    """Markdown: per size, each shape's p50/p90/p99 and p50 ratios."""
    lines = [
        "# Query shapes that keep Lucene's dynamic pruning",
        "",
        f"Interleaved (every query runs every shape, rotating order), one untimed pass first; "
        f"machine: {platform.machine()}, 2 cores shared by the node and the client.",
    ]
    for run in runs:
        rows = {r["shape"]: r for r in run["rows"]}
        bm25 = rows["BM25"]["p50"]
        fbm25 = rows["filtered BM25, msm 1"]["p50"]
        lines += [
            "",
            f"## {run['size']:,} documents, {run['engine']}, top {run['hits']}, "
            f"{run['queries']} queries; filter {json.dumps(run['filter'])} "
            f"matches {run['filter_share']:.1%}",
            "",
            "| shape | p50 ms | p90 | p99 | p50 × BM25 | p50 × filtered BM25 | identical top hits |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in run["rows"]:
            same = (
                ""
                if "identical_top_hits" not in r
                else f"{r['identical_top_hits']}/{run['queries']}"
            )
            lines.append(
                f"| {r['shape']} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | "
                f"{r['p50'] / bm25:.2f} | {r['p50'] / fbm25:.2f} | {same} |"
            )
    return "\n".join([*lines, "", "Command:", "", f"    {command}", ""])


@dataclass
class Bench:
    """Builds the indexes of one corpus size and runs every variant on them."""

    client: OpenSearch
    info: EngineInfo
    seismic: tuple[OpenSearch, EngineInfo] | None
    encoder: SpladeEncoder
    corpus: Corpus
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    rebuild: bool = False
    seismic_postings: float = 0.002
    """`n_postings` as a share of the corpus (at least 500; OpenSearch's own default: 0.0005)."""
    seismic_max_size: int = 100_000
    """SEISMIC's merge-time clustering took 326 s for 100k documents here: larger sizes skip it."""
    seismic_memory_limit: str | None = None
    """`plugins.neural_search.circuit_breaker.limit` set on the SEISMIC node before it loads
    (None: the node's own, 10% of its heap): SEISMIC's caches live in that budget."""
    log: Callable[[str], None] = print
    prefix: str = "scale-"
    """Index names: `<prefix><size>` (the synthetic and the mixed corpora must not share one)."""
    layout: ShardLayout = field(default_factory=ShardLayout)
    """Shards and replicas of the main indexes (SEISMIC's stays on one shard)."""
    model: str = DEFAULT_MODEL
    """What `encoder` was loaded from (named in each run and the report)."""
    documents_model: str = DEFAULT_MODEL
    """What encoded the corpus (`documents_model`; the indexes are named after it)."""
    variants: tuple[Variant, ...] = VARIANTS
    """What runs (`--skip-variant` leaves some out, and the indexes only they read)."""

    def index_name(self, size: int) -> str:
        return main_index(size, self.prefix)

    def runs_variant(self, variant: Variant, size: int) -> bool:
        """SEISMIC and OpenSearch's two-phase processor exist only on OpenSearch (SEISMIC up to
        `seismic_max_size`)."""
        if variant.index == "seismic":
            return self.runs_seismic(size)
        return variant.two_phase is None or self.info.engine == "opensearch"

    def run(self, size: int) -> SizeRun:
        frequencies = DocumentFrequencies.count(self.corpus.documents(size))
        sample = list(self.corpus.documents(min(size, len(self.corpus.real) + 5000)))
        shape = CorpusShape.of(sample[len(self.corpus.real) :] or sample)
        loads, sizes = self.build(size)
        encode_ms = []
        for text in self.queries.values():
            start = time.perf_counter()
            self.encoder.encode_query(text)
            encode_ms.append((time.perf_counter() - start) * 1000)
        run = SizeRun(
            size,
            f"{self.info.engine} {self.info.version}",
            f"{self.seismic[1].engine} {self.seismic[1].version}" if self.seismic else None,
            sizes,
            loads,
            shape,
            df_correlation(self.real_frequencies, frequencies),
            statistics.median(encode_ms),
            makeup=self.corpus.makeup(size) if isinstance(self.corpus, MixedCorpus) else None,
            nodes=self.nodes(),
            shards=self.layout.shards,
            replicas=self.layout.replicas,
            model=self.model,
            documents_model=self.documents_model,
            queries=len(self.queries),
        )
        exact: list[dict[str, float]] | None = None
        self.warm_up(size, frequencies)
        run.warmed_all = True
        for variant in self.variants:
            if not self.runs_variant(variant, size):
                continue
            timing, hits, terms = self.variant(size, variant, frequencies)
            if variant.name == "SPLADE full":
                exact = hits
            run.results.append(self.result(variant, timing, hits, terms, exact))
            self.log(f"{size} {variant.name}: {asdict(run.results[-1])}")
        if any(v.index == "seismic" and self.runs_variant(v, size) for v in self.variants):
            run.seismic_postings = self.n_postings(size)
            run.seismic_memory = self.seismic_memory()
        run.end_to_end_ms_p50 = statistics.median(self.end_to_end(size))
        return run

    def end_to_end(self, size: int) -> list[float]:
        """Milliseconds per query of full SPLADE as `search` runs it: the query encoded (in
        `Searcher.body`) and sent, one at a time, after the timed variants warmed the index."""
        index = self.index_name(size)
        searcher = Searcher.for_index(self.client, self.info, index, self.encoder)
        took = []
        for text in self.queries.values():
            start = time.perf_counter()
            body = {**searcher.body(text, "splade", size=100), "_source": False}
            self.client.search(index=index, body=body)
            took.append((time.perf_counter() - start) * 1000)
        return took

    @cached_property
    def query_vectors(self) -> dict[str, SparseVector]:
        """Each query encoded once, for the term counts and the SEISMIC bodies."""
        return {text: self.encoder.encode_query(text) for text in self.queries.values()}

    @cached_property
    def real_frequencies(self) -> DocumentFrequencies:
        return DocumentFrequencies.count(self.corpus.real)

    def runs_seismic(self, size: int) -> bool:
        return self.seismic is not None and size <= self.seismic_max_size

    def n_postings(self, size: int) -> int:
        return max(500, int(self.seismic_postings * size))

    def seismic_memory(self) -> dict[str, int]:
        """The SEISMIC node's `neural_search` breaker, summed over its nodes."""
        assert self.seismic is not None
        nodes = self.seismic[0].nodes.stats(metric="breaker")["nodes"].values()
        breakers = [n["breakers"]["neural_search"] for n in nodes]
        return {
            "estimated_bytes": sum(int(b["estimated_size_in_bytes"]) for b in breakers),
            "limit_bytes": sum(int(b["limit_size_in_bytes"]) for b in breakers),
            "tripped": sum(int(b["tripped"]) for b in breakers),
        }

    def result(
        self,
        variant: Variant,
        timing: Timing,
        hits: list[dict[str, float]],
        terms: float,
        exact: list[dict[str, float]] | None,
    ) -> Result:
        quality = evaluate(dict(zip(self.queries, hits, strict=True)), self.qrels)
        overlap = None
        if variant.mode == "splade" and exact is not None:
            overlap = statistics.fmean(
                len(set(h) & set(e)) / max(1, len(e)) for h, e in zip(hits, exact, strict=True)
            )
        return Result(
            variant.name, timing, quality["ndcg@10"], quality["recall@100"], overlap, terms
        )

    def variant(
        self, size: int, variant: Variant, frequencies: DocumentFrequencies
    ) -> tuple[Timing, list[dict[str, float]], float]:
        client, index, requests, terms = self.requests(size, variant, frequencies)
        timing, hits = measure(client, index, requests)
        return timing, hits, terms

    def warm_up(self, size: int, frequencies: DocumentFrequencies) -> None:
        """Every variant's queries once before any is timed: on a cluster, the variants timed
        first otherwise pay for the JVMs' warm-up (BM25, timed first, read 1.7-2x slower than
        after the others had run)."""
        for variant in self.variants:
            if self.runs_variant(variant, size):
                client, index, requests, _ = self.requests(size, variant, frequencies)
                for body, params in requests:
                    send(client, index, body, params)

    def requests(
        self, size: int, variant: Variant, frequencies: DocumentFrequencies
    ) -> tuple[OpenSearch, str, list[tuple[dict[str, Any], dict[str, Any]]], float]:
        """Where a variant's queries go, the requests, and their mean query terms."""
        texts = list(self.queries.values())
        if variant.index == "seismic":
            assert self.seismic is not None
            no_params: dict[str, Any] = {}
            seismic = [(self.seismic_body(t, variant), no_params) for t in texts]
            terms = float(statistics.fmean(len(self.query_vectors[t]) for t in texts))
            return self.seismic[0], f"{self.index_name(size)}-seismic", seismic, terms
        index = self.index_name(size) + (f"-{variant.index}" if variant.index else "")
        pruning = QueryPruning(
            top_k=variant.top_k,
            threshold=variant.threshold,
            max_df_ratio=variant.max_df_ratio,
            frequencies=frequencies if variant.max_df_ratio is not None else None,
        )
        searcher = Searcher.for_index(
            self.client,
            self.info,
            index,
            self.encoder,
            pruning=pruning,
            rescore_window=variant.rescore_window,
            two_phase=variant.two_phase,
            fusion=Fusion.parse(variant.fusion) if variant.fusion else None,
        )
        if variant.fusion:
            fused_requests: list[tuple[dict[str, Any], dict[str, Any]]] = [
                ({FUSED: (searcher, searcher.fused_bodies(t, 100))}, {}) for t in texts
            ]
            mean = statistics.fmean(len(pruning.apply(self.query_vectors[t])) for t in texts)
            return self.client, index, fused_requests, mean
        pipeline = searcher.pipeline(variant.mode)
        params = {"search_pipeline": pipeline} if pipeline else {}
        requests: list[tuple[dict[str, Any], dict[str, Any]]] = [
            ({**searcher.body(t, variant.mode, size=100), "_source": False}, params) for t in texts
        ]
        terms = 0.0
        if variant.mode != "bm25":
            terms = statistics.fmean(len(pruning.apply(self.query_vectors[t])) for t in texts)
        return self.client, index, requests, terms

    def seismic_body(self, text: str, variant: Variant) -> dict[str, Any]:
        """A `neural_sparse` ANN query: token ids, 100 hits, the method's own query pruning."""
        vector = self.query_vectors[text]
        tokens = {str(self.vocabulary[t]): w for t, w in vector.weights}
        return {
            "size": 100,
            "_source": False,
            "query": {
                "neural_sparse": {
                    "splade": {
                        "query_tokens": tokens,
                        "method_parameters": {
                            "k": 100,
                            "top_n": variant.seismic_top_n,
                            "heap_factor": variant.seismic_heap_factor,
                        },
                    }
                }
            },
        }

    # ------------------------------------------------------------------ query shapes

    def shapes(self, size: int, hits: int = 10) -> dict[str, Any]:
        """Every shape on the main index, interleaved; p50/p90/p99 and identical-hit counts."""
        index = self.index_name(size)
        loads, sizes = self.build(size, main_only=True)
        filter_, share = term_filter_near(self.client, index)
        base = Searcher.for_index(self.client, self.info, index, self.encoder)
        texts = list(self.queries.values())
        bodies: dict[str, list[dict[str, Any]]] = {}
        for shape in SHAPES:
            searcher = replace(
                base,
                track_total_hits=shape.track_total_hits,
                filter=filter_ if shape.filtered else None,
                minimum_should_match=shape.minimum_should_match,
            )
            if shape.nested:
                searcher = replace(searcher, filter=None)
            bodies[shape.name] = [
                {**searcher.body(t, shape.mode, size=hits), "_source": False} for t in texts
            ]
            if shape.nested:
                for body in bodies[shape.name]:
                    body["query"] = {
                        "bool": {
                            "should": [body["query"]],
                            "filter": [filter_],
                            "minimum_should_match": shape.minimum_should_match,
                        }
                    }
        latencies, results = measure_interleaved(self.client, index, bodies)
        rows = []
        for shape in SHAPES:
            times = latencies[shape.name]
            row: dict[str, Any] = {
                "shape": shape.name,
                "p50": statistics.median(times),
                "p90": float(np.percentile(times, 90)),
                "p99": float(np.percentile(times, 99)),
            }
            if shape.same_as is not None:
                pairs = zip(results[shape.name], results[shape.same_as], strict=True)
                row["identical_top_hits"] = sum(same_hits(a, b) for a, b in pairs)
            rows.append(row)
            self.log(f"{size} {row}")
        return {
            "size": size,
            "engine": f"{self.info.engine} {self.info.version}",
            "hits": hits,
            "queries": len(texts),
            "filter": filter_,
            "filter_share": share,
            "load_seconds": loads,
            "index_bytes": sizes,
            "rows": rows,
        }

    # ------------------------------------------------------------------ building

    def build(self, size: int, main_only: bool = False) -> tuple[dict[str, float], dict[str, int]]:
        """Create and fill the indexes of this size (kept when already complete)."""
        loads: dict[str, float] = {}
        sizes: dict[str, int] = {}
        # (node, index, how each document is turned into that index's record, create body)
        targets: list[tuple[OpenSearch, str, Transform | None, dict[str, Any] | None]] = [
            (self.client, self.index_name(size), None, None)
        ]
        read = {v.index for v in self.variants}
        if not main_only:
            targets += [
                (self.client, f"{self.index_name(size)}-{p.name}", p.apply, None)
                for p in DOC_PRUNINGS
                if p.name in read
            ]
        if (
            not main_only
            and "seismic" in read
            and self.seismic is not None
            and self.runs_seismic(size)
        ):
            if self.seismic_memory_limit is not None:
                self.seismic[0].cluster.put_settings(
                    body={
                        "transient": {
                            "plugins.neural_search.circuit_breaker.limit": self.seismic_memory_limit
                        }
                    }
                )
            seismic = (self.token_ids, self.seismic_mapping(size))
            targets.append((self.seismic[0], f"{self.index_name(size)}-seismic", *seismic))
        for client, index, transform, body in targets:
            if self.rebuild or self.count(client, index) != size:
                records = self.corpus.documents(size)
                if transform is not None:
                    records = map(transform, records)
                loads[index] = self.load(client, index, records, body)
            sizes[index] = self.size_on_disk(client, index)
        self.settle([index for client, index, *_ in targets if client is self.client])
        return loads, sizes

    def settle(self, indices: list[str]) -> None:
        """Wait until no shard of `indices` is copying or moving: on a cluster, replicas recover
        and the balancer relocates shards for minutes after loading, and timings taken
        meanwhile measure that, not the queries. (Other indices' health is not ours to wait
        for: a node may hold a yellow index of someone else's.)"""
        wanted = "green" if self.layout.replicas < self.nodes() else "yellow"
        health = self.client.cluster.health(
            index=",".join(indices),
            wait_for_status=wanted,
            wait_for_no_relocating_shards=True,
            wait_for_no_initializing_shards=True,
            timeout="900s",
            request_timeout=910,
        )
        if health.get("timed_out"):
            self.log(f"{','.join(indices)} still {health.get('status')} after 900 s: timing anyway")

    def seismic_mapping(self, size: int) -> dict[str, Any]:
        postings = self.n_postings(size)
        return {
            "settings": {"index": {"sparse": True, "number_of_shards": 1, "number_of_replicas": 0}},
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "splade": {
                        "type": "sparse_vector",
                        "method": {
                            "name": "seismic",
                            "parameters": {
                                "n_postings": postings,
                                "cluster_ratio": 0.1,
                                "summary_prune_ratio": 0.4,
                                # only the merged segment is clustered, not every flush
                                "approximate_threshold": max(1000, size // 2),
                            },
                        },
                    }
                },
            },
        }

    def token_ids(self, record: EncodedRecord) -> EncodedRecord:
        """SEISMIC fields take vocabulary ids as keys and float weights."""
        vocabulary = self.vocabulary
        return EncodedRecord(
            record.id,
            {
                str(vocabulary[token_from_feature_name(name)]): weight / QUANTIZATION
                for name, weight in record.features.items()
            },
        )

    @cached_property
    def vocabulary(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.encoder.document_side.id_to_token)}

    def nodes(self) -> int:
        return int(self.client.cluster.health()["number_of_nodes"])

    @staticmethod
    def count(client: OpenSearch, index: str) -> int:
        if not client.indices.exists(index=index):
            return -1
        client.indices.refresh(index=index)
        return int(client.count(index=index)["count"])

    def load(
        self,
        client: OpenSearch,
        index: str,
        records: Iterator[EncodedRecord],
        body: dict[str, Any] | None,
    ) -> float:
        """Bulk-load through the project's writer, then merge to one segment (timed together)."""
        client.indices.delete(index=index, ignore_unavailable=True)
        if body is None:
            splade = SpladeField(quantization=QUANTIZATION)
            ensure_index(client, self.info, index, splade=splade, layout=self.layout)
        else:
            client.indices.create(index=index, body=body)
        client.indices.put_settings(index=index, body={"index": {"refresh_interval": "-1"}})
        start = time.perf_counter()
        writer = BulkWriter(client, index, options=BulkOptions(chunk_size=1000, concurrency=2))
        failed = sum(1 for *_, letter in writer.write(enumerate(records)) if letter is not None)
        if failed:
            raise RuntimeError(f"{failed} documents refused while loading {index}")
        client.indices.put_settings(index=index, body={"index": {"refresh_interval": "1s"}})
        client.indices.refresh(index=index)
        force_merge(client, index)
        seconds = time.perf_counter() - start
        self.log(f"loaded {index}: {self.count(client, index)} docs in {seconds:.0f} s")
        return seconds

    @staticmethod
    def size_on_disk(client: OpenSearch, index: str) -> int:
        client.indices.flush(index=index)
        stats = client.indices.stats(index=index, metric="store")
        return int(stats["indices"][index]["primaries"]["store"]["size_in_bytes"])


# ---------------------------------------------------------------------- report


def load_runs(folder: Path) -> list[SizeRun]:
    runs = []
    for path in sorted(folder.glob("*.json"), key=lambda p: int(p.stem)):
        data = json.loads(path.read_text())
        data["shape"] = CorpusShape(**data["shape"])
        data["results"] = [
            Result(**{**r, "timing": Timing(**r["timing"])}) for r in data["results"]
        ]
        runs.append(SizeRun(**data))
    return runs


def slopes(runs: list[SizeRun]) -> dict[str, float]:
    """Fitted p50 growth per variant, ms per million documents (least squares over the sizes)."""
    out = {}
    names = {r.variant for run in runs for r in run.results}
    for name in names:
        points = [
            (run.size, r.timing.p50) for run in runs for r in run.results if r.variant == name
        ]
        if len(points) >= 2:
            x, y = np.array(points, dtype=float).T
            out[name] = float(np.polyfit(x / 1e6, y, 1)[0])
    return out


WITHIN_FULL, TARGET_P50, TARGET_P99, TARGET_HYBRID, TARGET_SLOPE = 0.01, 1.2, 2.0, 2.0, 1.5
"""The latency issue's bar: a SPLADE variant within 1% of full SPLADE's nDCG@10 at p50 <= 1.2x
BM25's and p99 <= 2x, a slope <= 1.5x BM25's; hybrid p50 <= 2x."""


def target_rows(runs: list[SizeRun], slope: dict[str, float]) -> list[str]:
    """Per size, the fastest SPLADE variant that keeps full SPLADE's nDCG@10 (within 1%) and the
    fastest hybrid, as multiples of BM25, each against its target: met, or missed by how much."""

    def verdict(value: float, target: float) -> str:
        met = "met" if value <= target else f"missed by {value / target - 1:.0%}"
        return f"{value:.2f} ({met})"

    rows = [
        "",
        "## Targets",
        "",
        f"The bar (latency issue): a SPLADE variant within {WITHIN_FULL:.0%} of full SPLADE's "
        f"nDCG@10 at p50 ≤ {TARGET_P50:g}× BM25's and p99 ≤ {TARGET_P99:g}×, its slope ≤ "
        f"{TARGET_SLOPE:g}× BM25's; hybrid p50 ≤ {TARGET_HYBRID:g}×. Per size, the fastest variant "
        "that keeps the nDCG, and the fastest hybrid:",
        "",
        "| documents | fastest within 1% | nDCG@10 vs full | p50 × BM25 | p99 × BM25 | slope × "
        "BM25's | fastest hybrid | hybrid p50 × BM25 |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for run in runs:
        by_name = {r.variant: r for r in run.results}
        bm25, full = by_name["BM25"].timing, by_name["SPLADE full"]
        kept = [
            r
            for r in run.results
            if not r.variant.startswith(("BM25", "hybrid"))
            and r.ndcg10 >= (1 - WITHIN_FULL) * full.ndcg10
        ]
        best = min(kept, key=lambda r: r.timing.p50)
        hybrids = [r for r in run.results if r.variant.startswith("hybrid")]
        grows = best.variant in slope and slope.get("BM25", 0.0) > 0
        slope_ratio = slope[best.variant] / slope["BM25"] if grows else None
        cells = [
            f"{run.size:,}",
            best.variant,
            f"{best.ndcg10 / full.ndcg10 - 1:+.1%}" if full.ndcg10 > 0 else "(full 0)",
            verdict(best.timing.p50 / bm25.p50, TARGET_P50),
            verdict(best.timing.p99 / bm25.p99, TARGET_P99),
            "" if slope_ratio is None else verdict(slope_ratio, TARGET_SLOPE),
        ]
        if hybrids:
            fast = min(hybrids, key=lambda r: r.timing.p50)
            ratio = fast.timing.p50 / bm25.p50
            cells += [fast.variant, verdict(ratio, TARGET_HYBRID)]
        else:
            cells += ["", ""]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


SYNTHETIC = (
    "**What is synthetic**: the 5,183 SciFact documents are real. Larger corpora add "
    "documents spliced from two real ones (text halves; each term of either vector kept "
    "with probability 1/2), generated without running the model "
    "(`splade_es/benchmarks/synthetic.py`). Quality at 100k/1M is measured with the real "
    "documents and their qrels inside the larger corpus; the spliced distractors share "
    "half their text with real documents, so it drops more than real distractors would."
)
MIXED = (
    "**The corpus**: the 5,183 SciFact documents, judged by their qrels, inside real "
    "distractors: passages of the 2015 English Wikipedia (100-word windows, in corpus order), "
    "all encoded with the same model and dtype by `python -m splade_es.benchmarks.distractors` "
    "(bfloat16 on this CPU); only past the 666,158 passages are documents spliced from SciFact "
    "added (the table says how many). Quality is SciFact's qrels inside the mixed corpus: a "
    "passage is an unjudged document."
)


WARMED = (
    "Every variant's queries run once, untimed, before any variant is timed, and again just "
    "before its own timed pass"
)


def where(run: SizeRun) -> str:
    """Where the main indexes lived, in words."""
    if (run.nodes, run.shards, run.replicas) == (1, 1, 0):
        return "one node, one shard"
    nodes = "one node" if run.nodes == 1 else f"{run.nodes} nodes sharing this machine's 2 cores"
    return f"{nodes}, {run.shards} primary shards × {run.replicas} replica(s)"


def models_line(runs: list[SizeRun]) -> str:
    """Which model encoded the queries and, where it is another, which encoded the documents."""
    queries = dict.fromkeys(Path(run.model).name for run in runs)
    documents = dict.fromkeys(
        Path(run.documents_model).name
        for run in runs
        if run.documents_model not in (None, model_identity(run.model))
    )
    line = "Model " + ", ".join(f"`{name}`" for name in queries)
    if documents:
        names = ", ".join(f"`{name}`" for name in documents)
        line += f" (queries; the documents encoded by {names}, whose document side it shares)"
    return line


def queries_line(runs: list[SizeRun]) -> str:
    """How many test queries each size ran ("the 300" when every size ran all of them)."""
    counts = sorted({run.queries for run in runs})
    return f"the {counts[0]}" if len(counts) == 1 else "/".join(map(str, counts)) + " (by size)"


def write_report(folder: Path, command: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load_runs(folder)
    if not runs:
        raise SystemExit(f"no results in {folder}: run some sizes first")
    # a judged collection alone (no distractors, measured first, coldest) is no point on the
    # growth curve: slopes are fitted over the sizes with distractors when there are two
    with_distractors = [r for r in runs if r.makeup is None or r.size > r.makeup["judged"]]
    slope = slopes(with_distractors if len(with_distractors) >= 2 else runs)
    largest = runs[-1]
    bm25 = {run.size: next(r for r in run.results if r.variant == "BM25") for run in runs}
    lines = [
        "# SPLADE vs BM25 latency as the corpus grows",
        "",
        f"Engine: {runs[0].engine} ({where(runs[0])}, merged to one segment per shard); SEISMIC on "
        f"{runs[0].seismic_engine or 'not run'}. Machine: {platform.machine()}, 2 cores shared by "
        f"the node(s) and the client, so read ratios, not absolute numbers. {models_line(runs)}; "
        f"queries: {queries_line(runs)} SciFact test queries, top 100 hits, ids and scores only.",
        "",
        MIXED if runs[0].makeup is not None else SYNTHETIC,
        "",
        f"{WARMED if runs[0].warmed_all else 'Every query runs once untimed before the timed pass'}"
        " (a cold 1M index read BM25 at 2.7× "
        "its warm p50). *R@100 vs exact*: the share of full SPLADE's top 100 on the same corpus "
        "that a variant returns. *Two-phase (r, e)*: OpenSearch's processor with prune ratio r and "
        "expansion rate e; *two-phase (top-5, rescore 100)*: the project's own (5 heaviest terms "
        "retrieve, the full query rescores 100). SEISMIC runs up to `--seismic-max-size` (its "
        "merge-time clustering is the slowest build here). Slopes are least-squares fits of p50 "
        "over the sizes with distractors (BM25's may be flat: then no ratio).",
        "",
        "| corpus | judged / Wikipedia / spliced | docs sampled for the shape | SPLADE terms/doc "
        "(median) | words/doc (median) | DF correlation with real | query encode p50 ms | "
        "encode + search p50 ms (full SPLADE, one at a time) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        m = run.makeup or {"judged": min(run.size, 5183), "wikipedia": 0}
        spliced = run.size - m["judged"] - m["wikipedia"]
        lines.append(
            f"| {run.size:,} | {m['judged']:,} / {m['wikipedia']:,} / {spliced:,} | "
            f"{run.shape.documents:,} | "
            f"{run.shape.terms_per_doc_median:.0f} | {run.shape.words_per_doc_median:.0f} | "
            f"{run.df_correlation:.3f} | {run.encode_ms_p50:.1f} | "
            f"{'' if run.end_to_end_ms_p50 is None else f'{run.end_to_end_ms_p50:.1f}'} |"
        )
    for run in runs:
        base = bm25[run.size].timing
        lines += [
            "",
            f"## {run.size:,} documents",
            "",
            "| variant | p50 ms | p90 | p99 | took p50 | p50 × BM25 | QPS 1 client | QPS 4 "
            "clients | nDCG@10 | R@100 | R@100 vs exact | query terms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in run.results:
            t = r.timing
            exact = "" if r.exact_recall100 is None else f"{r.exact_recall100:.3f}"
            lines.append(
                f"| {r.variant} | {t.p50:.1f} | {t.p90:.1f} | {t.p99:.1f} | {t.took_p50:.0f} | "
                f"{t.p50 / base.p50:.2f} | {t.qps_1:.0f} | {t.qps_4:.0f} | {r.ndcg10:.4f} | "
                f"{r.recall100:.4f} | {exact} | {r.query_terms:.1f} |"
            )
        lines += ["", "| index | size on disk MB | load + merge s |", "|---|---:|---:|"]
        for name, size in run.index_bytes.items():
            load = run.load_seconds.get(name)
            took = "reused (built by an earlier run)" if load is None else f"{load:.0f}"
            lines.append(f"| {name} | {size / 1e6:.0f} | {took} |")
        if run.seismic_memory is not None:
            memory = run.seismic_memory
            lines += [
                "",
                f"SEISMIC: `n_postings` {run.seismic_postings:,}; after its queries its node's "
                f"`neural_search` circuit breaker held {memory['estimated_bytes'] / 1e6:.0f} MB "
                f"of {memory['limit_bytes'] / 1e6:.0f} MB (tripped {memory['tripped']} times).",
            ]
    if len(with_distractors) >= 2:
        lines += [
            "",
            "## Latency slope (p50, least squares over the sizes with distractors)",
            "",
            "| variant | ms per million docs | × BM25's slope |",
            "|---|---:|---:|",
        ]
        for name in [r.variant for r in largest.results]:
            if name in slope:
                ratio = f"{slope[name] / slope['BM25']:.2f}" if slope["BM25"] > 0 else ""
                lines.append(f"| {name} | {slope[name]:.1f} | {ratio} |")
    lines += target_rows(runs, slope)
    lines += ["", "![latency vs size](latency_vs_size.png) ![pareto](pareto.png)", ""]
    commands = dict.fromkeys(run.command or command for run in runs)
    encoded_by = (
        "`python -m splade_es.benchmarks.distractors`"
        if runs[0].makeup is not None
        else "`splade-es encode --input corpus.jsonl --output scifact.parquet`"
    )
    lines += [f"Commands (the corpora encoded first with {encoded_by}):", ""]
    lines += [f"    {c}" for c in commands] + [""]
    (folder / "README.md").write_text("\n".join(lines))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
    for name in [r.variant for r in largest.results]:
        points = [
            (run.size, r.timing.p50) for run in runs for r in run.results if r.variant == name
        ]
        ax.plot(*zip(*points, strict=True), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("documents")
    ax.set_ylabel("p50 latency (ms)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(folder / "latency_vs_size.png", dpi=120)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    bm25_p50 = bm25[largest.size].timing.p50
    for r in largest.results:
        ax.scatter(r.timing.p50 / bm25_p50, r.ndcg10)
        ax.annotate(r.variant, (r.timing.p50 / bm25_p50, r.ndcg10), fontsize=6)
    ax.set_xlabel(f"p50 latency × BM25's at {largest.size:,} docs")
    ax.set_ylabel(f"nDCG@10 at {largest.size:,} docs")
    fig.tight_layout()
    fig.savefig(folder / "pareto.png", dpi=120)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoded", type=Path, help="the real corpus encoded (splade-es encode)")
    parser.add_argument(
        "--distractors",
        action="store_true",
        help="real distractors: --encoded (default: the cached SciFact) inside the Wikipedia "
        "passages encoded by `benchmarks.distractors`, spliced documents only past them",
    )
    parser.add_argument(
        "--distractor-cache",
        type=Path,
        default=CACHE,
        help="where `benchmarks.distractors --cache` put the passages (one folder per model)",
    )
    parser.add_argument("--sizes", default="5183,100000,1000000")
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--seismic-url", help="an OpenSearch 3.6+ node with neural-search")
    parser.add_argument("--beir-dir", type=Path, default=SCIFACT)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--queries", type=int, default=0, help="first N test queries (0: all)")
    parser.add_argument("--rebuild", action="store_true", help="reload even complete indexes")
    parser.add_argument(
        "--seismic-max-size", type=int, default=100_000, help="largest corpus given to SEISMIC"
    )
    parser.add_argument(
        "--seismic-postings",
        type=float,
        default=0.002,
        help="SEISMIC's n_postings as a share of the corpus, at least 500 (OpenSearch: 0.0005)",
    )
    parser.add_argument(
        "--seismic-memory-limit",
        help="the SEISMIC node's neural_search circuit breaker limit, e.g. 50%% (default: its own)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report", action="store_true", help="only write README.md from JSON")
    parser.add_argument(
        "--shapes",
        action="store_true",
        help="compare query shapes (totals counted or not; filter with msm 1 or 0), interleaved",
    )
    parser.add_argument(
        "--skip-variant",
        action="append",
        default=[],
        metavar="NAME",
        help="leave a variant out, and any index only it reads (repeatable; a full name)",
    )
    parser.add_argument("--shape-hits", type=int, default=10, help="top hits per query (--shapes)")
    for opt in LAYOUT:  # the main indexes' shards and replicas, as `index-vectors` takes them
        opt.add_argparse(parser)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else argv
    command = "python -m splade_es.benchmarks.latency_scale " + shlex.join(given)
    if not args.report:
        if args.encoded is None and args.distractors:
            args.encoded = args.distractor_cache / "scifact.parquet"
        if args.encoded is None:
            parser.error("--encoded is required to run sizes")
        made_by = documents_model(args.encoded, args.model)
        prefix = index_prefix(args.distractors, made_by)
        try:
            variants = chosen_variants(args.skip_variant)
        except ValueError as exc:
            parser.error(str(exc))
        client, info = open_cluster(ConnectionSettings(url=args.url))
        seismic = (
            open_cluster(ConnectionSettings(url=args.seismic_url)) if args.seismic_url else None
        )
        qrels = read_qrels(args.beir_dir / "qrels" / "test.tsv")
        queries = {
            q: t for q, t in read_queries(args.beir_dir / "queries.jsonl").items() if q in qrels
        }
        if args.queries:
            queries = dict(list(queries.items())[: args.queries])
        qrels = {q: qrels[q] for q in queries}
        bench = Bench(
            client,
            info,
            seismic,
            SpladeEncoder.load(args.model),
            MixedCorpus.load(args.encoded, args.distractor_cache)
            if args.distractors
            else Recombiner(load_real(args.encoded)),
            queries,
            qrels,
            args.rebuild,
            seismic_max_size=args.seismic_max_size,
            seismic_postings=args.seismic_postings,
            seismic_memory_limit=args.seismic_memory_limit,
            prefix=prefix,
            variants=variants,
            model=args.model,
            documents_model=made_by,
            layout=shard_layout(vars(args)),
        )
        if args.shapes:
            shape_runs = [bench.shapes(int(s), args.shape_hits) for s in args.sizes.split(",")]
            report = shapes_report(shape_runs, command)
            (args.out / "shapes.json").write_text(json.dumps(shape_runs, indent=1))
            (args.out / "shapes.md").write_text(report)
            print(report)
            return
        for size in (int(s) for s in args.sizes.split(",")):
            run = bench.run(size)
            run.command = command
            (args.out / f"{size}.json").write_text(json.dumps(asdict(run), indent=1))
    print(write_report(args.out, command))


if __name__ == "__main__":
    main()
