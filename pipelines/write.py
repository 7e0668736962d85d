"""Sinks: encoded records to Parquet, JSONL or an index; dead letters to JSONL.

Each sink is one `PTransform`; the index sink returns its dead letters. Batching is Beam's
`BatchElements`; sending is the library's `BulkWriter` (the client's bulk helpers plus retries,
splitting and dead letters), the same code `splade-es index-vectors` uses.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from splade_es.bulk import BulkOptions, BulkWriter
from splade_es.client import ConnectionSettings, connect
from splade_es.corpus import ENCODED_SCHEMA
from splade_es.indexing import present_ids
from splade_es.records import EncodedRecord, FieldProfile
from splade_es.term_stats import DocumentFrequencies, FrequencyCounter

from .read import SourcedDocument, counter

PROGRESS_EVERY_S = 1.0


class ProgressFile:
    """Counts a worker reports while the run goes: one small JSON file per DoFn instance.

    `splade-es index` sums these files to show docs/s on local runners and local clusters; on a
    remote service (Dataflow) the folder is simply not visible and the runner's UI shows progress.
    """

    def __init__(self, folder: str | None) -> None:
        self.folder = folder
        self.counts: dict[str, int] = {}
        self.path: Path | None = None
        self.last = 0.0

    def add(self, name: str, n: int = 1) -> None:
        if not self.folder:
            return
        self.counts[name] = self.counts.get(name, 0) + n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.flush()
            self.last = now

    def flush(self) -> None:
        if not self.folder or not self.counts:
            return
        if self.path is None:
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            self.path = Path(self.folder) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.counts))
        tmp.replace(self.path)


def read_progress(folder: Path) -> dict[str, int]:
    """The sum of every worker's reported counts."""
    total: dict[str, int] = {}
    for path in folder.glob("*.json"):
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for name, value in counts.items():
            total[name] = total.get(name, 0) + int(value)
    return total


class _Counted(beam.DoFn):
    """Pass records through, counting them as written (metrics and live progress)."""

    def __init__(self, progress_dir: str | None) -> None:
        self.written = counter("written")
        self.progress_dir = progress_dir

    def setup(self) -> None:
        self.progress = ProgressFile(self.progress_dir)

    def process(self, record: EncodedRecord) -> Iterator[EncodedRecord]:
        self.written.inc()
        self.progress.add("done")
        yield record

    def finish_bundle(self) -> None:
        self.progress.flush()


class _CountFeatures(beam.CombineFn):
    """The corpus-wide document-frequency table `splade-es encode` writes, counted across workers."""

    def create_accumulator(self) -> FrequencyCounter:
        return FrequencyCounter()

    def add_input(self, partial: FrequencyCounter, record: EncodedRecord) -> FrequencyCounter:
        partial.add(record)
        return partial

    def merge_accumulators(self, partials: Iterable[FrequencyCounter]) -> FrequencyCounter:
        merged = FrequencyCounter()
        for partial in partials:
            merged.merge(partial)
        return merged

    def extract_output(self, partial: FrequencyCounter) -> DocumentFrequencies:
        return partial.table()


def _save_table(table: DocumentFrequencies, path: str) -> None:
    """Through Beam's file systems, so the table lands beside the shards on any runner's storage."""
    with FileSystems.create(path) as out:
        out.write(table.dumps().encode())


def _save_text(text: str, path: str) -> None:
    with FileSystems.create(path) as out:
        out.write(text.encode())


class _WriteFiles(beam.PTransform):
    """Encoded records as sharded files `<prefix>-SSSSS-of-NNNNN<suffix>`; subclasses say how.

    Beside the shards: `<prefix>.df.json` (corpus-wide DF, counted across workers) and
    `<prefix>.profile.json` (how the vectors were made, `records.FieldProfile`), which
    `index-vectors` reads for any of the shards, as it reads `encode`'s sidecars."""

    def __init__(
        self,
        prefix: str,
        made: FieldProfile,
        num_shards: int | None = None,
        progress_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.prefix, self.num_shards, self.progress_dir = prefix, num_shards or 0, progress_dir
        self.made = made

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        counted = records | "Count written" >> beam.ParDo(_Counted(self.progress_dir))
        _ = (
            counted
            | "Document frequencies" >> beam.CombineGlobally(_CountFeatures()).without_defaults()
            | "Write DF table" >> beam.Map(_save_table, self.prefix + ".df.json")
        )
        _ = (
            records.pipeline
            | "Profile" >> beam.Create([json.dumps(self.made.made().to_json(), indent=2)])
            | "Write profile" >> beam.Map(_save_text, self.prefix + ".profile.json")
        )
        return counted | "Format" >> beam.Map(self.format) | "Write files" >> self.sink()

    @staticmethod
    def format(record: EncodedRecord) -> Any:
        raise NotImplementedError

    def sink(self) -> beam.PTransform:
        raise NotImplementedError


class WriteParquet(_WriteFiles):
    """Encoded records as Parquet (`corpus.ENCODED_SCHEMA`, what `splade-es encode` writes)."""

    @staticmethod
    def format(record: EncodedRecord) -> dict[str, Any]:
        return record.to_row()

    def sink(self) -> beam.PTransform:
        return beam.io.WriteToParquet(
            self.prefix,
            schema=ENCODED_SCHEMA,
            file_name_suffix=".parquet",
            num_shards=self.num_shards,
        )


class WriteJsonl(_WriteFiles):
    """Encoded records as JSONL (what `splade-es encode` writes for `.jsonl`)."""

    @staticmethod
    def format(record: EncodedRecord) -> str:
        return json.dumps(record.to_json(), ensure_ascii=False)

    def sink(self) -> beam.PTransform:
        return beam.io.WriteToText(
            self.prefix, file_name_suffix=".jsonl", num_shards=self.num_shards
        )


class _SendBatch(beam.DoFn):
    """A batch of records -> `_bulk` through BulkWriter; refused ones on the `dead` output."""

    def __init__(
        self,
        settings: ConnectionSettings,
        index: str,
        field: str,
        update: bool,
        options: BulkOptions,
        progress_dir: str | None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.field = field
        self.update = update
        self.options = options
        self.progress_dir = progress_dir
        self.indexed = counter("indexed")
        self.dead_lettered = counter("dead_lettered")
        self.retries = counter("bulk_retries")

    def setup(self) -> None:
        self.client = connect(self.settings)
        self.progress = ProgressFile(self.progress_dir)

    def process(self, batch: list[EncodedRecord]) -> Iterator[Any]:
        writer = BulkWriter(
            self.client,
            self.index,
            self.field,
            "update" if self.update else "index",
            self.options,
            source=f"{self.settings.url}/{self.index}",
        )
        for _, _, letter in writer.write(enumerate(batch, start=1)):
            self.progress.add("done")
            if letter is None:
                self.indexed.inc()
            else:
                self.dead_lettered.inc()
                yield beam.pvalue.TaggedOutput("dead", letter)
        self.retries.inc(writer.retries)

    def finish_bundle(self) -> None:
        self.progress.flush()

    def teardown(self) -> None:
        self.client.close()


class WriteToIndex(beam.PTransform):
    """Encoded records into an index; returns the engine's refusals as dead letters.

    `update` sends only `{field: features}` as partial updates (drop-in upgrade: text not re-sent).
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        index: str,
        field: str = "splade",
        update: bool = False,
        options: BulkOptions = BulkOptions(),
        progress_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.send = _SendBatch(settings, index, field, update, options, progress_dir)

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        size = self.send.options.chunk_size
        sent = (
            records
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=size)
            | "Bulk" >> beam.ParDo(self.send).with_outputs("dead", main="indexed")
        )
        return sent["dead"]


class _DropIndexed(beam.DoFn):
    """Resume: drop documents whose id already has the SPLADE field in the index."""

    def __init__(self, settings: ConnectionSettings, index: str, field: str) -> None:
        self.settings, self.index, self.field = settings, index, field
        self.already_done = counter("already_done")

    def setup(self) -> None:
        self.client = connect(self.settings)

    def process(self, batch: list[SourcedDocument]) -> Iterator[SourcedDocument]:
        present = present_ids(self.client, self.index, self.field, [s.document.id for s in batch])
        for item in batch:
            if item.document.id in present:
                self.already_done.inc()
            else:
                yield item

    def teardown(self) -> None:
        self.client.close()


class SkipIndexed(beam.PTransform):
    """Resume after a crash on any runner: skip what the index already holds, before encoding."""

    def __init__(self, settings: ConnectionSettings, index: str, field: str) -> None:
        super().__init__()
        self.drop = _DropIndexed(settings, index, field)

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        return (
            docs
            | "Batch ids" >> beam.BatchElements(min_batch_size=1, max_batch_size=500)
            | "Drop indexed" >> beam.ParDo(self.drop)
        )


class WriteDeadLetters(beam.PTransform):
    """Every dead letter of the run into one JSONL file `<prefix>-00000-of-00001.jsonl`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def expand(self, letters: beam.PCollection) -> beam.PCollection:
        return (
            letters
            | "Dead to JSON"
            >> beam.Map(lambda d: json.dumps(d.to_json(), ensure_ascii=False, default=str))
            | "Write dead letters"
            >> beam.io.WriteToText(self.prefix, file_name_suffix=".jsonl", num_shards=1)
        )
