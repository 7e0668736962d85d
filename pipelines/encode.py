"""Encoding in Beam: the library encoder behind a `ModelHandler`, batched by `RunInference`.

The split follows `apache_beam.ml.inference`: the handler says how to load and call the model,
RunInference batches, shares and distributes, and the record policy (`batch_encode.RecordPolicy`,
what `splade-es encode` applies too) is composed after the call, so the pipeline and `encode`
write the same features for the same document.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from splade_es.batch_encode import RecordPolicy
from splade_es.encoder import EncoderSpec, SpladeEncoder
from splade_es.records import DeadLetter, EncodedRecord

from .read import SourcedDocument, counter


@dataclass(frozen=True)
class Batching:
    """How RunInference batches for the model: elements per batch (RunInference's bounds),
    texts per model call, and one model per worker machine or per process."""

    encode_batch_size: int = 32
    min_batch_size: int = 8
    max_batch_size: int = 256
    share_model: bool = False


class SpladeModelHandler(ModelHandler[SourcedDocument, PredictionResult, SpladeEncoder]):
    """Loads the encoder `spec` names once per worker and calls it on a batch: nothing more, as
    Beam's handlers are meant to be. What becomes of a vector (pruning, quantization, text) is
    composed after it (`with_postprocess_fn`, see `EncodeDocuments`)."""

    def __init__(self, spec: EncoderSpec = EncoderSpec(), batching: Batching = Batching()) -> None:
        super().__init__()
        self.spec = spec
        self.batching = batching

    def load_model(self) -> SpladeEncoder:
        return self.spec.load()

    def run_inference(
        self,
        batch: Sequence[SourcedDocument],
        model: SpladeEncoder,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        texts = [item.document.full_text for item in batch]
        vectors = model.encode_documents(texts, batch_size=self.batching.encode_batch_size)
        return [PredictionResult(item, vector) for item, vector in zip(batch, vectors, strict=True)]

    def get_num_bytes(self, batch: Sequence[SourcedDocument]) -> int:
        return sum(len(s.document.title) + len(s.document.text) for s in batch)

    def get_metrics_namespace(self) -> str:
        return "SpladeModelHandler"

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        b = self.batching
        return {"min_batch_size": b.min_batch_size, "max_batch_size": b.max_batch_size}

    def share_model_across_processes(self) -> bool:
        return self.batching.share_model


@dataclass(frozen=True)
class ToRecord:
    """PredictionResult(document, vector) -> the record `policy` makes of it (a picklable
    post-processing function for `with_postprocess_fn`)."""

    policy: RecordPolicy

    def __call__(self, result: PredictionResult) -> EncodedRecord:
        item: SourcedDocument = result.example  # type: ignore[assignment]
        return self.policy(item.document, result.inference)  # type: ignore[arg-type]


def failed_batch(
    element: tuple[Sequence[SourcedDocument], tuple[Any, ...]],
) -> Iterator[DeadLetter]:
    """A batch the model failed on -> one encode-stage dead letter per document.

    RunInference's failed elements are `(batch, (exception type, repr(exception), traceback))`.
    """
    batch, (_, error, _) = element
    for item in batch:
        yield encode_dead_letter(item, f"encode failed: {error}")


def failed_record(element: tuple[PredictionResult, tuple[Any, ...]]) -> Iterator[DeadLetter]:
    """A document the record policy failed on (after a good model call) -> its dead letter."""
    result, (_, error, _) = element
    yield encode_dead_letter(result.example, f"record failed: {error}")  # type: ignore[arg-type]


def encode_dead_letter(item: SourcedDocument, reason: str) -> DeadLetter:
    """An encode-stage dead letter for one document (its text kept for a re-run), counted."""
    counter("dead_lettered").inc()
    counter("encode_failures").inc()
    doc = item.document
    record = EncodedRecord(doc.id, {}, doc.title, doc.text)
    return DeadLetter("encode", reason, item.source, item.line, doc.id, record=record)


def _count_encoded(record: EncodedRecord) -> EncodedRecord:
    counter("encoded").inc()
    return record


class EncodeDocuments(beam.PTransform):
    """SourcedDocuments -> `{"records": EncodedRecords, "dead": encode-stage DeadLetters}`: the
    handler's model call with the record policy composed after it."""

    def __init__(self, handler: SpladeModelHandler, policy: RecordPolicy = RecordPolicy()) -> None:
        super().__init__()
        self.handler = handler
        self.policy = policy

    def expand(self, docs: beam.PCollection) -> dict[str, beam.PCollection]:
        encoded, failed = (
            docs
            | "Shard" >> beam.Reshuffle()
            | "RunInference"
            >> RunInference(
                self.handler.with_postprocess_fn(ToRecord(self.policy))
            ).with_exception_handling()
        )
        batches = failed.failed_inferences | "Encode failures" >> beam.FlatMap(failed_batch)
        records = [
            bad | f"Record failures {i}" >> beam.FlatMap(failed_record)
            for i, bad in enumerate(failed.failed_postprocessing)
        ]
        return {
            "records": encoded | "Count encoded" >> beam.Map(_count_encoded),
            "dead": [batches, *records] | "Encode dead letters" >> beam.Flatten(),
        }
