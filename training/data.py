"""Training data: a BEIR folder or a JSONL/Parquet pairs file in, the columns of a
sentence-transformers training dataset (`query, positive, negative_1..n[, label]`) out.

Hard negatives come from BM25 (in-process, `splade_es.bm25`), from a live search engine index (any
callable `(query_texts: {qid: text}, k) -> {qid: [doc ids]}`; `engine_searcher` builds one on
`splade_es.search` with the connection's auth), or from the current SPLADE model by exact sparse
scoring. Teacher scores for distillation come from a TSV `query_id<TAB>doc_id<TAB>score` or from
`training.teacher`. Bad data raises `DataError` naming the file and line.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splade_es.corpus import ReadStats, read_documents, read_qrels, read_queries, text_lines

Negatives = dict[str, list[str]]
Searcher = Callable[[Mapping[str, str], int], Mapping[str, Sequence[str]]]


class DataError(ValueError):
    """Training data that cannot be used, with the file and line at fault."""


@dataclass
class BeirData:
    """A BEIR dataset held in memory: documents as full text (title + body)."""

    docs: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: Path | None = None
    given_negatives: dict[str, list[str]] = field(default_factory=dict)
    """Negatives named by the input itself (a pairs file's `negatives`), used before mined ones."""


def read_corpus(path: Path) -> dict[str, str]:
    """`{doc id: title + text}`; any unusable line (bad JSON, missing id, empty text) is an error."""
    if not path.is_file():
        raise DataError(f"{path}: corpus file not found")
    stats = ReadStats()
    docs: dict[str, str] = {}
    for doc in read_documents(path, stats):
        if stats.rejected:
            break
        docs[doc.id] = doc.full_text
    if stats.rejected:
        bad = stats.rejected[0]
        raise DataError(f"{bad.source}:{bad.line}: {bad.reason}")
    if not docs:
        raise DataError(f"{path}: no documents")
    return docs


def read_query_file(path: Path) -> dict[str, str]:
    """`{query id: text}`; a bad line or an empty query text is an error naming the line."""
    if not path.is_file():
        raise DataError(f"{path}: queries file not found")
    try:
        return read_queries(path)
    except ValueError as exc:
        raise DataError(str(exc)) from exc


def read_qrels_checked(
    path: Path, docs: Mapping[str, str] | None = None, queries: Mapping[str, str] | None = None
) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (optional header); ids missing from `docs`/`queries` are errors naming the line."""
    if not path.is_file():
        raise DataError(f"{path}: qrels file not found")
    try:
        qrels = read_qrels(path, docs, queries)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    if not qrels:
        raise DataError(f"{path}: no judgements")
    return qrels


def load_beir(beir_dir: Path, split: str = "train", qrels_path: Path | None = None) -> BeirData:
    """Read `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` (or `qrels_path`), checked."""
    beir_dir = Path(beir_dir)
    docs = read_corpus(beir_dir / "corpus.jsonl")
    queries = read_query_file(beir_dir / "queries.jsonl")
    qrels = read_qrels_checked(qrels_path or beir_dir / "qrels" / f"{split}.tsv", docs, queries)
    return BeirData(docs, queries, qrels, beir_dir)


def read_teacher_scores(
    path: Path, docs: Mapping[str, str] | None = None, queries: Mapping[str, str] | None = None
) -> dict[str, dict[str, float]]:
    """Teacher scores TSV `query_id doc_id score` (tabs or spaces; optional header)."""
    if not Path(path).is_file():
        raise DataError(f"{path}: teacher scores file not found")
    scores: dict[str, dict[str, float]] = {}
    for number, line in text_lines(Path(path)):
        parts = line.split()
        if len(parts) != 3:
            raise DataError(f"{path}:{number}: expected 'query_id doc_id score', got {line!r}")
        try:
            value = float(parts[2])
        except ValueError:
            if number == 1:
                continue  # header
            raise DataError(f"{path}:{number}: score {parts[2]!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise DataError(f"{path}:{number}: score {parts[2]!r} is not finite")
        if queries is not None and parts[0] not in queries:
            raise DataError(f"{path}:{number}: query id {parts[0]!r} is not in the queries file")
        if docs is not None and parts[1] not in docs:
            raise DataError(f"{path}:{number}: document id {parts[1]!r} is not in the corpus")
        scores.setdefault(parts[0], {})[parts[1]] = value
    if not scores:
        raise DataError(f"{path}: no teacher scores")
    return scores


# Hard negatives --------------------------------------------------------------------------------


def _exclude_positives(
    ranked: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], depth: int
) -> Negatives:
    out: Negatives = {}
    for qid, doc_ids in ranked.items():
        positives = {d for d, g in qrels.get(qid, {}).items() if g > 0}
        out[qid] = [d for d in doc_ids if d not in positives][:depth]
    return out


def bm25_negatives(data: BeirData, qids: Sequence[str], depth: int = 50) -> Negatives:
    """Top BM25 documents per query that are not judged relevant (in-process BM25)."""
    from splade_es.bm25 import BM25

    bm25 = BM25(list(data.docs), list(data.docs.values()))
    run = bm25.search({q: data.queries[q] for q in qids}, k=depth + 20)
    return _exclude_positives({q: list(r) for q, r in run.items()}, data.qrels, depth)


def engine_searcher(
    client: Any,
    info: Any,
    index: str,
    mode: str = "bm25",
    encoder: Any = None,
    text_field: str | None = None,
) -> Searcher:
    """A `Searcher` over a live Elasticsearch/OpenSearch index (`splade_es.search`, with the
    connection's auth): BM25 on the text field, or SPLADE / hybrid with `encoder`."""
    from splade_es.query import Hybrid
    from splade_es.search import Searcher as IndexSearcher

    if mode != "bm25" and encoder is None:
        raise ValueError(f"engine mode {mode!r} needs a query encoder")
    searcher = IndexSearcher.for_index(client, info, index, encoder, force_model=True)
    if text_field:  # BM25 on a field other than the index's recorded text fields
        searcher.hybrid = Hybrid(text_fields=(text_field,))

    def search(queries: Mapping[str, str], k: int) -> dict[str, list[str]]:
        qids = list(queries)
        hits = searcher.search_many([queries[q] for q in qids], mode, size=k)  # type: ignore[arg-type]
        return {q: [h.id for h in found] for q, found in zip(qids, hits, strict=True)}

    return search


def searcher_negatives(
    data: BeirData, qids: Sequence[str], searcher: Searcher, depth: int = 50
) -> Negatives:
    """Negatives from any `Searcher` (an engine hook); ids not in the corpus are dropped."""
    ranked = searcher({q: data.queries[q] for q in qids}, depth + 20)
    return _exclude_positives(
        {q: [d for d in ranked.get(q, []) if d in data.docs] for q in qids}, data.qrels, depth
    )


def splade_run(
    data: BeirData, qids: Sequence[str], encoder: Any, batch_size: int = 32, progress: bool = False
) -> dict[str, dict[str, float]]:
    """Exact scores of a `SpladeEncoder` for `qids` over the whole corpus (`{qid: {doc: score}}`,
    positive scores only)."""
    from splade_es.evaluation import ExactSparseIndex

    ids = list(data.docs)
    vectors = encoder.encode_documents([data.docs[d] for d in ids], batch_size, progress)
    index = ExactSparseIndex(ids, vectors)
    queries = encoder.encode_queries([data.queries[q] for q in qids], batch_size)
    return index.search(dict(zip(qids, queries, strict=True)), k=len(ids))


def run_negatives(
    data: BeirData, run: Mapping[str, Mapping[str, float]], depth: int = 50
) -> Negatives:
    """The top `depth` non-relevant documents of a ranked run (e.g. `splade_run`)."""
    return _exclude_positives({q: list(r) for q, r in run.items()}, data.qrels, depth)


def merge_negatives(*sources: Negatives) -> Negatives:
    """Interleave several negative lists per query, without duplicates."""
    out: Negatives = {}
    for qid in {q for s in sources for q in s}:
        lists = [s.get(qid, []) for s in sources]
        seen: dict[str, None] = {}
        for rank in range(max((len(x) for x in lists), default=0)):
            for x in lists:
                if rank < len(x):
                    seen.setdefault(x[rank], None)
        out[qid] = list(seen)
    return out


def split_dev(
    qids: Sequence[str], fraction: float = 0.1, max_queries: int = 100, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Hold out a slice of training queries for dev evaluation: (train qids, dev qids)."""
    ordered = sorted(qids)
    random.Random(seed).shuffle(ordered)
    n_dev = min(max_queries, int(len(ordered) * fraction)) if fraction > 0 else 0
    if n_dev and len(ordered) - n_dev < 1:
        n_dev = len(ordered) - 1
    return sorted(ordered[n_dev:]), sorted(ordered[:n_dev])


# Pairs files -----------------------------------------------------------------------------------


def _pair_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
        return list(enumerate(table.to_pylist(), start=1))
    records = []
    for number, line in text_lines(path):
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: bad JSON: {exc}") from exc
    return records


def read_pairs(path: Path) -> BeirData:
    """Training pairs from JSONL or Parquet: `query`, `positive` (texts) and optional `negatives`
    (a list of texts) per record; texts get ids so mining and dev splits work as on BEIR."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pairs file not found")
    queries: dict[str, str] = {}
    docs: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    doc_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    given: dict[str, list[str]] = {}

    def doc_id(text: str) -> str:
        if text not in doc_ids:
            doc_ids[text] = f"d{len(doc_ids)}"
            docs[doc_ids[text]] = text
        return doc_ids[text]

    for number, record in _pair_records(path):
        where = f"{path}:{number}" if path.suffix != ".parquet" else f"{path} row {number}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected an object with 'query' and 'positive'")
        query, positive = record.get("query"), record.get("positive")
        for name, value in (("query", query), ("positive", positive)):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: '{name}' must be a non-empty text")
        negatives = record.get("negatives") or []
        if not isinstance(negatives, list) or not all(
            isinstance(n, str) and n.strip() for n in negatives
        ):
            raise DataError(f"{where}: 'negatives' must be a list of non-empty texts")
        if not isinstance(query, str) or not isinstance(positive, str):
            raise DataError(f"{where}: 'query' and 'positive' must be texts")
        qid = query_ids.setdefault(query, f"q{len(query_ids)}")
        queries[qid] = query
        qrels.setdefault(qid, {})[doc_id(positive)] = 1
        given.setdefault(qid, []).extend(doc_id(n) for n in negatives)
    if not qrels:
        raise DataError(f"{path}: no pairs")
    return BeirData(docs, queries, qrels, path, {q: v for q, v in given.items() if v})


def load_training_data(source: Path, split: str = "train") -> BeirData:
    """A BEIR folder (with `qrels/<split>.tsv`) or a JSONL/Parquet pairs file."""
    source = Path(source)
    if source.is_dir():
        return load_beir(source, split)
    if not source.exists():
        raise DataError(f"{source}: not found (expected a BEIR folder or a pairs file)")
    if source.suffix not in (".jsonl", ".json", ".parquet"):
        raise DataError(f"{source}: pairs files are .jsonl or .parquet")
    return read_pairs(source)


# Training rows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowPlan:
    """How many negatives each row carries and how many passes of fresh negatives to draw."""

    n_negatives: int
    passes: int = 1
    depth: int = 50
    seed: int = 0


def negative_columns(n: int) -> list[str]:
    return [f"negative_{i + 1}" for i in range(n)]


def build_rows(
    data: BeirData,
    qids: Sequence[str],
    negatives: Mapping[str, Sequence[str]],
    plan: RowPlan,
    teacher: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, list[Any]]:
    """Columns `query, positive, negative_1..n` (texts) and, with teacher scores, `label`
    (`[score(positive), score(negative_1), ...]`), one row per (query, relevant doc) per pass.

    Each pass draws its negatives afresh from the top `depth` mined ones (seeded, so a resumed run
    sees the same rows); with a teacher only teacher-scored documents are used.
    """
    columns: dict[str, list[Any]] = {"query": [], "positive": []}
    for name in negative_columns(plan.n_negatives):
        columns[name] = []
    if teacher is not None:
        columns["label"] = []
    all_docs = list(data.docs)
    for copy in range(plan.passes):
        rng = random.Random(f"{plan.seed}-{copy}")
        for qid in qids:
            positives = {d for d, g in data.qrels.get(qid, {}).items() if g > 0}
            pool = [d for d in negatives.get(qid, [])[: plan.depth] if d not in positives]
            scored = teacher.get(qid, {}) if teacher is not None else None
            if scored is not None:
                pool = [d for d in pool if d in scored]
            for positive in sorted(positives):
                if scored is not None and positive not in scored:
                    continue
                picked = _pick(rng, pool, plan.n_negatives, positives, all_docs, scored is None)
                if picked is None:
                    continue  # a teacher-scored query without scored negatives
                columns["query"].append(data.queries[qid])
                columns["positive"].append(data.docs[positive])
                for name, doc in zip(negative_columns(plan.n_negatives), picked, strict=True):
                    columns[name].append(data.docs[doc])
                if scored is not None:
                    columns["label"].append([scored[positive], *(scored[d] for d in picked)])
    if not columns["query"]:
        raise DataError("no training rows (no relevant documents, or none the teacher scored)")
    return columns


def _pick(
    rng: random.Random,
    pool: Sequence[str],
    n: int,
    positives: set[str],
    all_docs: Sequence[str],
    top_up_randomly: bool,
) -> list[str] | None:
    if n == 0:
        return []
    if len(pool) >= n:
        return rng.sample(list(pool), n)
    if not top_up_randomly:  # teacher scores exist only for the pool: repeat some of it
        return list(pool) + rng.choices(list(pool), k=n - len(pool)) if pool else None
    picked = list(pool)
    candidates = [d for d in rng.sample(list(all_docs), min(len(all_docs), 4 * n + 16))]
    picked += [d for d in candidates if d not in positives and d not in picked][: n - len(picked)]
    while len(picked) < n:  # tiny corpora: allow repeats
        picked.append(rng.choice(list(all_docs)))
    return picked


def balanced_rows(
    columns: Mapping[str, Sequence[Any]], n: int, seed: int = 0
) -> dict[str, list[Any]]:
    """`n` of `build_rows`' rows spread evenly over their queries (round robin, each query's rows
    in a seeded order), so a collection whose queries have hundreds of positives (NFCorpus) takes
    its share of a mixed run with many queries rather than with a few queries' many documents."""
    by_query: dict[str, list[int]] = {}
    for row, query in enumerate(columns["query"]):
        by_query.setdefault(query, []).append(row)
    rng = random.Random(f"{seed}-balance")
    queues = [rng.sample(rows, len(rows)) for rows in by_query.values()]
    rng.shuffle(queues)
    picked: list[int] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        picked += [queue[depth] for queue in queues if depth < len(queue)]
        if len(picked) >= n:
            break
    picked = picked[:n]
    return {name: [values[row] for row in picked] for name, values in columns.items()}
