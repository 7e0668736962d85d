"""BEIR-format corpora and queries in; encoded records out (JSONL or Parquet) and back.

Every input line ends up either as a record or as a `DeadLetter` of stage `read` naming its line
number and the problem, so that counts add up: read = accepted + rejected. Lines are decoded one at
a time, so one bad byte rejects one line, not the file.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from splade_es.files import AtomicFile
from splade_es.records import DeadLetter, EncodedRecord, check_document_id
from splade_es.term_stats import DocumentFrequencies, FrequencyCounter

PARQUET_MAGIC = b"PAR1"
DOCUMENT_COLUMNS = ("_id", "title", "text")


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


@dataclass
class ReadStats:
    """Counts for a read: every record is accepted or rejected."""

    read: int = 0
    accepted: int = 0
    rejected: list[DeadLetter] = field(default_factory=list)


def is_parquet(path: Path) -> bool:
    """Whether the file starts with Parquet's magic bytes (whatever its name says)."""
    with path.open("rb") as handle:
        return handle.read(4) == PARQUET_MAGIC


def numbered_lines(path: Path) -> Iterator[tuple[int, str | UnicodeDecodeError]]:
    """(1-based line number, text) for every non-blank line; undecodable lines come as the error.

    A UTF-8 byte-order mark at the start of the file is dropped. A Parquet file is refused up
    front: decoding its bytes line by line would only produce misleading errors.
    """
    if is_parquet(path):
        raise ValueError(f"{path} is a Parquet file, not JSON lines: give it a .parquet name")
    with path.open("rb") as handle:
        yield from decoded_lines(handle)


def decoded_lines(handle: Iterable[bytes]) -> Iterator[tuple[int, str | UnicodeDecodeError]]:
    """`numbered_lines` for an open binary stream (a local file or one a Beam filesystem opened)."""
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, exc
            continue
        if line.strip():
            yield number, line


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """`numbered_lines` for inputs where a bad byte is an error for the whole file."""
    for number, line in numbered_lines(path):
        if isinstance(line, UnicodeDecodeError):
            raise ValueError(f"{path}:{number}: not UTF-8 ({line.reason})")
        yield number, line


def id_of(record: Any) -> str | None:
    """The id a refused record carries, when it has a usable one (so its dead letter names it)."""
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except ValueError:
            return None
    if not isinstance(record, dict):
        return None
    for key in ("_id", "id"):
        try:
            return check_document_id(record[key], key)
        except (KeyError, ValueError):
            continue
    return None


def raw_text(line: str | UnicodeDecodeError) -> str:
    """What a dead letter shows of a line: the line, or its bytes with the bad ones escaped."""
    if isinstance(line, UnicodeDecodeError):
        return line.object.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
    return line.rstrip("\r\n")


def parse_document(obj: Any) -> Document:
    """A BEIR record (`_id`/`id`, `title`, `text`) as a Document; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    key = "_id" if "_id" in obj else "id" if "id" in obj else None
    if key is None:
        raise ValueError("missing '_id'")
    doc_id = check_document_id(obj[key], key)
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
    return Document(doc_id, title, text)


def json_line(line: str | UnicodeDecodeError) -> Any:
    """One decoded JSONL line as JSON; ValueError says why not ("not UTF-8", "invalid JSON")."""
    if isinstance(line, UnicodeDecodeError):
        raise ValueError(f"not UTF-8: {line.reason} at byte {line.start}")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc


def parse_document_line(line: str | UnicodeDecodeError) -> Document:
    """One BEIR JSONL line as a Document; ValueError says what is wrong ("invalid JSON: ..." etc.)."""
    return parse_document(json_line(line))


def parquet_rows(path: Path, columns: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a Parquet file as dicts, a record batch at a time."""
    try:
        parquet = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    wanted = [c for c in (columns or []) if c in parquet.schema_arrow.names] or None
    for batch in parquet.iter_batches(columns=wanted):
        yield from batch.to_pylist()


def read_corpus(path: Path) -> Iterator[tuple[int, Document | DeadLetter]]:
    """(line or row number, Document or read-stage DeadLetter) for a JSONL or Parquet corpus."""
    source = str(path)
    if path.suffix == ".parquet":
        for number, row in enumerate(parquet_rows(path, DOCUMENT_COLUMNS), start=1):
            try:
                yield number, parse_document(row)
            except ValueError as exc:
                raw = json.dumps(row, ensure_ascii=False, default=str)
                yield number, DeadLetter("read", str(exc), source, number, id_of(row), raw=raw)
        return
    for number, line in numbered_lines(path):
        try:
            yield number, parse_document_line(line)
        except ValueError as exc:
            letter = DeadLetter("read", str(exc), source, number, id_of(line), raw=raw_text(line))
            yield number, letter


def read_documents(path: Path, stats: ReadStats | None = None) -> Iterator[Document]:
    """Stream documents; bad records go to `stats.rejected` with their line number."""
    stats = stats if stats is not None else ReadStats()
    for _, item in read_corpus(path):
        stats.read += 1
        if isinstance(item, DeadLetter):
            stats.rejected.append(item)
            continue
        stats.accepted += 1
        yield item


def read_queries(path: Path) -> dict[str, str]:
    """BEIR `queries.jsonl` as `{query id: text}`; a bad line or an empty text is an error naming it."""
    queries: dict[str, str] = {}
    for number, line in text_lines(path):
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
    for number, line in text_lines(path):
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


# Output files -----------------------------------------------------------------------------------


def write_dead_letters(path: Path, letters: Iterable[DeadLetter]) -> int:
    """Write dead letters as JSONL (atomically); returns how many."""
    out = AtomicFile(path)
    count = 0
    for letter in letters:
        out.handle.write(json.dumps(letter.to_json(), ensure_ascii=False) + "\n")
        count += 1
    out.commit()
    return count


ENCODED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("features", pa.map_(pa.string(), pa.float32())),
        ("title", pa.string()),
        ("text", pa.string()),
    ]
)


class EncodedWriter:
    """Writes encoded records to `.jsonl` or `.parquet` (chosen by suffix), atomically.

    Records go to a temporary file that replaces `path` only when the writer closes without an
    error: a failed run never truncates an earlier output.
    """

    def __init__(self, path: Path, batch_rows: int = 1024) -> None:
        self.path = path
        self.parquet = path.suffix == ".parquet"
        if not self.parquet and path.suffix not in (".jsonl", ".json"):
            raise ValueError(f"{path}: output must end in .jsonl or .parquet")
        self.batch_rows = batch_rows
        self._rows: list[dict[str, Any]] = []
        self._file = AtomicFile(path, "wb" if self.parquet else "w")
        self._writer: pq.ParquetWriter | None = None
        self.count = 0
        self._df = FrequencyCounter()

    def frequencies(self) -> DocumentFrequencies:
        """How many written records hold each feature (query pruning by corpus-wide DF)."""
        return self._df.table()

    def write(self, record: EncodedRecord) -> None:
        self.count += 1
        self._df.add(record)
        if not self.parquet:
            self._file.handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            return
        self._rows.append(record.to_row())
        if len(self._rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=ENCODED_SCHEMA)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._file.handle, ENCODED_SCHEMA)
        self._writer.write_table(table)
        self._rows = []

    def close(self, failed: bool = False) -> None:
        if failed:
            if self._writer is not None:
                self._writer.close()
            self._file.discard()
            return
        if self.parquet:
            self._flush()
            if self._writer is None:
                pq.write_table(ENCODED_SCHEMA.empty_table(), self._file.handle)
            else:
                self._writer.close()
        self._file.commit()

    def __enter__(self) -> EncodedWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(failed=exc_type is not None)


def read_encoded(path: Path) -> Iterator[tuple[int, EncodedRecord | DeadLetter]]:
    """Read what `EncodedWriter` wrote: (line or row number, record or read-stage DeadLetter)."""
    source = str(path)
    if path.suffix == ".parquet":
        for number, row in enumerate(parquet_rows(path), start=1):
            try:
                yield number, EncodedRecord.from_json(row)
            except ValueError as exc:
                raw = json.dumps(row, ensure_ascii=False, default=str)
                yield number, DeadLetter("read", str(exc), source, number, id_of(row), raw=raw)
        return
    for number, line in numbered_lines(path):
        try:
            yield number, EncodedRecord.from_json(json_line(line))
        except ValueError as exc:
            letter = DeadLetter("read", str(exc), source, number, id_of(line), raw=raw_text(line))
            yield number, letter


def input_ids(path: Path) -> Iterator[tuple[int, str | None]]:
    """(position, id) of every record `read_encoded` will yield, in order (None for unreadable
    ones), numbered exactly as `read_encoded` numbers them (a JSONL line number counts blank lines).

    Read ahead of indexing to find duplicate ids, so the last copy in input order always wins
    whatever the concurrency.
    """
    for position, item in read_encoded(path):
        yield position, item.id if isinstance(item, EncodedRecord) else None
