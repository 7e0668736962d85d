"""Helpers and fixtures of the Beam edge tests (test_pipeline_edges*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch
from splade_es_workshop.engines import DEFAULT_SPECS, start

from splade_es.client import ConnectionSettings, connect

ROOT = Path(__file__).resolve().parents[2]
N_DOCS = 40


# Helpers -----------------------------------------------------------------------------------------


def secrets() -> tuple[str, str]:
    """A password given as an option and another inside the URL, unique to the test."""
    tag = uuid.uuid4().hex[:10]
    return f"opt-pw-{tag}", f"url-pw-{tag}"


def files_holding(folder: Path, needles: tuple[str, ...]) -> list[str]:
    """Files under `folder` whose bytes contain any needle (unreadable files are skipped)."""
    found = []
    for path in folder.rglob("*"):
        try:
            data = path.read_bytes() if path.is_file() else b""
        except OSError:
            continue
        if any(n.encode() in data for n in needles):
            found.append(str(path))
    return found


class EnvironWatch:
    """Collects the `PIPELINE_OPTIONS` of SDK worker processes while a run goes, read from
    /proc as any local user could (the worker's real environment, not a copy of it)."""

    def __init__(self) -> None:
        self.options: dict[int, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.wait(0.2):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    environ = (proc / "environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                for item in environ:
                    if item.startswith(b"PIPELINE_OPTIONS="):
                        self.options[int(proc.name)] = item.decode(errors="replace")

    def __enter__(self) -> EnvironWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def cli(args: list[str], cwd: Path, timeout: float = 540) -> subprocess.CompletedProcess[str]:
    """`splade-es` as a separate process (a real terminal's file descriptors, not a test buffer)."""
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run(
        [sys.executable, "-m", "splade_es.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def scifact_lines(scifact: Path, n: int = N_DOCS) -> list[str]:
    with (scifact / "corpus.jsonl").open(encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in islice(handle, n)]


@pytest.fixture(scope="module")
def beam_node() -> Iterator[tuple[str, OpenSearch]]:
    url = start(DEFAULT_SPECS["opensearch"])
    client = connect(ConnectionSettings(url=url))
    yield url, client
    client.close()


@pytest.fixture()
def beam_index(beam_node: tuple[str, OpenSearch]) -> Iterator[str]:
    name = f"failure-beam-{uuid.uuid4().hex[:10]}"
    yield name
    beam_node[1].indices.delete(index=name, ignore_unavailable=True)


def indexed_ids(client: OpenSearch, index: str) -> dict[str, dict[str, Any]]:
    client.indices.refresh(index=index)
    hits = client.search(index=index, body={"size": 10000, "query": {"match_all": {}}})
    return {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}


def index_with_secrets(
    node_url: str, index: str, input_pattern: str, cwd: Path, *runner: str
) -> tuple[subprocess.CompletedProcess[str], EnvironWatch, tuple[str, ...]]:
    """`splade-es index` on `runner` with a password given as an option and another inside the
    URL, the SDK workers' environments watched; returns the run, the watch and the two secrets."""
    option_pw, url_pw = secrets()
    host = node_url.split("://", 1)[1]
    with EnvironWatch() as watch:
        done = cli(
            [
                "index", *runner, "--input", input_pattern, "--index", index,
                "--url", f"http://alice:{url_pw}@{host}", "--user", "alice",
                "--password", option_pw, "--device", "cpu", "--dead-letter", "dead",
            ],
            cwd,
        )  # fmt: skip
    return done, watch, (option_pw, url_pw)


def assert_all_indexed(
    client: OpenSearch, index: str, done: subprocess.CompletedProcess[str]
) -> None:
    """The run succeeded and every document is in the index with its vector (so the workers
    did get the credentials)."""
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    held = indexed_ids(client, index)
    assert len(held) == N_DOCS and all(source.get("splade") for source in held.values())
    assert f"read {N_DOCS}: indexed {N_DOCS}" in output
