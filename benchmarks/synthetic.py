"""Synthetic corpora at scale, recombined from a real encoded corpus without running the model.

Latency at 100k or 1M documents needs that many documents whose posting lists look like real
ones: document length, how many documents hold each token (DF), the weight distribution, and which
tokens occur together. A synthetic document here is two real documents spliced: the title and the
first half of the sentences of document A, the second half of document B's, and as SPLADE vector
each of A's and B's terms kept with probability 1/2 (a term both hold keeps its larger weight). So
every token keeps its real weights, DF grows in proportion to the real DF, co-occurrence survives
within each half, and the vector length stays near the real one (the report prints both).

The real documents come first, under their own ids, so SciFact's qrels still judge every corpus
size; the synthetic ones are `syn-<n>`. Deterministic for a given seed.

    python -m splade_es.benchmarks.synthetic --encoded scifact.parquet --size 100000 --out syn.parquet
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splade_es.corpus import EncodedWriter, read_encoded
from splade_es.records import DeadLetter, EncodedRecord, FieldProfile
from splade_es.term_stats import DocumentFrequencies

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def load_real(path: Path) -> list[EncodedRecord]:
    """The real encoded corpus (Parquet or JSONL, as `splade-es encode` writes it)."""
    records = [item for _, item in read_encoded(path) if not isinstance(item, DeadLetter)]
    if not records:
        raise ValueError(f"{path} holds no encoded documents")
    return records


@dataclass
class Recombiner:
    """Splices pairs of real documents into new ones (see the module docstring)."""

    real: Sequence[EncodedRecord]
    seed: int = 13

    def __post_init__(self) -> None:
        self._sentences = [SENTENCE_END.split(r.text or "") for r in self.real]
        self._terms = [list(r.features.items()) for r in self.real]

    def documents(self, size: int) -> Iterator[EncodedRecord]:
        """`size` documents: the real ones, then synthetic ones up to `size`."""
        yield from self.real[:size]
        rng = np.random.default_rng(self.seed)
        count = len(self.real)
        for number in range(max(0, size - count)):
            a, b = (int(x) for x in rng.integers(0, count, size=2))
            yield self.splice(f"syn-{number}", a, b, rng)

    def splice(self, doc_id: str, a: int, b: int, rng: np.random.Generator) -> EncodedRecord:
        first, second = self._sentences[a], self._sentences[b]
        text = " ".join(first[: (len(first) + 1) // 2] + second[len(second) // 2 :])
        features: dict[str, float] = {}
        for terms in (self._terms[a], self._terms[b]):
            keep = rng.random(len(terms)) < 0.5
            for (name, weight), kept in zip(terms, keep, strict=True):
                if kept and weight > features.get(name, 0.0):
                    features[name] = weight
        if not features:  # two tiny documents that lost every term: keep A's heaviest
            name, weight = max(self._terms[a], key=lambda kv: kv[1])
            features[name] = weight
        return EncodedRecord(doc_id, features, self.real[a].title, text)


@dataclass(frozen=True)
class CorpusShape:
    """What the report prints to show the synthetic corpus resembles the real one."""

    documents: int
    terms_per_doc_median: float
    terms_per_doc_mean: float
    words_per_doc_median: float
    weight_median: float

    @classmethod
    def of(cls, records: Sequence[EncodedRecord]) -> CorpusShape:
        terms = [len(r.features) for r in records]
        words = [len((r.text or "").split()) for r in records]
        weights = [w for r in records[:2000] for w in r.features.values()]
        return cls(
            len(records),
            statistics.median(terms),
            statistics.fmean(terms),
            statistics.median(words),
            statistics.median(weights),
        )


def df_correlation(real: DocumentFrequencies, synthetic: DocumentFrequencies) -> float:
    """Pearson correlation of per-token DF ratios (DF / documents) between two corpora."""
    tokens = sorted(set(real.counts) | set(synthetic.counts))
    x = np.array([real.ratio(t) for t in tokens])
    y = np.array([synthetic.ratio(t) for t in tokens])
    return float(np.corrcoef(x, y)[0, 1])


def write_encoded(
    records: Iterator[EncodedRecord], out: Path, profile: FieldProfile
) -> DocumentFrequencies:
    """Write documents as `splade-es encode` does (so `index-vectors` and Beam read them), with
    their profile and document-frequency table beside them."""
    with EncodedWriter(out) as writer:
        for record in records:
            writer.write(record)
    profile.write(out)
    frequencies = writer.frequencies()
    frequencies.save(DocumentFrequencies.path_for(out))
    return frequencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoded", type=Path, required=True, help="real encoded corpus")
    parser.add_argument("--size", type=int, required=True, help="documents to generate")
    parser.add_argument("--out", type=Path, required=True, help=".parquet or .jsonl")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    real = load_real(args.encoded)
    profile = FieldProfile.read(args.encoded) or FieldProfile()
    records = Recombiner(real, args.seed).documents(args.size)
    written = write_encoded(records, args.out, profile).documents
    print(f"{written} documents -> {args.out}")


if __name__ == "__main__":
    main()
