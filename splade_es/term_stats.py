"""Corpus-wide document frequencies of SPLADE terms, counted once when the documents are encoded.

A query term held by a large share of the corpus has a long posting list: it costs the most to
score and, with SPLADE's near-uniform head-term weights, separates documents least. Elasticsearch's
`sparse_vector` query prunes such terms per shard, from each shard's own statistics, so shards can
disagree on the same query; a table counted over the whole corpus gives every shard (and every
engine) the same query. It is a JSON file beside the encoded corpus: `<file>.df.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from splade_es.files import write_atomically
from splade_es.records import EncodedRecord


@dataclass
class FrequencyCounter:
    """Counts a table while records stream by (a writer, a Beam combiner); partial counts merge."""

    documents: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, record: EncodedRecord) -> None:
        self.documents += 1
        self.counts.update(record.features.keys())

    def merge(self, other: FrequencyCounter) -> None:
        self.documents += other.documents
        self.counts.update(other.counts)

    def table(self) -> DocumentFrequencies:
        return DocumentFrequencies(self.documents, dict(self.counts))


@dataclass(frozen=True)
class DocumentFrequencies:
    """How many of `documents` hold each feature (engine feature names, as indexed)."""

    documents: int
    counts: dict[str, int]

    @classmethod
    def count(cls, records: Iterable[EncodedRecord]) -> DocumentFrequencies:
        counter = FrequencyCounter()
        for record in records:
            counter.add(record)
        return counter.table()

    def ratio(self, feature: str) -> float:
        """The share of documents holding `feature` (0 for an unseen one)."""
        return self.counts.get(feature, 0) / self.documents if self.documents else 0.0

    @staticmethod
    def path_for(corpus: Path) -> Path:
        return corpus.with_name(corpus.name + ".df.json")

    def dumps(self) -> str:
        return json.dumps({"documents": self.documents, "counts": self.counts})

    def save(self, path: Path) -> None:
        write_atomically(path, self.dumps())

    @classmethod
    def load(cls, path: Path) -> DocumentFrequencies:
        """Read a table; a missing or malformed file is a ValueError naming it."""
        try:
            data = json.loads(path.read_text())
            documents, counts = int(data["documents"]), data["counts"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a document-frequency table ({exc})") from exc
        if documents < 1 or not isinstance(counts, dict):
            raise ValueError(f"{path}: a document-frequency table needs documents >= 1 and counts")
        return cls(documents, {str(k): int(v) for k, v in counts.items()})
