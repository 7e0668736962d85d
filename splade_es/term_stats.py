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
from dataclasses import dataclass
from pathlib import Path

from splade_es.records import EncodedRecord


@dataclass(frozen=True)
class DocumentFrequencies:
    """How many of `documents` hold each feature (engine feature names, as indexed)."""

    documents: int
    counts: dict[str, int]

    @classmethod
    def count(cls, records: Iterable[EncodedRecord]) -> DocumentFrequencies:
        counts: Counter[str] = Counter()
        documents = 0
        for record in records:
            counts.update(record.features.keys())
            documents += 1
        return cls(documents, dict(counts))

    def ratio(self, feature: str) -> float:
        """The share of documents holding `feature` (0 for an unseen one)."""
        return self.counts.get(feature, 0) / self.documents if self.documents else 0.0

    @staticmethod
    def path_for(corpus: Path) -> Path:
        return corpus.with_name(corpus.name + ".df.json")

    def dumps(self) -> str:
        return json.dumps({"documents": self.documents, "counts": self.counts})

    def save(self, path: Path) -> None:
        path.write_text(self.dumps())

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
