"""Small real inputs for the Beam pipeline tests: 40 SciFact documents plus broken records."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest

from splade_es.corpus import Document, read_documents

N_DOCS = 40
BAD_LINES = [
    '{"_id": "no-text", "title": "only a title"}',
    "this is not JSON",
    '{"title": "no id", "text": "some text"}',
    '{"_id": "blank", "title": " ", "text": ""}',
]


@pytest.fixture(scope="session")
def scifact_docs(scifact: Path) -> list[Document]:
    """The first 40 SciFact documents."""
    return list(islice(read_documents(scifact / "corpus.jsonl"), N_DOCS))


@pytest.fixture()
def corpus_with_bad_lines(scifact: Path, tmp_path: Path) -> Path:
    """40 real SciFact lines, the broken ones mixed in, and a blank line (not a record)."""
    with (scifact / "corpus.jsonl").open(encoding="utf-8") as handle:
        good = [line.rstrip("\n") for line in islice(handle, N_DOCS)]
    lines = good[:10] + BAD_LINES[:2] + [""] + good[10:] + BAD_LINES[2:]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def index_name() -> Iterator[str]:
    """A unique index name; the index is deleted afterwards."""
    from splade_es_workshop.engines import start

    from splade_es.client import ConnectionSettings, connect
    from tests.conftest import engine_spec

    name = f"pipelines-test-{uuid.uuid4().hex[:10]}"
    yield name
    client = connect(ConnectionSettings(url=start(engine_spec("opensearch"))))
    client.indices.delete(index=name, ignore_unavailable=True)
    client.close()


def read_jsonl(pattern: str, folder: Path) -> list[dict]:
    """All records of the JSONL shards matching `pattern` under `folder`."""
    return [
        json.loads(line)
        for path in sorted(folder.glob(pattern))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
