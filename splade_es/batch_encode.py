"""Encode a whole corpus: documents -> pruned, quantized feature records, streamed in chunks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice

from tqdm.auto import tqdm

from splade_es.corpus import Document, EncodedWriter
from splade_es.encoder import SpladeEncoder
from splade_es.records import EncodedRecord
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR, SparseVector


@dataclass(frozen=True)
class DocumentPruning:
    """Document-side pruning options (see `SparseVector.prune`); all None keeps every term."""

    top_k: int | None = None
    max_ratio: float | None = None
    alpha_mass: float | None = None
    threshold: float | None = None

    def apply(self, vector: SparseVector) -> SparseVector:
        return vector.prune(self.top_k, self.max_ratio, self.alpha_mass, self.threshold)

    def as_dict(self) -> dict[str, float]:
        """The criteria in use, as an index records them."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def encoded_record(
    doc: Document,
    vector: SparseVector,
    pruning: DocumentPruning,
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
    keep_text: bool = True,
) -> EncodedRecord:
    """The record `encode` writes: id, engine-ready features and (optionally) the text for BM25."""
    pruned = pruning.apply(vector)
    features: dict[str, float] = (
        dict(pruned.quantize(quantization)) if quantization else pruned.to_features(None)
    )
    if keep_text:
        return EncodedRecord(doc.id, features, doc.title, doc.text)
    return EncodedRecord(doc.id, features)


def _chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def encode_corpus(
    encoder: SpladeEncoder,
    documents: Iterable[Document],
    writer: EncodedWriter,
    pruning: DocumentPruning = DocumentPruning(),
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
    batch_size: int = 32,
    keep_text: bool = True,
    total: int | None = None,
    progress: bool = True,
) -> int:
    """Encode documents in chunks and write one record each; returns how many were written."""
    bar = tqdm(total=total, unit="doc", disable=not progress, desc="encode")
    for chunk in _chunks(documents, max(batch_size * 16, 256)):
        vectors = encoder.encode_documents([d.full_text for d in chunk], batch_size=batch_size)
        for doc, vector in zip(chunk, vectors, strict=True):
            writer.write(encoded_record(doc, vector, pruning, quantization, keep_text))
        bar.update(len(chunk))
    bar.close()
    return writer.count
