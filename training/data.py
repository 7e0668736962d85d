"""Training data: BEIR corpus/queries/qrels in, (query, positive, negatives) examples out.

Hard negatives come from BM25 (in-process, `training.bm25`), from a search engine (any callable
`(query_texts: {qid: text}, k) -> {qid: [doc ids]}`, or an Elasticsearch/OpenSearch URL), or from the
current SPLADE model by exact sparse scoring. Teacher scores for distillation come from a TSV
`query_id<TAB>doc_id<TAB>score`. Bad data raises `DataError` naming the file and line.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    from training.bm25 import BM25

    bm25 = BM25(list(data.docs), list(data.docs.values()))
    run = bm25.search({q: data.queries[q] for q in qids}, k=depth + 20)
    return _exclude_positives({q: list(r) for q, r in run.items()}, data.qrels, depth)


def engine_searcher(url: str, index: str, field_name: str = "text") -> Searcher:
    """A `Searcher` that runs a BM25 `match` query on an Elasticsearch/OpenSearch index over HTTP."""

    def search(queries: Mapping[str, str], k: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for qid, text in queries.items():
            body = json.dumps(
                {"size": k, "_source": False, "query": {"match": {field_name: text}}}
            ).encode()
            request = urllib.request.Request(
                f"{url.rstrip('/')}/{index}/_search",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                hits = json.loads(response.read())["hits"]["hits"]
            out[qid] = [str(h["_id"]) for h in hits]
        return out

    return search


def searcher_negatives(
    data: BeirData, qids: Sequence[str], searcher: Searcher, depth: int = 50
) -> Negatives:
    """Negatives from any `Searcher` (an engine hook); ids not in the corpus are dropped."""
    ranked = searcher({q: data.queries[q] for q in qids}, depth + 20)
    return _exclude_positives(
        {q: [d for d in ranked.get(q, []) if d in data.docs] for q in qids}, data.qrels, depth
    )


def splade_negatives(
    data: BeirData, qids: Sequence[str], encoder: object, depth: int = 50, batch_size: int = 32
) -> Negatives:
    """Negatives from a `SpladeEncoder` by exact sparse scoring over the whole corpus."""
    from splade_es.encoder import SpladeEncoder
    from splade_es.evaluation import ExactSparseIndex

    assert isinstance(encoder, SpladeEncoder)
    ids = list(data.docs)
    index = ExactSparseIndex(ids, encoder.encode_documents([data.docs[d] for d in ids], batch_size))
    vectors = encoder.encode_queries([data.queries[q] for q in qids], batch_size)
    run = index.search(dict(zip(qids, vectors, strict=True)), k=depth + 20)
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


# Examples and batches ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One training pair: a query and a relevant document, with its pool of hard negatives."""

    qid: str
    positive: str
    negatives: tuple[str, ...]


@dataclass
class Batch:
    """Texts for one step: `queries[i]` pairs with `docs[i]` (positive); then `n` negatives each."""

    queries: list[str]
    docs: list[str]  # B positives, then B*n negatives (query-major: negatives of query 0 first)
    n_negatives: int
    teacher: list[list[float]] | None = None  # [B][1+n]: positive then negatives
    qids: list[str] = field(default_factory=list)


def build_examples(
    data: BeirData,
    qids: Sequence[str],
    negatives: Mapping[str, Sequence[str]],
    teacher: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Example]:
    """One example per (query, relevant doc). With teacher scores, only teacher-scored docs are used."""
    examples = []
    for qid in qids:
        pool = list(negatives.get(qid, []))
        if teacher is not None:
            scored = teacher.get(qid, {})
            positives = {d for d, g in data.qrels.get(qid, {}).items() if g > 0}
            pool = [d for d in pool if d in scored] + [
                d for d in sorted(scored, key=lambda d: -scored[d]) if d not in positives
            ]
            pool = list(dict.fromkeys(pool))
        for doc_id, grade in sorted(data.qrels.get(qid, {}).items()):
            if grade <= 0:
                continue
            if teacher is not None and doc_id not in teacher.get(qid, {}):
                continue
            examples.append(Example(qid, doc_id, tuple(pool)))
    return examples


class BatchSampler:
    """Deterministic epochs of shuffled examples; `batch(step)` is a pure function of the step.

    That makes resuming exact: a restarted run at step s draws the same batches as the original.
    Examples with the same query do not share a batch (they would be false in-batch negatives).
    """

    def __init__(
        self,
        data: BeirData,
        examples: Sequence[Example],
        batch_size: int,
        n_negatives: int,
        seed: int = 0,
        teacher: Mapping[str, Mapping[str, float]] | None = None,
        negative_depth: int | None = None,
    ) -> None:
        if not examples:
            raise DataError("no training examples (no relevant documents in the training qrels?)")
        self.data = data
        self.examples = list(examples)
        self.batch_size = min(batch_size, len({e.qid for e in self.examples}))
        self.n_negatives = n_negatives
        self.seed = seed
        self.teacher = teacher
        self.depth = negative_depth
        self._epochs: dict[int, list[list[int]]] = {}
        self._random_pool = list(data.docs)

    def _epoch(self, epoch: int) -> list[list[int]]:
        if epoch not in self._epochs:
            rng = random.Random(f"{self.seed}-{epoch}")
            order = list(range(len(self.examples)))
            rng.shuffle(order)
            batches: list[list[int]] = []
            pending = order
            while pending:
                current: list[int] = []
                used: set[str] = set()
                rest = []
                for i in pending:
                    if len(current) < self.batch_size and self.examples[i].qid not in used:
                        current.append(i)
                        used.add(self.examples[i].qid)
                    else:
                        rest.append(i)
                if len(current) < self.batch_size and batches:
                    break  # drop a short tail batch
                batches.append(current)
                pending = rest
            self._epochs = {epoch: batches}
        return self._epochs[epoch]

    def steps_per_epoch(self) -> int:
        return len(self._epoch(0))

    def batch(self, step: int) -> Batch:
        per_epoch = self.steps_per_epoch()
        epoch, index = divmod(step, per_epoch)
        chosen = [self.examples[i] for i in self._epoch(epoch)[index]]
        rng = random.Random(f"{self.seed}-neg-{step}")
        queries = [self.data.queries[e.qid] for e in chosen]
        docs = [self.data.docs[e.positive] for e in chosen]
        teacher_rows: list[list[float]] | None = [] if self.teacher is not None else None
        for e in chosen:
            pool = list(e.negatives[: self.depth] if self.depth else e.negatives)
            positives = {d for d, g in self.data.qrels.get(e.qid, {}).items() if g > 0}
            if len(pool) >= self.n_negatives:
                picked = rng.sample(pool, self.n_negatives)
            elif self.teacher is not None:  # teacher-scored pool too small: repeat some
                if not pool:
                    raise DataError(f"query {e.qid!r}: no teacher-scored negative documents")
                picked = pool + rng.choices(pool, k=self.n_negatives - len(pool))
            else:  # too few mined negatives: top up with random documents
                picked = list(pool)
                want = self.n_negatives - len(picked)
                draw = rng.sample(
                    self._random_pool, min(len(self._random_pool), 4 * want + len(positives) + 8)
                )
                taken = set(picked) | positives
                picked += [d for d in draw if d not in taken][:want]
                while len(picked) < self.n_negatives:  # tiny corpora: allow repeats
                    picked.append(rng.choice(self._random_pool))
            docs.extend(self.data.docs[d] for d in picked)
            if teacher_rows is not None and self.teacher is not None:
                scored = self.teacher[e.qid]
                teacher_rows.append([scored[e.positive], *(scored[d] for d in picked)])
        return Batch(queries, docs, self.n_negatives, teacher_rows, [e.qid for e in chosen])


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
