"""The cross-collection table without an engine: exact scores over whole corpora, in process.

For training-time checks (no node to start, nothing to index) and as a reference for the engine:
- SPLADE: exact dot products of the query vectors with every document vector (float weights, no
  quantization or pruning).
- BM25: `splade_es.bm25` (Lucene's formula, k1=0.9, b=0.4, lowercase `\\w+` tokens, no stemming),
  on the document's title and text. It is not the engine's analyzer, so its numbers differ a little
  from an engine's BM25 (e.g. OpenSearch's english analyzer stems).
- hybrid: `bm25_weight * BM25 + splade_weight * SPLADE` over every document (default 1:1), the
  same fusion as the engine's default hybrid (`sum`: one bool query adding the two scores).

Encoded corpora are cached as the files `splade-es encode` writes (float features, text kept, so
`index-vectors` can load them), under a key of the model, its settings and the corpus file: a
second run with the same model reads them instead of encoding minutes of text again; the engine
path indexes the same files (`index_collection`), so both paths score the same vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splade_es.beir_eval import Collection
from splade_es.bm25 import BM25
from splade_es.corpus import Document, EncodedWriter, read_documents, read_encoded
from splade_es.evaluation import ExactSparseIndex, Run
from splade_es.models import ModelNotFoundError, read_settings
from splade_es.query import QueryPruning
from splade_es.records import EncodedRecord
from splade_es.sparse import SparseVector

DEFAULT_CACHE = Path("~/.cache/splade-es/eval")
QUERY_CHUNK = 256


@dataclass(frozen=True)
class ExactSettings:
    """The fixed choices of the in-process path (recorded in the table's settings)."""

    depth: int = 100
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    bm25_weight: float = 1.0
    splade_weight: float = 1.0

    def describe(self) -> dict[str, Any]:
        return {
            "path": "in-process (exact)",
            "bm25": f"splade_es.bm25 k1={self.bm25_k1} b={self.bm25_b}, lowercase \\w+ tokens",
            "hybrid": f"{self.bm25_weight} * BM25 + {self.splade_weight} * SPLADE (raw scores)",
            "depth": self.depth,
        }


def _folder_stamp(location: str) -> list[Any]:
    """Size and mtime of a local model folder's files (a retrained folder gets a new cache key)."""
    folder = Path(location)
    if not folder.is_dir():
        return [location]
    return sorted(
        [p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in folder.iterdir() if p.is_file()
    )


def _content_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (a 70 MB corpus in a few tenths of a second)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _documents_location(documents_of: str | None) -> str | None:
    """The document side's location of the model `documents_of` names, if it can be read."""
    if not documents_of:
        return None
    try:
        return read_settings(documents_of).document
    except (ModelNotFoundError, OSError, ValueError):  # gone or unreadable: key on this model
        return None


def cache_key(encoder: Any, corpus: Path) -> str:
    """What the encoded corpus depends on: the document model, its dtype and truncation, and
    the corpus's bytes. Not the corpus's path or mtime: a dataset folder copied afresh (a new
    checkout, a new machine) holds the same text, and encoding it again costs minutes. A model
    whose document side is another's bit for bit (`documents_of`: a query side trained against a
    frozen one) shares that model's corpora."""
    side = encoder.document_side
    location = _documents_location(encoder.settings.documents_of) or side.location
    parts = {
        "model": location,
        "model_files": _folder_stamp(location),
        "dtype": str(getattr(side.model, "dtype", type(side.model).__name__)),
        "doc_max_length": encoder.settings.doc_max_length,
        "corpus": [corpus.stat().st_size, _content_digest(corpus)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def encoded_corpus(
    encoder: Any,
    collection: Collection,
    cache_dir: Path = DEFAULT_CACHE,
    batch_size: int = 32,
    model_name: str | None = None,
) -> Path:
    """The collection's corpus encoded by `encoder` (float features, text kept), from the cache
    or encoded now and cached; a bad corpus line is an error naming it."""
    from splade_es.batch_encode import encode_corpus, encoder_profile

    cache_dir = cache_dir.expanduser()
    path = cache_dir / f"{collection.name}-{cache_key(encoder, collection.corpus)}.jsonl"
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    docs = list(_documents(collection.corpus))
    with EncodedWriter(path) as writer:
        encode_corpus(
            encoder, docs, writer, quantization=None, batch_size=batch_size, total=len(docs)
        )
    model = model_name or encoder.settings.document
    encoder_profile(encoder, model, quantization=None).write(path)
    return path


def _documents(corpus: Path) -> list[Document]:
    from splade_es.corpus import ReadStats

    stats = ReadStats()
    docs = list(read_documents(corpus, stats))
    if stats.rejected:
        bad = stats.rejected[0]
        raise ValueError(f"{corpus}:{bad.line}: {bad.reason}")
    return docs


def load_encoded(path: Path) -> tuple[list[str], list[str], list[SparseVector]]:
    """(ids, full texts, vectors over feature names) from an encoded-records file."""
    ids, texts, vectors = [], [], []
    for number, item in read_encoded(path):
        if not isinstance(item, EncodedRecord):
            raise ValueError(f"{path}:{number}: {item.reason} (delete the file to re-encode)")
        ids.append(item.id)
        texts.append(Document(item.id, item.title or "", item.text or "").full_text)
        vectors.append(SparseVector.from_mapping(item.features))
    return ids, texts, vectors


def _top(scores: np.ndarray, ids: list[str], depth: int) -> dict[str, float]:
    k = min(depth, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k] if k else np.arange(0)
    top = top[np.argsort(-scores[top], kind="stable")]
    return {ids[i]: float(scores[i]) for i in top if scores[i] > 0}


class ExactRuns:
    """A `beir_eval.RunSource` scoring whole corpora in process (see the module docstring)."""

    def __init__(
        self,
        encoder: Any,
        cache_dir: Path = DEFAULT_CACHE,
        settings: ExactSettings = ExactSettings(),
        batch_size: int = 32,
        model_name: str | None = None,
        pruning: QueryPruning | None = None,
    ) -> None:
        self.encoder = encoder
        self.pruning = pruning
        """Query pruning as `search --top-k` applies it: what a pruned query finds, exactly."""
        self.cache_dir = cache_dir
        self.settings = settings
        self.batch_size = batch_size
        self.model_name = model_name

    def __call__(self, collection: Collection, queries: Mapping[str, str]) -> dict[str, Run]:
        path = encoded_corpus(
            self.encoder, collection, self.cache_dir, self.batch_size, self.model_name
        )
        ids, texts, vectors = load_encoded(path)
        bm25 = BM25(ids, texts, self.settings.bm25_k1, self.settings.bm25_b)
        splade = ExactSparseIndex(ids, vectors)
        qids = list(queries)
        # one encoding of the queries, shared by SPLADE and hybrid
        encoded = self.encoder.encode_queries(
            [queries[q] for q in qids], batch_size=self.batch_size
        )
        if self.pruning is not None:
            encoded = [self.pruning.apply(v) for v in encoded]
        features = [
            SparseVector.from_mapping(v.to_features(None)) if len(v) else v for v in encoded
        ]
        position = {d: i for i, d in enumerate(ids)}
        runs: dict[str, Run] = {"bm25": {}, "splade": {}, "hybrid": {}}
        s = self.settings
        for start in range(0, len(qids), QUERY_CHUNK):
            chunk = qids[start : start + QUERY_CHUNK]
            lexical = bm25.scores([queries[q] for q in chunk])
            learned = splade.scores(features[start : start + QUERY_CHUNK])
            fused = s.bm25_weight * lexical + s.splade_weight * learned
            for row, qid in enumerate(chunk):
                if collection.drop_self_hits and qid in position:
                    # the query's own document never counts: rank the next one in its place
                    for matrix in (lexical, learned, fused):
                        matrix[row, position[qid]] = 0.0
                runs["bm25"][qid] = _top(lexical[row], ids, s.depth)
                runs["splade"][qid] = _top(learned[row], ids, s.depth)
                runs["hybrid"][qid] = _top(fused[row], ids, s.depth)
        return runs


def cache_dir_from_env() -> Path:
    """`SPLADE_ES_EVAL_CACHE`, else `~/.cache/splade-es/eval`."""
    return Path(os.environ.get("SPLADE_ES_EVAL_CACHE", str(DEFAULT_CACHE))).expanduser()


def index_collection(
    client: Any,
    info: Any,
    encoder: Any,
    collection: Collection,
    index: str,
    field_name: str = "splade",
    cache_dir: Path | None = None,
    model_name: str | None = None,
    batch_size: int = 32,
) -> str:
    """Fill `index` with the collection's corpus when it does not exist yet (encoded once, through
    the in-process path's cache, so both paths score the same vectors); a line saying what it did."""
    from splade_es.client import EngineError
    from splade_es.indexing import index_file
    from splade_es.indices import resolve_index

    if resolve_index(client, index) is not None:
        return f"{collection.name}: index {index!r} exists"
    path = encoded_corpus(encoder, collection, cache_dir or DEFAULT_CACHE, batch_size, model_name)
    summary = index_file(client, info, path, index, field_name, show_progress=False)
    if not summary.adds_up() or summary.rejected or summary.dead_lettered:
        raise EngineError(f"{collection.name}: indexing {index!r} lost documents: {summary.line()}")
    client.indices.refresh(index=index)
    return f"{collection.name}: indexed {summary.line()} into {index!r}"
