"""Hard negatives mined through a live engine index with authentication (the secured Elasticsearch
node the launcher starts), through `splade-es train --negative-source engine` itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from splade_es_workshop.engines import SECURED_SPEC, SECURED_USER, start

from splade_es.client import ConnectionSettings, open_cluster
from splade_es.training.cli import train as train_command
from splade_es.training.data import engine_searcher, load_beir, searcher_negatives
from tests.conftest import shifted

pytestmark = pytest.mark.engine
INDEX = "splade-es-training-negatives"


@pytest.fixture(scope="module")
def secured(scifact_slice: Path) -> Iterator[tuple[str, object, object]]:
    url = start(shifted(SECURED_SPEC))
    settings = ConnectionSettings(url=url, username=SECURED_USER, password=SECURED_SPEC.password)
    client, info = open_cluster(settings)
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    client.indices.create(
        index=INDEX, body={"mappings": {"properties": {"content": {"type": "text"}}}}
    )
    data = load_beir(scifact_slice)
    lines = []
    for doc_id, text in data.docs.items():
        lines += [
            json.dumps({"index": {"_index": INDEX, "_id": doc_id}}),
            json.dumps({"content": text}),
        ]
    client.bulk(body="\n".join(lines) + "\n", refresh=True)
    yield url, client, info
    client.indices.delete(index=INDEX, ignore_unavailable=True)


def test_engine_negatives_exclude_positives(scifact_slice: Path, secured: tuple) -> None:
    _, client, info = secured
    data = load_beir(scifact_slice)
    qids = sorted(data.qrels)
    negatives = searcher_negatives(data, qids, engine_searcher(client, info, INDEX), depth=5)
    for qid in qids:
        assert len(negatives[qid]) == 5
        assert not set(negatives[qid]) & set(data.qrels[qid])
        assert set(negatives[qid]) <= set(data.docs)


def test_train_command_mines_through_the_engine(
    scifact_slice: Path, tiny_mlm: Path, tmp_path: Path, secured: tuple
) -> None:
    url = secured[0]
    password = SECURED_SPEC.password
    assert password
    args = [
        "--beir-dir", str(scifact_slice), "--base-model", str(tiny_mlm), "--max-steps", "2",
        "--batch-size", "4", "--train-doc-max-length", "32", "--no-progress",
        "--negative-source", "engine", "--engine-index", INDEX, "--url", url, "--teacher", "none",
        "--user", SECURED_USER,
    ]  # fmt: skip
    runner = CliRunner()
    out = tmp_path / "engine"
    result = runner.invoke(train_command, [*args, "--out", str(out), "--password", password])
    assert result.exit_code == 0, result.output
    assert password not in (out / "train_config.json").read_text()  # secrets stay out of the run
    refused = runner.invoke(
        train_command, [*args, "--out", str(tmp_path / "x"), "--password", "nope"]
    )
    assert refused.exit_code != 0
    assert "Traceback" not in refused.output and "nope" not in refused.output
