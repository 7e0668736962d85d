"""The records every path shares: an encoded document, how it was made, a dead letter, and a
run's summary.

`splade-es encode`, `index-vectors`, `index`, `upgrade`, `serve` and the Beam pipeline all produce
and consume these types, so a dead-letter file, a profile or a summary line means the same thing
whichever path wrote it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

MAX_ID_BYTES = 512
"""Both engines refuse a `_bulk` request holding an `_id` longer than 512 bytes (UTF-8)."""


def check_document_id(value: Any, key: str = "_id") -> str:
    """A usable document id as a string; ValueError names what is wrong with it."""
    if value is None:
        raise ValueError(f"'{key}' is null")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"'{key}' must be a string or integer, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise ValueError(f"'{key}' is empty")
    size = len(text.encode("utf-8"))
    if size > MAX_ID_BYTES:
        raise ValueError(f"'{key}' is {size} bytes long; engines accept at most {MAX_ID_BYTES}")
    return text


def check_features(value: Any) -> dict[str, float]:
    """Engine features `{name: weight}` with every weight a finite number > 0."""
    if not isinstance(value, dict):
        raise ValueError("'features' must be an object {name: weight}")
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"feature {name!r} has a non-numeric weight {weight!r}")
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"feature {name!r} has weight {weight!r}: engines need finite > 0")
    return value


@dataclass(frozen=True)
class EncodedRecord:
    """One encoded document: id, engine-ready SPLADE features, and the text kept for BM25."""

    id: str
    features: dict[str, float]
    title: str | None = None
    text: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> EncodedRecord:
        """Validate a decoded JSONL line / Parquet row; ValueError says what is wrong."""
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        if "id" not in obj:
            raise ValueError("missing 'id'")
        features = obj.get("features")
        if isinstance(features, list):  # Parquet map columns arrive as (key, value) pairs
            features = dict(features)
        for key in ("title", "text"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise ValueError(f"'{key}' must be a string")
        return cls(
            check_document_id(obj["id"], "id"),
            check_features(features),
            obj.get("title"),
            obj.get("text"),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSONL form (text fields omitted when not carried)."""
        out: dict[str, Any] = {"id": self.id, "features": self.features}
        if self.title is not None:
            out["title"] = self.title
        if self.text is not None:
            out["text"] = self.text
        return out

    def to_row(self) -> dict[str, Any]:
        """A row of `corpus.ENCODED_SCHEMA` (features as the map's key/value pairs)."""
        return {
            "id": self.id,
            "features": list(self.features.items()),
            "title": self.title,
            "text": self.text,
        }

    def source(self, field_name: str) -> dict[str, Any]:
        """The engine document: SPLADE features plus the text for BM25."""
        out: dict[str, Any] = {field_name: self.features}
        if self.title:
            out["title"] = self.title
        if self.text:
            out["text"] = self.text
        return out


@dataclass(frozen=True)
class FieldProfile:
    """How a SPLADE field's vectors were made: the one record of it.

    Written beside a file of encoded records (`<output>.profile.json`, by `encode` and the Beam
    file sinks), answered by the encoder service (`GET /ready`), and recorded in the index
    (`_meta.splade_es`, as `indices.SpladeField`, which adds the field type). Read by
    `index-vectors` (vectors made otherwise than the index's are refused) and by the query side
    (`Searcher.for_index`: same model, queries scaled by the same factor).
    """

    model: str | None = None
    """Model identity (`models.model_identity`): an alias, a folder or a hub name."""
    query_model: str | None = None
    """A separate query encoder, when the model is a document/query pair."""
    quantization: float | None = None
    """Integer weights = round(weight * factor); None: float weights."""
    pruning: dict[str, float] = field(default_factory=dict)
    """Document-side pruning criteria in use (`batch_encode.DocumentPruning.as_dict`)."""
    doc_max_length: int | None = None
    """Tokens per document the encoder read."""

    def clashes_with(self, other: FieldProfile) -> str | None:
        """Why vectors made as `other` must not go into a field made as `self`, if they must not."""
        if self.quantization != other.quantization:
            return f"quantization {self.quantization} (this run: {other.quantization})"
        if self.model and other.model and self.model != other.model:
            return f"model {self.model!r} (this run: {other.model!r})"
        return None

    def made(self) -> FieldProfile:
        """Only the FieldProfile part (a subclass's extra fields dropped)."""
        return FieldProfile(
            self.model, self.query_model, self.quantization, dict(self.pruning), self.doc_max_length
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> FieldProfile:
        """Known keys only (older and newer writers add or lack some); ValueError if not an object."""
        if not isinstance(obj, dict):
            raise ValueError(f"a profile must be a JSON object, not {type(obj).__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})

    @staticmethod
    def path_for(output: Path) -> Path:
        """The sidecar beside a file of encoded records."""
        return output.with_name(output.name + ".profile.json")

    def write(self, output: Path) -> None:
        from splade_es.files import write_atomically

        write_atomically(self.path_for(output), json.dumps(self.made().to_json(), indent=2))

    @classmethod
    def read(cls, output: Path) -> FieldProfile | None:
        """The sidecar of `output` (or, for a shard `<prefix>-SSSSS-of-NNNNN<suffix>` that a Beam
        file sink wrote, the one `<prefix>.profile.json` beside the shards); None when there is
        none."""
        path = cls.path_for(output)
        shard = _SHARD.fullmatch(output.name)
        if not path.is_file() and shard is not None:
            path = output.with_name(shard.group(1) + ".profile.json")
        if not path.is_file():
            return None
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable profile ({exc})") from exc


_SHARD = re.compile(r"(.+)-\d{5}-of-\d{5}\.(?:jsonl|parquet)")
"""A Beam file sink's shard name: the prefix, then `-SSSSS-of-NNNNN` and the suffix."""

Stage = Literal["read", "encode", "index"]


@dataclass(frozen=True)
class DeadLetter:
    """An input record that was not indexed or written, where it came from, and why.

    `stage` says which step refused it: `read` (unparseable input), `encode` (the model failed on
    it) or `index` (the engine refused it). `line` is the 1-based line or row number when known.
    """

    stage: Stage
    reason: str
    source: str = ""
    line: int | None = None
    id: str | None = None
    status: int | None = None
    raw: str | None = None
    record: EncodedRecord | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSONL line's object, without empty fields."""
        out = {k: v for k, v in asdict(self).items() if v is not None and v != "" and k != "record"}
        if self.record is not None:
            out["record"] = self.record.to_json()
        return out


@dataclass
class RunSummary:
    """What became of every record read: the counts must add up.

    read = written + indexed + rejected + dead_lettered + duplicates + already_done, where
    `rejected` are unreadable input records, `dead_lettered` records the model or the engine
    refused, `duplicates` earlier copies of an id that a later copy in the input replaced, and
    `already_done` records a resumed run found already indexed.
    """

    read: int = 0
    written: int = 0
    indexed: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    already_done: int = 0
    encoded: int = 0
    retries: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def adds_up(self) -> bool:
        accounted = (
            self.written
            + self.indexed
            + self.rejected
            + self.dead_lettered
            + self.duplicates
            + self.already_done
        )
        return self.read == accounted

    def line(self) -> str:
        """One line for the terminal; only the outcomes that happened are listed."""
        parts = [
            f"{name.replace('_', ' ')} {getattr(self, name)}"
            for name in (
                "written",
                "indexed",
                "rejected",
                "dead_lettered",
                "duplicates",
                "already_done",
            )
            if getattr(self, name)
        ]
        extra = f"{self.retries} retries, " if self.retries else ""
        flag = "" if self.adds_up() else "  COUNTS DO NOT ADD UP"
        return (
            f"read {self.read}: {', '.join(parts) or 'nothing'} ({extra}{self.seconds:.1f}s){flag}"
        )
