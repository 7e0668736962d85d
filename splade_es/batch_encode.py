"""Encode a whole corpus: documents -> pruned, quantized feature records, streamed in chunks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

from tqdm.auto import tqdm

from splade_es.corpus import Document, EncodedWriter, ReadStats, read_documents
from splade_es.encoder import SpladeEncoder
from splade_es.records import EncodedRecord, FieldProfile
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR, SparseVector
from splade_es.term_stats import DocumentFrequencies


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
    features = pruned.document_features(quantization)
    if keep_text:
        return EncodedRecord(doc.id, features, doc.title, doc.text)
    return EncodedRecord(doc.id, features)


@dataclass(frozen=True)
class RecordPolicy:
    """What becomes of an encoded document: pruning, quantization, whether the text goes along.
    One picklable value, so the Beam pipeline applies it after the model call (the handler only
    loads and calls the model) exactly as `encode` does."""

    pruning: DocumentPruning = DocumentPruning()
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
    keep_text: bool = True

    def __call__(self, doc: Document, vector: SparseVector) -> EncodedRecord:
        return encoded_record(doc, vector, self.pruning, self.quantization, self.keep_text)


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
    bar = tqdm(total=total, unit="doc", disable=None if progress else True, desc="encode")
    for chunk in _chunks(documents, max(batch_size * 16, 256)):
        vectors = encoder.encode_documents([d.full_text for d in chunk], batch_size=batch_size)
        for doc, vector in zip(chunk, vectors, strict=True):
            writer.write(encoded_record(doc, vector, pruning, quantization, keep_text))
        bar.update(len(chunk))
    bar.close()
    return writer.count


def encoder_profile(
    encoder: SpladeEncoder,
    model: str,
    quantization: float | None,
    pruning: DocumentPruning = DocumentPruning(),
) -> FieldProfile:
    """How this encoder, with these settings, fills a field (`model` as the user named it)."""
    from splade_es.models import model_identity

    settings = encoder.settings
    query = settings.query if settings.shape == "pair" else None
    return FieldProfile(
        model=model_identity(model),
        query_model=model_identity(query) if query else None,
        quantization=quantization,
        pruning=pruning.as_dict(),
        doc_max_length=settings.doc_max_length,
    )


def encode_file(
    encoder: SpladeEncoder,
    model: str,
    input_path: Path,
    output_path: Path,
    pruning: DocumentPruning = DocumentPruning(),
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
    batch_size: int = 32,
    keep_text: bool = True,
    limit: int | None = None,
) -> tuple[int, ReadStats]:
    """Encode a corpus file into `output_path` (.jsonl or .parquet) with its two sidecars: the
    profile (how the vectors were made, which `index-vectors` records in the index) and the
    corpus-wide DF table (query pruning). Returns (records written, what the reader saw).

    The one way a file gets encoded: `splade-es encode`, the training report and the benchmarks
    call it, so no caller can write vectors without the profile that says how they were made.
    """
    if output_path.suffix not in (".jsonl", ".json", ".parquet"):
        raise ValueError(f"--output {output_path}: must end in .jsonl or .parquet")
    stats = ReadStats()
    documents: Iterable[Document] = read_documents(input_path, stats)
    if limit is not None:
        documents = islice(documents, limit)
    with EncodedWriter(output_path) as writer:
        written = encode_corpus(
            encoder, documents, writer, pruning, quantization, batch_size, keep_text=keep_text
        )
    encoder_profile(encoder, model, quantization, pruning).write(output_path)
    writer.frequencies().save(DocumentFrequencies.path_for(output_path))
    return written, stats
