"""Sources: a corpus as `SourcedDocument`s plus read-stage dead letters, whatever it is stored in.

Each source is one `PTransform` returning `{"docs": ..., "dead": ...}`; a new source is one new
class. Files are read one per worker, line by line, so a bad line is named by its number (Beam's
text source splits files at byte offsets and cannot say which line it is on).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics import Metrics
from opensearchpy.exceptions import ConnectionError, TransportError
from opensearchpy.helpers import scan

from splade_es.client import ConnectionSettings, EngineError, connect, describe_error
from splade_es.corpus import (
    DOCUMENT_COLUMNS,
    PARQUET_MAGIC,
    Document,
    decoded_lines,
    parse_document,
    parse_document_line,
    raw_text,
)
from splade_es.records import DeadLetter

log = logging.getLogger(__name__)

NAMESPACE = "splade_es"
"""Beam metrics namespace of the pipeline's counters."""


def counter(name: str) -> Any:
    return Metrics.counter(NAMESPACE, name)


@dataclass(frozen=True)
class SourcedDocument:
    """A document and where it was read: file (or index) and 1-based line or row number."""

    document: Document
    source: str
    line: int


@dataclass(frozen=True)
class Unreadable:
    """What is left of a file that could not be read to its end: the reason. It becomes one
    read-stage dead letter naming the file and the last row read, counted as one rejected record,
    while the other files of the run are read and indexed."""

    reason: str


def _read_failures() -> tuple[type[BaseException], ...]:
    """The errors that mean "this file's bytes are bad", not "the program is wrong"."""
    import pyarrow as pa

    return (OSError, ValueError, pa.ArrowException, EOFError)


def _split(pcoll: beam.PCollection, label: str, dofn: beam.DoFn) -> dict[str, beam.PCollection]:
    outputs = pcoll | label >> beam.ParDo(dofn).with_outputs("dead", main="docs")
    return {"docs": outputs["docs"], "dead": outputs["dead"]}


class ParseRecords(beam.DoFn):
    """(source, line number, raw line or row) -> SourcedDocument, or a read-stage DeadLetter."""

    def __init__(self) -> None:
        self.read = counter("read")
        self.rejected = counter("rejected")

    def process(self, element: tuple[str, int, Any]) -> Iterator[Any]:
        source, line, raw = element
        self.read.inc()
        if isinstance(raw, Unreadable):
            self.rejected.inc()
            log.warning("%s: unreadable after row %d: %s", source, line - 1, raw.reason)
            yield beam.pvalue.TaggedOutput(
                "dead", DeadLetter("read", f"unreadable file: {raw.reason}", source, line)
            )
            return
        try:
            doc = parse_document(raw) if isinstance(raw, dict) else parse_document_line(raw)
            yield SourcedDocument(doc, source, line)
        except ValueError as exc:
            self.rejected.inc()
            shown = (
                json.dumps(raw, ensure_ascii=False, default=str)
                if isinstance(raw, dict)
                else raw_text(raw)
            )
            yield beam.pvalue.TaggedOutput(
                "dead", DeadLetter("read", str(exc), source, line, raw=shown)
            )


def json_lines(readable: fileio.ReadableFile) -> Iterator[tuple[str, int, str | Any]]:
    """(path, line number, text) per non-blank line; undecodable lines pass on as the error."""
    path = readable.metadata.path
    with readable.open() as handle:
        if handle.read(4) == PARQUET_MAGIC:
            raise EngineError(
                f"{path} is a Parquet file, not JSON lines: use --input_format parquet"
            )
    number = 0
    try:
        with readable.open() as handle:
            for number, line in decoded_lines(handle):
                yield path, number, line
    except OSError as exc:  # e.g. a compressed file cut short
        yield path, number + 1, Unreadable(" ".join(str(exc).split())[:300])


def parquet_rows(readable: fileio.ReadableFile) -> Iterator[tuple[str, int, Any]]:
    """(path, row number, row) for every row of a Parquet file; a file that cannot be read to
    its end (truncated, corrupt pages) ends with `Unreadable` after the rows it did give."""
    import pyarrow.parquet as pq

    path = readable.metadata.path
    number = 0
    try:
        with readable.open() as handle:
            parquet = pq.ParquetFile(handle)
            columns = [c for c in DOCUMENT_COLUMNS if c in parquet.schema_arrow.names] or None
            for batch in parquet.iter_batches(columns=columns):
                for row in batch.to_pylist():
                    number += 1
                    yield path, number, row
    except _read_failures() as exc:
        yield path, number + 1, Unreadable(" ".join(str(exc).split())[:300] or type(exc).__name__)


class ReadJsonLines(beam.PTransform):
    """BEIR JSONL files matching a pattern."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = pattern

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        lines = (
            pbegin
            | "Match" >> fileio.MatchFiles(self.pattern)
            | "Open" >> fileio.ReadMatches()
            | "Spread files" >> beam.Reshuffle()
            | "Lines" >> beam.FlatMap(json_lines)
        )
        return _split(lines, "Parse", ParseRecords())


class ReadParquet(beam.PTransform):
    """Parquet files with `_id`, `title`, `text` columns matching a pattern."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = pattern

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        rows = (
            pbegin
            | "Match" >> fileio.MatchFiles(self.pattern)
            | "Open" >> fileio.ReadMatches()
            | "Spread files" >> beam.Reshuffle()
            | "Rows" >> beam.FlatMap(parquet_rows)
        )
        return _split(rows, "Parse", ParseRecords())


class ScrollSlice(beam.DoFn):
    """One slice of a sliced scroll (the client's `scan` helper, which checks shard failures)."""

    def __init__(
        self,
        settings: ConnectionSettings,
        index: str,
        slices: int,
        page_size: int,
        text_fields: tuple[str, ...],
    ) -> None:
        self.settings = settings
        self.index = index
        self.slices = slices
        self.page_size = page_size
        self.text_fields = text_fields
        self.client: Any = None

    def setup(self) -> None:
        self.client = connect(self.settings)

    def process(self, slice_id: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
        query: dict[str, Any] = {"query": {"match_all": {}}, "_source": list(self.text_fields)}
        if self.slices > 1:
            query["slice"] = {"id": slice_id, "max": self.slices}
        source = f"{self.settings.url}/{self.index}"
        try:
            hits = scan(self.client, query, index=self.index, size=self.page_size, scroll="5m")
            for number, hit in enumerate(hits, start=1):
                yield source, number, self.row(hit)
        except (TransportError, ConnectionError) as exc:  # one line; the runner retries the slice
            raise EngineError(describe_error(exc, f"scroll {self.index!r}")) from exc

    def row(self, hit: dict[str, Any]) -> dict[str, Any]:
        """A hit as a BEIR row: `title` and `text` as they are, other text fields joined."""
        source = hit.get("_source") or {}
        if self.text_fields == ("title", "text"):
            return {"_id": hit["_id"], "title": source.get("title"), "text": source.get("text", "")}
        parts = [source.get(f) for f in self.text_fields]
        return {"_id": hit["_id"], "text": " ".join(str(p) for p in parts if p)}

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close()


class ReadIndex(beam.PTransform):
    """The documents of an existing index, read by sliced scroll in parallel."""

    def __init__(
        self,
        settings: ConnectionSettings,
        index: str,
        slices: int = 4,
        page_size: int = 500,
        text_fields: tuple[str, ...] = ("title", "text"),
    ) -> None:
        super().__init__()
        self.scroll = ScrollSlice(settings, index, slices, page_size, text_fields)

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        rows = (
            pbegin
            | "Slices" >> beam.Create(list(range(self.scroll.slices)))
            | "Spread slices" >> beam.Reshuffle()
            | "Scroll" >> beam.ParDo(self.scroll)
        )
        return _split(rows, "Parse", ParseRecords())


class KeepLastCopy(beam.PTransform):
    """One document per id: the last copy in input order (file name, then line) wins.

    Without this, two copies of an id would both be encoded and sent, the engine would keep
    whichever arrived last, and the counts would say both were indexed.
    """

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        return (
            docs
            | "By id" >> beam.Map(lambda s: (s.document.id, s))
            | "Group copies" >> beam.GroupByKey()
            | "Last copy" >> beam.ParDo(_LastCopy())
        )


class _LastCopy(beam.DoFn):
    def __init__(self) -> None:
        self.duplicates = counter("duplicates")

    def process(self, element: tuple[str, Any]) -> Iterator[SourcedDocument]:
        _, copies = element
        ordered = sorted(copies, key=lambda s: (s.source, s.line))
        if len(ordered) > 1:
            self.duplicates.inc(len(ordered) - 1)
        yield ordered[-1]
