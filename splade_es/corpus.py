"""BEIR-format corpora and queries in; encoded vectors out (JSONL or Parquet) and back.

Every input line ends up either as a record or as a reject naming its line number and the problem,
so that counts add up: read = accepted + rejected.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Document:
    """One corpus record: BEIR `_id`, `title`, `text`."""

    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        """Title and body as one string, the way SPLADE and BEIR encode documents."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True)
class Reject:
    """An input line that could not become a record, and why."""

    source: str
    line: int
    reason: str
    raw: str

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "reason": self.reason, "raw": self.raw}


@dataclass
class ReadStats:
    """Counts for a read: every line is accepted or rejected."""

    read: int = 0
    accepted: int = 0
    rejected: list[Reject] = field(default_factory=list)


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for every non-blank line, so errors can name the line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def parse_document(obj: Any) -> Document:
    """A BEIR record (`_id`/`id`, `title`, `text`) as a Document; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    doc_id = obj.get("_id", obj.get("id"))
    if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
        raise ValueError("missing '_id'")
    if not isinstance(doc_id, str | int):
        raise ValueError(f"'_id' must be a string or integer, got {type(doc_id).__name__}")
    title = obj.get("title") or ""
    text = obj.get("text")
    if not isinstance(title, str):
        raise ValueError(f"'title' must be a string, got {type(title).__name__}")
    if text is None:
        raise ValueError("missing 'text'")
    if not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    if not (title.strip() or text.strip()):
        raise ValueError("empty 'title' and 'text'")
    return Document(str(doc_id), title, text)


def parse_document_line(line: str) -> Document:
    """One BEIR JSONL line as a Document; ValueError says what is wrong ("invalid JSON: ..." etc.)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    return parse_document(obj)


def read_documents(path: Path, stats: ReadStats | None = None) -> Iterator[Document]:
    """Stream documents from BEIR JSONL; bad lines go to `stats.rejected` with their line number."""
    stats = stats if stats is not None else ReadStats()
    for number, line in numbered_lines(path):
        stats.read += 1
        try:
            doc = parse_document_line(line)
        except ValueError as exc:
            stats.rejected.append(Reject(str(path), number, str(exc), line.rstrip("\n")))
            continue
        stats.accepted += 1
        yield doc


def read_queries(path: Path) -> dict[str, str]:
    """BEIR `queries.jsonl` as `{query id: text}`; a bad line or an empty text is an error naming it."""
    queries: dict[str, str] = {}
    for number, line in numbered_lines(path):
        try:
            obj = json.loads(line)
            qid, text = str(obj["_id"]), obj["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: bad query line: {exc}") from exc
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{number}: query {qid!r} has empty text")
        queries[qid] = text
    return queries


def read_qrels(
    path: Path,
    docs: Container[str] | None = None,
    queries: Container[str] | None = None,
) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (`query-id corpus-id score`, optional header) as `{qid: {doc id: grade}}`.

    With `docs` / `queries`, ids missing from them are errors naming the line.
    """
    qrels: dict[str, dict[str, int]] = {}
    for number, line in numbered_lines(path):
        parts = [part.strip() for part in line.rstrip("\n").split("\t")]
        if number == 1 and not parts[-1].lstrip("-").isdigit():
            continue  # header
        if len(parts) != 3:
            raise ValueError(f"{path}:{number}: expected 3 tab-separated columns, got {parts!r}")
        qid, doc_id, grade = parts
        try:
            value = int(grade)
        except ValueError:
            raise ValueError(f"{path}:{number}: relevance {grade!r} is not an integer") from None
        if queries is not None and qid not in queries:
            raise ValueError(f"{path}:{number}: query id {qid!r} is not in the queries file")
        if docs is not None and doc_id not in docs:
            raise ValueError(f"{path}:{number}: document id {doc_id!r} is not in the corpus")
        qrels.setdefault(qid, {})[doc_id] = value
    return qrels


def write_rejects(path: Path, rejects: Iterable[Reject]) -> int:
    """Write rejects as JSONL; returns how many."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for reject in rejects:
            handle.write(json.dumps(reject.as_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


# Encoded records: {"id", "features": {name: int}, "title", "text"} --------------------------------

ENCODED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("features", pa.map_(pa.string(), pa.float32())),
        ("title", pa.string()),
        ("text", pa.string()),
    ]
)


def encoded_row(record: dict[str, Any]) -> dict[str, Any]:
    """An encoded record as a row of `ENCODED_SCHEMA` (features as the map's key/value pairs)."""
    return {
        "id": record["id"],
        "features": list(record["features"].items()),
        "title": record.get("title"),
        "text": record.get("text"),
    }


class EncodedWriter:
    """Writes encoded records to `.jsonl` or `.parquet`, chosen by the file suffix."""

    def __init__(self, path: Path, batch_rows: int = 1024) -> None:
        self.path = path
        self.parquet = path.suffix == ".parquet"
        if not self.parquet and path.suffix not in (".jsonl", ".json"):
            raise ValueError(f"{path}: output must end in .jsonl or .parquet")
        self.batch_rows = batch_rows
        self._rows: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._handle = None if self.parquet else path.open("w", encoding="utf-8")
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self.count += 1
        if self._handle is not None:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        self._rows.append(record)
        if len(self._rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist([encoded_row(r) for r in self._rows], schema=ENCODED_SCHEMA)
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), ENCODED_SCHEMA)
        self._writer.write_table(table)
        self._rows = []

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            return
        self._flush()
        if self._writer is None:
            pq.write_table(ENCODED_SCHEMA.empty_table(), str(self.path))
        else:
            self._writer.close()

    def __enter__(self) -> EncodedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_encoded(path: Path) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    """Read what `EncodedWriter` wrote: (line or row number, record or Reject) pairs."""
    if path.suffix == ".parquet":
        parquet = pq.ParquetFile(str(path))
        row = 0
        for batch in parquet.iter_batches():
            for rec in batch.to_pylist():
                row += 1
                rec["features"] = dict(rec["features"] or [])
                yield row, rec
        return
    for number, line in numbered_lines(path):
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "id" not in rec:
                raise ValueError("expected an object with 'id'")
            if not isinstance(rec.get("features"), dict):
                raise ValueError("'features' must be an object {name: weight}")
        except (json.JSONDecodeError, ValueError) as exc:
            yield number, Reject(str(path), number, str(exc), line.rstrip("\n"))
            continue
        yield number, rec
