"""Evaluation across BEIR collections: one table, collection by collection plus the mean.

A model tuned on one collection can lose quality on every other one; this measures it. Each
collection is scored on its own (its own corpus, queries and qrels; with an engine, its own index)
for BM25, SPLADE and hybrid, and the table adds the unweighted mean over collections, as the BEIR
paper reports it. The runs come from a `RunSource`: the engine (`engine_runs`) or the exact
in-process path (`splade_es.exact_eval`). Queries are encoded once per collection, however many
modes use them (`QueryCache`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splade_es.corpus import read_qrels, read_queries
from splade_es.evaluation import MEASURES, Qrels, Run, evaluate
from splade_es.sparse import SparseVector

MODES = ("bm25", "splade", "hybrid")
METRICS = tuple(MEASURES)


@dataclass(frozen=True)
class Collection:
    """One BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`) and how to score it."""

    name: str
    path: Path
    split: str = "test"
    drop_self_hits: bool = False
    """Remove a query's own id from its ranking (ArguAna: queries are corpus arguments)."""

    @property
    def corpus(self) -> Path:
        return self.path / "corpus.jsonl"

    @property
    def qrels_path(self) -> Path:
        return self.path / "qrels" / f"{self.split}.tsv"

    def qrels(self) -> dict[str, dict[str, int]]:
        return read_qrels(self.qrels_path)

    def queries(self, qrels: Qrels) -> dict[str, str]:
        """The split's judged queries, in file order."""
        return {q: t for q, t in read_queries(self.path / "queries.jsonl").items() if q in qrels}


def _missing(folder: Path, split: str) -> list[str]:
    wanted = ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")
    return [name for name in wanted if not (folder / name).is_file()]


def find_collections(
    folders: Iterable[Path], split: str = "test", drop_self_hits: Iterable[str] = ()
) -> list[Collection]:
    """The collections in `folders`: each one a BEIR folder, or a folder of BEIR folders (its
    subfolders with the split's qrels, by name; others, e.g. a corpus without queries, are skipped).

    `drop_self_hits` names the collections whose queries are documents of their own corpus.
    ValueError names the folder or name that is wrong.
    """
    found: list[Collection] = []
    drop = set(drop_self_hits)
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"--beir-dir {folder}: not a folder")
        if (folder / "corpus.jsonl").is_file() or (folder / "queries.jsonl").is_file():
            if missing := _missing(folder, split):
                raise ValueError(f"--beir-dir {folder}: no {', '.join(missing)}")
            paths = [folder]
        else:
            paths = [p for p in sorted(folder.iterdir()) if p.is_dir() and not _missing(p, split)]
            if not paths:
                raise ValueError(
                    f"--beir-dir {folder}: neither a BEIR folder nor a folder of BEIR folders "
                    f"(corpus.jsonl, queries.jsonl, qrels/{split}.tsv)"
                )
        for path in paths:
            name = path.name
            if any(c.name == name for c in found):
                raise ValueError(f"--beir-dir {path}: a second collection named {name!r}")
            found.append(Collection(name, path, split, name in drop))
    unknown = drop - {c.name for c in found}
    if unknown:
        raise ValueError(
            f"--drop-self-hits {', '.join(sorted(unknown))}: no such collection "
            f"(have {', '.join(c.name for c in found)})"
        )
    return found


def without_self_hits(run: Run) -> Run:
    """Each query's ranking without the document that has the query's own id."""
    return {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}


class QueryCache:
    """A query encoder that encodes each distinct text once (in batches when primed), so BM25,
    SPLADE and hybrid runs of one collection share one encoding of its queries."""

    def __init__(self, encoder: Any, batch_size: int = 32) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.vectors: dict[str, SparseVector] = {}

    def prime(self, texts: Iterable[str]) -> None:
        """Encode the texts not seen yet, as one batched call."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            vectors = self.encoder.encode_queries(missing, batch_size=self.batch_size)
            self.vectors.update(zip(missing, vectors, strict=True))

    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        self.prime(texts)
        return [self.vectors[t] for t in texts]

    def encode_query(self, text: str) -> SparseVector:
        self.prime([text])
        return self.vectors[text]


RunSource = Callable[[Collection, Mapping[str, str]], Mapping[str, Run]]
"""Given a collection and its judged queries `{qid: text}`, a run `{qid: {doc: score}}` per mode."""


@dataclass
class CrossTable:
    """Metrics per collection and mode, and their unweighted mean over collections."""

    rows: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """`{collection: {mode: {metric: value}}}`."""
    queries: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    """How the runs were made (printed under the table, kept in the JSON)."""

    @property
    def modes(self) -> list[str]:
        return list(dict.fromkeys(m for row in self.rows.values() for m in row))

    def mean(self) -> dict[str, dict[str, float]]:
        """Per mode and metric, the mean over the collections that have that mode."""
        out: dict[str, dict[str, float]] = {}
        for mode in self.modes:
            values = [row[mode] for row in self.rows.values() if mode in row]
            out[mode] = {m: sum(v[m] for v in values) / len(values) for m in METRICS}
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "collections": {
                name: {"queries": self.queries[name], "modes": row}
                for name, row in self.rows.items()
            },
            "mean": self.mean(),
            "settings": self.settings,
        }

    def render(self, metrics: Sequence[str] = ("ndcg@10", "recall@100")) -> str:
        """A plain-text table: one row per collection, then the mean; a column per mode/metric."""
        short = {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "recall@100": "R@100"}
        columns = [(mode, m) for m in metrics for mode in self.modes]
        head = f"{'collection':<14} {'queries':>7} " + " ".join(
            f"{mode + ' ' + short[m]:>16}" for mode, m in columns
        )
        lines = [head]
        table = [*((n, self.queries[n], r) for n, r in self.rows.items())]
        table.append(("mean", sum(self.queries.values()), self.mean()))
        for name, count, row in table:
            cells = " ".join(
                f"{row[mode][m]:>16.4f}" if mode in row else f"{'-':>16}" for mode, m in columns
            )
            lines.append(f"{name:<14} {count:>7} {cells}")
        return "\n".join(lines)


def cross_table(
    collections: Sequence[Collection],
    runs: RunSource,
    settings: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CrossTable:
    """Score every collection with `runs` and gather the table (self hits dropped where asked)."""
    table = CrossTable(settings=dict(settings or {}))
    for collection in collections:
        qrels = collection.qrels()
        queries = collection.queries(qrels)
        if not queries:
            raise ValueError(
                f"{collection.name}: no query of {collection.qrels_path} is in queries.jsonl"
            )
        row: dict[str, dict[str, float]] = {}
        for mode, run in runs(collection, queries).items():
            if collection.drop_self_hits:
                run = without_self_hits(run)
            row[mode] = evaluate(run, qrels)
        table.rows[collection.name] = row
        table.queries[collection.name] = len(queries)
        if progress is not None:
            scores = ", ".join(f"{m} {v['ndcg@10']:.4f}" for m, v in row.items())
            progress(f"{collection.name}: {len(queries)} queries, nDCG@10 {scores}")
    if collections:
        table.settings.setdefault(
            "self_hits_dropped", [c.name for c in collections if c.drop_self_hits]
        )
    return table


def engine_runs(
    variants: Mapping[str, tuple[Any, str]], queries: Mapping[str, str], depth: int = 100
) -> dict[str, Run]:
    """Runs through an engine: `variants` maps each mode's name to (a `search.Searcher` on the
    collection's index, the mode it searches in). Their encoder should be one `QueryCache`, primed
    with the queries, so no mode encodes a query again."""
    qids = list(queries)
    texts = [queries[q] for q in qids]
    out: dict[str, Run] = {}
    for name, (searcher, mode) in variants.items():
        if isinstance(searcher.encoder, QueryCache) and mode != "bm25":
            searcher.encoder.prime(texts)
        hits = searcher.search_many(texts, mode, size=depth)
        out[name] = {q: {h.id: h.score for h in hs} for q, hs in zip(qids, hits, strict=True)}
    return out


def write_json(table: CrossTable, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.to_json(), indent=2) + "\n")
