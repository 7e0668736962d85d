"""A small SciFact slice in BEIR layout for fast training tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_es.bm25 import BM25
from splade_es.training.data import load_beir


def write_slice(source: Path, dest: Path, n_queries: int = 20, n_docs: int = 200) -> Path:
    """First `n_queries` train queries, their relevant docs, topped up with their BM25 neighbours."""
    data = load_beir(source, "train")
    qids = sorted(data.qrels, key=lambda q: int(q) if q.isdigit() else q)[:n_queries]
    keep: dict[str, None] = {}
    for qid in qids:
        keep.update(dict.fromkeys(data.qrels[qid]))
    run = BM25(list(data.docs), list(data.docs.values())).search(
        {q: data.queries[q] for q in qids}, k=n_docs
    )
    rank = 0
    while len(keep) < n_docs and rank < n_docs:
        for qid in qids:
            ranked = list(run[qid])
            if rank < len(ranked) and len(keep) < n_docs:
                keep.setdefault(ranked[rank], None)
        rank += 1
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "qrels").mkdir(exist_ok=True)
    with (source / "corpus.jsonl").open() as src, (dest / "corpus.jsonl").open("w") as out:
        for line in src:
            if json.loads(line)["_id"] in keep:
                out.write(line)
    with (dest / "queries.jsonl").open("w") as out:
        for qid in qids:
            out.write(json.dumps({"_id": qid, "text": data.queries[qid]}) + "\n")
    with (dest / "qrels" / "train.tsv").open("w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for qid in qids:
            for doc_id, grade in data.qrels[qid].items():
                out.write(f"{qid}\t{doc_id}\t{grade}\n")
    return dest


@pytest.fixture(scope="session")
def scifact_slice(scifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slice(scifact, tmp_path_factory.mktemp("scifact-slice"))


def _root_conftest():
    """tests/conftest.py as a module (both conftests are named `conftest`, so import it by path)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("splade_es_tests_root_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 1-layer, 32-hidden BERT MLM with the real tokenizer (fast to train)."""
    return _root_conftest().build_tiny_mlm(tmp_path_factory.mktemp("tiny") / "mlm", seed=3)
