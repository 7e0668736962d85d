"""Training data: BEIR reading with clear errors, BM25 negatives, teacher scores, batching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from training.bm25 import BM25, tokenize
from training.data import (
    BatchSampler,
    DataError,
    bm25_negatives,
    build_examples,
    load_beir,
    merge_negatives,
    read_teacher_scores,
    searcher_negatives,
    split_dev,
)


def copy_slice(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_load_slice(scifact_slice: Path) -> None:
    data = load_beir(scifact_slice)
    assert len(data.queries) == 20 and len(data.qrels) == 20
    assert 150 <= len(data.docs) <= 200
    assert all(d in data.docs for rel in data.qrels.values() for d in rel)


def test_qrels_doc_missing_from_corpus_names_file_and_line(
    scifact_slice: Path, tmp_path: Path
) -> None:
    beir = copy_slice(scifact_slice, tmp_path / "beir")
    with (beir / "qrels" / "train.tsv").open("a") as handle:
        handle.write(f"{next(iter(load_beir(scifact_slice).queries))}\tno-such-doc\t1\n")
    lines = (beir / "qrels" / "train.tsv").read_text().count("\n")
    with pytest.raises(
        DataError, match=rf"train\.tsv:{lines}: document id 'no-such-doc' is not in the corpus"
    ):
        load_beir(beir)


def test_qrels_query_missing(scifact_slice: Path, tmp_path: Path) -> None:
    beir = copy_slice(scifact_slice, tmp_path / "beir")
    text = (beir / "qrels" / "train.tsv").read_text().splitlines()
    doc = text[1].split("\t")[1]
    text.insert(2, f"q-missing\t{doc}\t1")
    (beir / "qrels" / "train.tsv").write_text("\n".join(text) + "\n")
    with pytest.raises(
        DataError, match=r"train\.tsv:3: query id 'q-missing' is not in the queries file"
    ):
        load_beir(beir)


def test_empty_query_text(scifact_slice: Path, tmp_path: Path) -> None:
    beir = copy_slice(scifact_slice, tmp_path / "beir")
    lines = (beir / "queries.jsonl").read_text().splitlines()
    obj = json.loads(lines[4])
    obj["text"] = "   "
    lines[4] = json.dumps(obj)
    (beir / "queries.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"queries\.jsonl:5: query .* has empty text"):
        load_beir(beir)


def test_empty_document_text(scifact_slice: Path, tmp_path: Path) -> None:
    beir = copy_slice(scifact_slice, tmp_path / "beir")
    with (beir / "corpus.jsonl").open("a") as handle:
        handle.write(json.dumps({"_id": "empty", "title": "", "text": ""}) + "\n")
    n = (beir / "corpus.jsonl").read_text().count("\n")
    with pytest.raises(DataError, match=rf"corpus\.jsonl:{n}: empty 'title' and 'text'"):
        load_beir(beir)


def test_bad_qrels_columns_and_missing_file(scifact_slice: Path, tmp_path: Path) -> None:
    beir = copy_slice(scifact_slice, tmp_path / "beir")
    with (beir / "qrels" / "train.tsv").open("a") as handle:
        handle.write("only two\tcolumns\n")
    with pytest.raises(DataError, match=r"train\.tsv:\d+: expected 3 tab-separated columns"):
        load_beir(beir)
    with pytest.raises(DataError, match=r"dev\.tsv: qrels file not found"):
        load_beir(scifact_slice, "dev")


def test_teacher_scores(scifact_slice: Path, tmp_path: Path) -> None:
    data = load_beir(scifact_slice)
    qid = next(iter(data.qrels))
    doc = next(iter(data.qrels[qid]))
    good = tmp_path / "teacher.tsv"
    good.write_text(f"query_id\tdoc_id\tscore\n{qid}\t{doc}\t12.5\n")
    assert read_teacher_scores(good, data.docs, data.queries) == {qid: {doc: 12.5}}
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"{qid}\t{doc}\t1.0\n{qid}\t{doc}\tnan\n")
    with pytest.raises(DataError, match=r"bad\.tsv:2: score 'nan' is not finite"):
        read_teacher_scores(bad, data.docs, data.queries)
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text(f"{qid}\tnope\t1.0\n")
    with pytest.raises(DataError, match=r"unknown\.tsv:1: document id 'nope' is not in the corpus"):
        read_teacher_scores(unknown, data.docs, data.queries)


def test_bm25_ranks_exact_document_first() -> None:
    texts = ["vitamin d deficiency and cancer", "the cat sat on the mat", "cancer cells divide"]
    bm25 = BM25(["a", "b", "c"], texts)
    run = bm25.search({"q1": "Vitamin D cancer", "q2": "unseen words"}, k=2)
    assert list(run["q1"]) == ["a", "c"]
    assert run["q2"] == {}
    assert tokenize("Vitamin-D, 25(OH)D!") == ["vitamin", "d", "25", "oh", "d"]
    # Lucene BM25 on a one-term query: idf * tf*(k1+1)/(tf + k1*(1-b+b*dl/avgdl))
    import math

    dl, avg = 5, (5 + 6 + 3) / 3
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 1 * 1.9 / (1 + 0.9 * (0.6 + 0.4 * dl / avg))
    assert bm25.search({"q": "vitamin"}, k=1)["q"]["a"] == pytest.approx(expected, rel=1e-5)


def test_negatives_exclude_positives_and_batches(scifact_slice: Path) -> None:
    data = load_beir(scifact_slice)
    qids = sorted(data.qrels)
    negatives = bm25_negatives(data, qids, depth=10)
    for qid in qids:
        assert negatives[qid] and not set(negatives[qid]) & set(data.qrels[qid])
    # an engine hook: any callable ({qid: text}, k) -> {qid: [doc ids]}
    fake_engine = lambda queries, k: {q: list(data.docs)[:k] for q in queries}  # noqa: E731
    hooked = searcher_negatives(data, qids, fake_engine, depth=5)
    assert all(len(v) <= 5 and not set(v) & set(data.qrels[q]) for q, v in hooked.items())
    merged = merge_negatives(negatives, hooked)
    assert merged[qids[0]][:2] == [negatives[qids[0]][0], hooked[qids[0]][0]]

    examples = build_examples(data, qids, negatives)
    sampler = BatchSampler(data, examples, batch_size=4, n_negatives=2, seed=7)
    batch = sampler.batch(3)
    again = BatchSampler(data, examples, batch_size=4, n_negatives=2, seed=7).batch(3)
    assert batch == again  # a pure function of the step: resuming replays the same batches
    assert len(batch.queries) == 4 and len(batch.docs) == 4 * 3
    assert len(set(batch.qids)) == 4  # no query twice in a batch (false in-batch negatives)
    for i, qid in enumerate(batch.qids):
        positives = {data.docs[d] for d in data.qrels[qid]}
        assert batch.docs[i] in positives
        assert not set(batch.docs[4 + 2 * i : 6 + 2 * i]) & positives


def test_split_dev() -> None:
    train, dev = split_dev([str(i) for i in range(50)], fraction=0.2, max_queries=8)
    assert len(dev) == 8 and len(train) == 42 and not set(train) & set(dev)


@pytest.mark.slow
def test_splade_negatives_from_current_model(scifact_slice: Path) -> None:
    from splade_es.encoder import SpladeEncoder
    from training.data import splade_negatives

    data = load_beir(scifact_slice)
    qids = sorted(data.qrels)[:5]
    encoder = SpladeEncoder.load("splade-tiny", device="cpu", doc_max_length=32)
    negatives = splade_negatives(data, qids, encoder, depth=8)
    for qid in qids:
        assert len(negatives[qid]) == 8
        assert not set(negatives[qid]) & set(data.qrels[qid])
