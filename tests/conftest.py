"""Shared fixtures: the real SciFact data, the bundled splade-tiny model, tiny local models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ("tests.failure.beam_helpers",)
"""`beam_node` / `beam_index`: the Beam edge tests' node, also used by the Flink secrets test."""


def scifact_dir() -> Path:
    """../shared/datasets/scifact beside the checkout (override: SPLADE_ES_SCIFACT)."""
    return Path(
        os.environ.get("SPLADE_ES_SCIFACT", ROOT.parent / "shared" / "datasets" / "scifact")
    )


@pytest.fixture(scope="session")
def scifact() -> Path:
    path = scifact_dir()
    if not (path / "corpus.jsonl").is_file():
        pytest.fail(f"SciFact not found at {path}: tests need ../shared/datasets/scifact")
    return path


@pytest.fixture(scope="session")
def splade_tiny():
    from splade_es.encoder import SpladeEncoder

    return SpladeEncoder.load("splade-tiny", device="cpu")


def build_tiny_mlm(folder: Path, seed: int, hidden: int = 32, layers: int = 1) -> Path:
    """Save a randomly initialised small BertForMaskedLM with splade-tiny's tokenizer to `folder`.

    Stands in for a hub model (no hub here): loaded by path exactly as `from_pretrained` would.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from splade_es.models import bundled_model_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    model = BertForMaskedLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Local stand-ins for the three hub model shapes."""
    base = tmp_path_factory.mktemp("models")
    doc = build_tiny_mlm(base / "doc", seed=1)
    query = build_tiny_mlm(base / "query", seed=2)
    free = base / "inference-free"
    shutil.copytree(doc, free)
    (free / "idf.json").write_text(
        json.dumps({"vitamin": 3.5, "d": 1.25, "cancer": 2.0, "##s": 0.0})
    )
    return {"doc": doc, "query": query, "inference-free": free}


# ----------------------------------------------------------------------- engine generations


def engine_spec(name: str, generation: str = "new") -> Any:
    """The spec tests start for engine `name`: the default (Lucene 10) generation, or with
    `generation="old"` the previous one (OpenSearch 2.19, Elasticsearch 8.19), each on its own
    port, shifted by SPLADE_ES_TEST_PORT_SHIFT (0 by default) to run beside nodes already up."""
    from splade_es_workshop.engines import DEFAULT_SPECS, OLDGEN_SPECS

    return shifted((OLDGEN_SPECS if generation == "old" else DEFAULT_SPECS)[name])


def shifted(spec: Any) -> Any:
    """`spec` on its port + SPLADE_ES_TEST_PORT_SHIFT."""
    from dataclasses import replace

    return replace(spec, port=spec.port + int(os.environ.get("SPLADE_ES_TEST_PORT_SHIFT", "0")))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--extended",
        action="store_true",
        help="also run the `extended` tests (long cluster fault drills; `make test-extended`)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`one_generation` tests run on the default generation only: what they check (process
    handling, client retries, the CLI path) is the launcher's and the client's, not the engine
    version's (mappings, query forms and scores per version are checked on both).

    `extended` tests (a rolling restart of a 3-node cluster, a paused node, the Elasticsearch
    cluster's half: minutes each) run with `--extended` only, so the default run (CI's) stays
    well under 30 minutes; they are listed as skipped, not silently dropped."""
    skip = pytest.mark.skip(reason="one_generation: checked on the default engine generation")
    long = pytest.mark.skip(reason="extended: run with --extended (make test-extended)")
    for item in items:
        if item.get_closest_marker("one_generation") and item.get_closest_marker("oldgen"):
            item.add_marker(skip)
        if item.get_closest_marker("extended") and not config.getoption("--extended"):
            item.add_marker(long)


def generation_params(*names: str) -> list[Any]:
    """Fixture params `(generation, engine)`: each engine on the default generation, then on the
    old one marked `oldgen` (select with `-m oldgen`, leave out with `-m "not oldgen"`)."""
    new = [pytest.param(("new", n), id=n) for n in names]
    old = [pytest.param(("old", n), id=f"{n}-oldgen", marks=pytest.mark.oldgen) for n in names]
    return new + old
