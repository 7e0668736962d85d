"""Encoding in Beam: the library encoder behind a `ModelHandler`, batched by `RunInference`.

The split follows `apache_beam.ml.inference`: the handler says how to load and call the model,
RunInference batches, shares and distributes. Records are exactly `batch_encode.encoded_record`'s,
so the pipeline and `splade-es encode` write the same features for the same document.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, RunInference

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.encoder import SpladeEncoder
from splade_es.records import DeadLetter, EncodedRecord
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

from .read import SourcedDocument, counter


class SpladeModelHandler(ModelHandler[SourcedDocument, EncodedRecord, SpladeEncoder]):
    """Loads a SpladeEncoder once per worker; turns documents into pruned, quantized records."""

    def __init__(
        self,
        model: str = "splade-tiny",
        device: str | None = None,
        dtype: str = "auto",
        doc_max_length: int | None = None,
        pruning: DocumentPruning = DocumentPruning(),
        quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
        keep_text: bool = True,
        encode_batch_size: int = 32,
        min_batch_size: int = 8,
        max_batch_size: int = 256,
        share_model: bool = False,
        max_tokens_per_batch: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.device = device
        self.dtype = dtype
        self.max_tokens_per_batch = max_tokens_per_batch
        self.doc_max_length = doc_max_length
        self.pruning = pruning
        self.quantization = quantization
        self.keep_text = keep_text
        self.encode_batch_size = encode_batch_size
        self.min_batch_size = min_batch_size
        self.max_batch_size = max_batch_size
        self.share_model = share_model

    def load_model(self) -> SpladeEncoder:
        return SpladeEncoder.load(
            self.model,
            device=self.device,
            dtype=self.dtype,
            doc_max_length=self.doc_max_length,
            max_tokens_per_batch=self.max_tokens_per_batch,
        )

    def run_inference(
        self,
        batch: Sequence[SourcedDocument],
        model: SpladeEncoder,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[EncodedRecord]:
        docs = [item.document for item in batch]
        vectors = model.encode_documents(
            [doc.full_text for doc in docs], batch_size=self.encode_batch_size
        )
        return [
            encoded_record(doc, vector, self.pruning, self.quantization, self.keep_text)
            for doc, vector in zip(docs, vectors, strict=True)
        ]

    def get_num_bytes(self, batch: Sequence[SourcedDocument]) -> int:
        return sum(len(s.document.title) + len(s.document.text) for s in batch)

    def get_metrics_namespace(self) -> str:
        return "SpladeModelHandler"

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def share_model_across_processes(self) -> bool:
        return self.share_model


def failed_batch(
    element: tuple[Sequence[SourcedDocument], tuple[Any, ...]],
) -> Iterator[DeadLetter]:
    """A batch the model failed on -> one encode-stage dead letter per document.

    RunInference's failed elements are `(batch, (exception type, repr(exception), traceback))`.
    """
    batch, (_, error, _) = element
    dead = counter("dead_lettered")
    failures = counter("encode_failures")
    for item in batch:
        dead.inc()
        failures.inc()
        doc = item.document
        yield DeadLetter(
            "encode",
            f"encode failed: {error}",
            item.source,
            item.line,
            doc.id,
            record=EncodedRecord(doc.id, {}, doc.title, doc.text),
        )


def _count_encoded(record: EncodedRecord) -> EncodedRecord:
    counter("encoded").inc()
    return record


class EncodeDocuments(beam.PTransform):
    """SourcedDocuments -> `{"records": EncodedRecords, "dead": encode-stage DeadLetters}`."""

    def __init__(self, handler: SpladeModelHandler) -> None:
        super().__init__()
        self.handler = handler

    def expand(self, docs: beam.PCollection) -> dict[str, beam.PCollection]:
        encoded, failed = (
            docs
            | "Shard" >> beam.Reshuffle()
            | "RunInference" >> RunInference(self.handler).with_exception_handling()
        )
        return {
            "records": encoded | "Count encoded" >> beam.Map(_count_encoded),
            "dead": failed.failed_inferences | "Encode failures" >> beam.FlatMap(failed_batch),
        }
