"""Indexing a file of encoded records: nothing lost, nothing counted twice, resumable.

- Every record read is indexed, rejected (unreadable), dead-lettered (refused by the engine, with
  its reason) or a duplicate: an id that appears again later in the input is indexed once, from its
  last copy, whatever the concurrency (the input is scanned for ids first).
- A run that stops because the engine went away leaves a progress file. It describes one index
  (by uuid) and one input file (by size and mtime); a re-run trusts it only if both still match,
  and even then checks in the index that the records it would skip are really there.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError, TransportError
from tqdm.auto import tqdm

from splade_es.bulk import BulkOptions, BulkWriter
from splade_es.client import EngineError, EngineInfo, describe_error
from splade_es.corpus import input_ids, read_encoded
from splade_es.files import write_atomically
from splade_es.indices import (
    IndexProfile,
    ShardLayout,
    SpladeField,
    check_index_name,
    ensure_index,
)
from splade_es.records import DeadLetter, EncodedRecord, FieldProfile, RunSummary


@dataclass(frozen=True)
class Progress:
    """How far an interrupted run got, and exactly which index and input that was about."""

    index_uuid: str
    input_size: int
    input_mtime_ns: int
    done_through: int

    @staticmethod
    def path_for(input_path: Path, index: str) -> Path:
        return input_path.with_name(f"{input_path.name}.{index}.progress.json")

    @classmethod
    def load(cls, path: Path) -> Progress | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        write_atomically(path, json.dumps(asdict(self)))


def input_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def superseded_positions(path: Path) -> set[int]:
    """Positions of records whose id appears again later in the file (the last copy wins).

    A position is what `read_encoded` yields with each record (its line or row number), the one
    numbering that the duplicate check, the send loop and the progress file all use."""
    last: dict[str, int] = {}
    superseded: set[int] = set()
    for position, doc_id in input_ids(path):
        if doc_id is None:
            continue
        earlier = last.get(doc_id)
        if earlier is not None:
            superseded.add(earlier)
        last[doc_id] = position
    return superseded


def present_ids(client: OpenSearch, index: str, field: str, ids: list[str]) -> set[str]:
    """Which of `ids` are in the index with the SPLADE field filled.

    Read with `mget` of the field's source: `rank_features` fields cannot be tested with an
    `exists` query."""
    try:
        docs = client.mget(index=index, body={"ids": ids}, params={"_source_includes": field})[
            "docs"
        ]
    except (TransportError, ConnectionError) as exc:
        raise EngineError(describe_error(exc, f"check ids in {index!r}")) from exc
    return {str(d["_id"]) for d in docs if d.get("found") and (d.get("_source") or {}).get(field)}


class FileIndexer:
    """Indexes one file of encoded records into one index (see the module docstring)."""

    def __init__(
        self,
        client: OpenSearch,
        profile: IndexProfile,
        field: str = "splade",
        options: BulkOptions = BulkOptions(),
        show_progress: bool = True,
    ) -> None:
        self.client = client
        self.profile = profile
        self.field = field
        self.options = options
        self.show_progress = show_progress
        self.saved: Progress | None = None
        """The progress file the last run left behind when it stopped (None: nothing to resume)."""

    def resume_hint(self) -> str:
        """What to tell a user whose run stopped: resuming is worth it only if progress was saved."""
        if self.saved is None or self.saved.done_through == 0:
            return ""
        return " (progress saved: re-run the same command to resume)"

    def run(self, input_path: Path, dead_letter: Path, resume: bool = True) -> RunSummary:
        """Index the file; dead letters (and rejects) go to `dead_letter` as JSONL."""
        started = time.monotonic()
        self.saved = None
        summary = RunSummary()
        progress_path = Progress.path_for(input_path, self.profile.index)
        size, mtime = input_stamp(input_path)
        previous = Progress.load(progress_path) if resume else None
        if previous and (previous.index_uuid, previous.input_size, previous.input_mtime_ns) != (
            self.profile.uuid,
            size,
            mtime,
        ):
            summary.notes.append(
                f"ignored {progress_path.name}: it describes another index or another version "
                "of the input; starting over"
            )
            previous = None
        done_before = previous.done_through if previous else 0
        superseded = superseded_positions(input_path)
        writer = BulkWriter(
            self.client, self.profile.index, self.field, "index", self.options, str(input_path)
        )
        in_flight: OrderedDict[int, None] = OrderedDict()
        lock = threading.Lock()
        last_read = 0
        bar = tqdm(
            unit="doc",
            disable=None if self.show_progress else True,
            desc=f"index {self.profile.index}",
        )
        dead_letter.parent.mkdir(parents=True, exist_ok=True)
        dead = dead_letter.open("a" if previous else "w", encoding="utf-8")

        def settled(position: int) -> None:
            """Note a final outcome (or a record needing none) for the progress file."""
            nonlocal last_read
            with lock:
                in_flight.pop(position, None)
                last_read = max(last_read, position)
            bar.update(1)

        def bury(letter: DeadLetter) -> None:
            with lock:
                dead.write(json.dumps(letter.to_json(), ensure_ascii=False) + "\n")

        def to_send() -> Iterator[tuple[int, EncodedRecord]]:
            """Records that need sending; the others are accounted for here (feeder thread)."""
            checking: list[tuple[int, EncodedRecord]] = []
            for position, item in read_encoded(input_path):
                summary.read += 1
                fresh = position not in superseded and isinstance(item, EncodedRecord)
                if position <= done_before and fresh:
                    checking.append((position, item))  # type: ignore[arg-type]
                    continue
                yield from self._unless_present(checking, summary, settled)
                checking = []
                if isinstance(item, DeadLetter):
                    summary.rejected += 1
                    bury(item)
                elif position in superseded:
                    summary.duplicates += 1
                else:
                    with lock:
                        in_flight[position] = None
                    yield position, item
                    continue
                settled(position)
            yield from self._unless_present(checking, summary, settled)

        def save_progress() -> None:
            with lock:
                safe = next(iter(in_flight)) - 1 if in_flight else last_read
                dead.flush()
            progress = Progress(self.profile.uuid, size, mtime, max(safe, done_before))
            progress.save(progress_path)
            self.saved = progress

        try:
            for count, (position, _, letter) in enumerate(writer.write(to_send()), start=1):
                if letter is None:
                    summary.indexed += 1
                else:
                    summary.dead_lettered += 1
                    bury(letter)
                settled(position)
                if count % self.options.chunk_size == 0:
                    save_progress()
        except BaseException:
            save_progress()
            raise
        finally:
            dead.close()
            bar.close()
        summary.retries = writer.retries
        summary.notes.extend(writer.notes)
        self.client.indices.refresh(index=self.profile.index)
        progress_path.unlink(missing_ok=True)
        self.saved = None
        summary.seconds = time.monotonic() - started
        return summary

    def _unless_present(
        self,
        records: list[tuple[int, EncodedRecord]],
        summary: RunSummary,
        settled: Callable[[int], None],
    ) -> Iterator[tuple[int, EncodedRecord]]:
        """Records a previous run claims done: skip the ones really in the index, send the rest."""
        for start in range(0, len(records), self.options.chunk_size):
            batch = list(islice(records, start, start + self.options.chunk_size))
            present = present_ids(
                self.client, self.profile.index, self.field, [r.id for _, r in batch]
            )
            for position, record in batch:
                if record.id in present:
                    summary.already_done += 1
                    settled(position)
                else:
                    yield position, record


def default_dead_letter(input_path: Path, index: str) -> Path:
    """Where `index-vectors` writes what it could not index, unless told otherwise."""
    return input_path.with_name(f"{input_path.name}.{index}.dead-letter.jsonl")


def index_file(
    client: OpenSearch,
    info: EngineInfo,
    input_path: Path,
    index: str,
    field: str = "splade",
    field_type: str | None = None,
    options: BulkOptions = BulkOptions(),
    dead_letter: Path | None = None,
    resume: bool = True,
    made: FieldProfile | None = None,
    show_progress: bool = True,
    layout: ShardLayout | None = None,
) -> RunSummary:
    """Index a file of encoded records into `index`, recording in the index how they were made.

    How they were made comes from the file's profile sidecar (`encode`, the Beam file sinks); a
    file without one needs `made` (the user says it), and one whose sidecar disagrees with
    `made` is refused: vectors of another quantization or model must never be mixed silently.
    `index-vectors`, the training report and the benchmarks share this one path.
    """
    check_index_name(index)
    recorded = FieldProfile.read(input_path)
    if recorded is None and made is None:
        raise ValueError(
            f"{input_path}: no {FieldProfile.path_for(input_path).name} beside it says how its "
            "vectors were made; encode with `splade-es encode` (or `index --output`), or state "
            "the factor they were quantized with (--quantization, 0 for float weights)"
        )
    if recorded is not None and made is not None and (why := recorded.clashes_with(made)):
        raise ValueError(f"{input_path}: its profile says {why}")
    source = recorded or made
    assert source is not None
    dead_letter = dead_letter or default_dead_letter(input_path, index)
    splade = SpladeField.of(source)
    profile = ensure_index(client, info, index, field, field_type, splade, layout=layout)
    indexer = FileIndexer(client, profile, field, options, show_progress)
    try:
        return indexer.run(input_path, dead_letter, resume)
    except (EngineError, ValueError, OSError) as exc:
        raise IndexingStopped(f"{exc}{indexer.resume_hint()}") from exc


class IndexingStopped(EngineError):
    """A run that stopped part-way; the message says whether re-running it resumes."""
