"""Training data: BEIR and pairs files with clear errors, negatives, teacher scores, rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from splade_es.bm25 import BM25, tokenize
from splade_es.training.data import (
    DataError,
    RowPlan,
    balanced_rows,
    bm25_negatives,
    build_rows,
    load_beir,
    load_training_data,
    merge_negatives,
    negative_columns,
    read_teacher_scores,
    run_negatives,
    searcher_negatives,
    splade_run,
    split_dev,
)
from splade_es.training.teacher import (
    Fusion,
    candidates,
    ensemble_scores,
    fuse,
    write_teacher_scores,
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


def test_rows_carry_sampled_hard_negatives(scifact_slice: Path) -> None:
    data = load_beir(scifact_slice)
    qids = sorted(data.qrels)
    negatives = bm25_negatives(data, qids, depth=10)
    plan = RowPlan(n_negatives=2, passes=2, depth=10, seed=7)
    rows = build_rows(data, qids, negatives, plan)
    assert list(rows) == ["query", "positive", *negative_columns(2)]
    pairs = sum(1 for q in qids for g in data.qrels[q].values() if g > 0)
    assert len(rows["query"]) == 2 * pairs
    text_to_id = {t: d for d, t in data.docs.items()}
    query_to_id = {t: q for q, t in data.queries.items()}
    for i, query in enumerate(rows["query"]):
        qid = query_to_id[query]
        assert text_to_id[rows["positive"][i]] in data.qrels[qid]
        for name in negative_columns(2):
            assert text_to_id[rows[name][i]] in negatives[qid]  # from the mined top 10
    assert build_rows(data, qids, negatives, plan) == rows  # seeded: a resumed run sees the same
    first, second = rows["negative_1"][:pairs], rows["negative_1"][pairs:]
    assert first != second  # each pass draws afresh


def test_rows_with_teacher_labels(scifact_slice: Path) -> None:
    data = load_beir(scifact_slice)
    qids = sorted(data.qrels)[:4]
    negatives = bm25_negatives(data, qids, depth=5)
    teacher = {
        q: {d: float(i) for i, d in enumerate([*data.qrels[q], *negatives[q][:3]])} for q in qids
    }
    rows = build_rows(data, qids, negatives, RowPlan(2, depth=5), teacher)
    text_to_id = {t: d for d, t in data.docs.items()}
    query_to_id = {t: q for q, t in data.queries.items()}
    for i, label in enumerate(rows["label"]):
        qid = query_to_id[rows["query"][i]]
        docs = [rows["positive"][i], rows["negative_1"][i], rows["negative_2"][i]]
        assert label == [teacher[qid][text_to_id[t]] for t in docs]  # only teacher-scored docs


def test_balanced_rows_spread_over_queries_before_repeating_one() -> None:
    # query "a" has 10 rows, "b" and "c" one each: 4 rows take b, c and two of a's, not four of a's
    queries = ["a"] * 10 + ["b", "c"]
    columns = {"query": queries, "positive": [f"p{i}" for i in range(12)]}
    picked = balanced_rows(columns, 4, seed=3)
    assert sorted(picked["query"]) == ["a", "a", "b", "c"]
    assert len(set(picked["positive"])) == 4  # distinct rows, each with its own columns
    for query, positive in zip(picked["query"], picked["positive"], strict=True):
        assert queries[int(positive[1:])] == query
    assert balanced_rows(columns, 4, seed=3) == picked  # seeded
    assert len(balanced_rows(columns, 50)["query"]) == 12  # never more than there are


def test_split_dev() -> None:
    train, dev = split_dev([str(i) for i in range(50)], fraction=0.2, max_queries=8)
    assert len(dev) == 8 and len(train) == 42 and not set(train) & set(dev)


@pytest.mark.slow
def test_splade_negatives_from_current_model(scifact_slice: Path) -> None:
    from splade_es.encoder import SpladeEncoder

    data = load_beir(scifact_slice)
    qids = sorted(data.qrels)[:5]
    encoder = SpladeEncoder.load("splade-tiny", device="cpu", doc_max_length=32)
    negatives = run_negatives(data, splade_run(data, qids, encoder), depth=8)
    for qid in qids:
        assert len(negatives[qid]) == 8
        assert not set(negatives[qid]) & set(data.qrels[qid])


def test_pairs_files_jsonl_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [
        {"query": "vitamin d", "positive": "vitamin d and bones", "negatives": ["cats and dogs"]},
        {"query": "vitamin d", "positive": "sunlight makes vitamin d"},
        {"query": "heart risk", "positive": "cardiac risk factors"},
    ]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    parquet = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    for path in (jsonl, parquet):
        data = load_training_data(path)
        assert sorted(data.queries.values()) == ["heart risk", "vitamin d"]
        vitamin = next(q for q, t in data.queries.items() if t == "vitamin d")
        assert {data.docs[d] for d in data.qrels[vitamin]} == {
            "vitamin d and bones",
            "sunlight makes vitamin d",
        }
        assert [data.docs[d] for d in data.given_negatives[vitamin]] == ["cats and dogs"]


def test_pairs_file_errors_name_the_record(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "positive": "p"}) + "\n" + '{"query": "q"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: 'positive' must be a non-empty text"):
        load_training_data(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(DataError, match=r"broken\.jsonl:1: bad JSON"):
        load_training_data(broken)
    with pytest.raises(DataError, match=r"missing\.jsonl: not found \(expected a BEIR folder"):
        load_training_data(tmp_path / "missing.jsonl")
    (tmp_path / "pairs.csv").write_text("query,positive\n")
    with pytest.raises(DataError, match=r"pairs\.csv: pairs files are \.jsonl or \.parquet"):
        load_training_data(tmp_path / "pairs.csv")


def test_fused_teacher_scores() -> None:
    docs = ["a", "b", "c"]
    bm25 = {"a": 30.0, "b": 10.0, "c": 20.0}
    splade = {"a": 1.0, "b": 3.0, "c": 2.0}
    assert fuse(bm25, splade, docs, Fusion(0.0)) == pytest.approx(splade)  # SPLADE alone
    only_bm25 = fuse(bm25, splade, docs, Fusion(1.0))  # BM25's order on SPLADE's scale
    assert only_bm25 == pytest.approx({"a": 3.0, "b": 1.0, "c": 2.0})
    even = fuse(bm25, splade, docs, Fusion(0.5))
    assert even["c"] == pytest.approx(2.0) and even["a"] == pytest.approx(even["b"])


def test_ensemble_teacher_over_a_slice(scifact_slice: Path, tmp_path: Path) -> None:
    data = load_beir(scifact_slice)
    qids = sorted(data.qrels)[:3]
    negatives = bm25_negatives(data, qids, depth=4)
    pools = candidates(data, qids, negatives, depth=4)
    fake_splade_run = {q: {d: float(len(d)) for d in pools[q]} for q in qids}
    scores = ensemble_scores(data, pools, fake_splade_run, Fusion(0.5))
    assert {q: set(s) for q, s in scores.items()} == {q: set(p) for q, p in pools.items()}
    path = write_teacher_scores(tmp_path / "teacher.tsv", scores)
    again = read_teacher_scores(path, data.docs, data.queries)
    for qid in qids:
        assert again[qid] == pytest.approx(scores[qid], abs=1e-5)
