"""Evaluation across collections without an engine: folders, the mean row, self hits, one query
encoding per run, the in-process path's cache and the `eval --in-process --json` shape."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from splade_es.beir_eval import (
    METRICS,
    Collection,
    QueryCache,
    cross_table,
    find_collections,
    without_self_hits,
)
from splade_es.cli import main
from splade_es.client import EngineInfo
from splade_es.evaluation import Run
from splade_es.exact_eval import ExactRuns
from splade_es.search import Searcher
from splade_es.sparse import SparseVector

pytestmark = pytest.mark.slow

# ArguAna-like: every query is also a document of the corpus (same id, same text); the document
# judged relevant is its counter-argument.
ARGUMENTS = {
    "a1": "vitamin d supplements prevent bone fractures in older adults",
    "a1-counter": "supplements of vitamin d do not prevent fractures, trials show",
    "a2": "school uniforms improve discipline and reduce bullying",
    "a2-counter": "uniforms do not reduce bullying at school, discipline is unchanged",
    "x1": "the stock market rose on strong earnings",
    "x2": "a recipe for bread with flour water and yeast",
}
QRELS = {"a1": {"a1-counter": 1}, "a2": {"a2-counter": 1}}


def write_collection(
    folder: Path,
    docs: Mapping[str, str],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    split: str = "test",
) -> Path:
    """A BEIR folder on disk."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in docs.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{g}" for q, judged in qrels.items() for d, g in judged.items()]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def arguments(folder: Path) -> Path:
    queries = {q: ARGUMENTS[q] for q in QRELS}
    return write_collection(folder, ARGUMENTS, queries, QRELS)


def small(folder: Path) -> Path:
    docs = {"1": "heart disease and diet", "2": "diet of whales in the arctic", "3": "car engines"}
    queries = {"1": "diet and heart disease", "2": "engines", "3": "whales", "9": "unjudged"}
    qrels = {"1": {"1": 1}, "2": {"3": 1}, "3": {"2": 1}}
    return write_collection(folder, docs, queries, qrels)


class CountingEncoder:
    """The real splade-tiny encoder, recording every query text it is asked to encode."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.query_texts: list[str] = []
        self.documents = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        self.query_texts.extend(texts)
        return list(self.real.encode_queries(texts, batch_size, progress))

    def encode_query(self, text: str) -> SparseVector:
        return self.encode_queries([text])[0]

    def encode_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        self.documents += len(texts)
        return list(self.real.encode_documents(texts, batch_size, progress))


# Folders ------------------------------------------------------------------------------------------


def test_folders_of_folders_and_repeated_folders(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    arguments(root / "arguana")
    small(root / "medline")
    (root / "passages").mkdir()  # a corpus without queries: skipped, not an error
    (root / "passages" / "corpus.jsonl").write_text("")
    other = small(tmp_path / "more" / "cisi")
    found = find_collections([root, other], drop_self_hits=["arguana"])
    assert [(c.name, c.drop_self_hits) for c in found] == [
        ("arguana", True),
        ("medline", False),
        ("cisi", False),
    ]
    assert found[2].path == other


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("duplicate", "a second collection named 'medline'"),
        ("not-beir", "neither a BEIR folder nor a folder of BEIR folders"),
        ("no-split", "no qrels/test.tsv"),
        ("unknown-drop", "--drop-self-hits nope: no such collection"),
    ],
)
def test_bad_folders_name_the_problem(tmp_path: Path, case: str, message: str) -> None:
    first = small(tmp_path / "a" / "medline")
    folders = [first]
    drop: list[str] = []
    if case == "duplicate":
        folders.append(small(tmp_path / "b" / "medline"))
    elif case == "not-beir":
        (tmp_path / "empty").mkdir()
        folders.append(tmp_path / "empty")
    elif case == "no-split":
        (first / "qrels" / "test.tsv").rename(first / "qrels" / "dev.tsv")
    else:
        drop = ["nope"]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        find_collections(folders, drop_self_hits=drop)


# The table ----------------------------------------------------------------------------------------


def perfect_or_empty(collection: Collection, queries: Mapping[str, str]) -> dict[str, Run]:
    """A run source: the judged documents for `arguana`, nothing for any other collection."""
    qrels = collection.qrels()
    hit = collection.name == "arguana"
    run = {q: ({d: 1.0 for d in qrels[q]} if hit else {}) for q in queries}
    return {"bm25": run, "splade": run}


def test_mean_row_is_the_unweighted_mean_of_the_collections(tmp_path: Path) -> None:
    collections = find_collections([arguments(tmp_path / "arguana"), small(tmp_path / "npl")])
    table = cross_table(collections, perfect_or_empty)
    assert table.rows["arguana"]["bm25"]["ndcg@10"] == 1.0
    assert table.rows["npl"]["bm25"]["ndcg@10"] == 0.0
    mean = table.mean()
    for mode in ("bm25", "splade"):
        for metric in METRICS:
            rows = [table.rows[name][mode][metric] for name in ("arguana", "npl")]
            assert mean[mode][metric] == pytest.approx(sum(rows) / 2)
    assert table.queries == {"arguana": 2, "npl": 3}  # only judged queries count
    last = table.render().splitlines()[-1].split()
    assert last[:2] == ["mean", "5"] and float(last[2]) == pytest.approx(mean["bm25"]["ndcg@10"])


def self_ranked(collection: Collection, queries: Mapping[str, str]) -> dict[str, Run]:
    """A run source that ranks each query's own document first, its judged one second."""
    qrels = collection.qrels()
    return {"bm25": {q: {q: 2.0, **{d: 1.0 for d in qrels[q]}} for q in queries}}


def test_self_hits_are_dropped_only_where_asked(tmp_path: Path) -> None:
    folder = arguments(tmp_path / "arguana")
    kept = cross_table(find_collections([folder]), self_ranked)
    dropped = cross_table(find_collections([folder], drop_self_hits=["arguana"]), self_ranked)
    assert kept.rows["arguana"]["bm25"]["mrr@10"] == pytest.approx(0.5)
    assert dropped.rows["arguana"]["bm25"]["mrr@10"] == 1.0
    assert dropped.settings["self_hits_dropped"] == ["arguana"]
    assert without_self_hits({"q": {"q": 3.0, "d": 1.0}}) == {"q": {"d": 1.0}}


# In process ---------------------------------------------------------------------------------------


def test_in_process_drops_self_hits_and_still_fills_the_ranking(
    tmp_path: Path, splade_tiny: Any
) -> None:
    found = find_collections([arguments(tmp_path / "arguana")], drop_self_hits=["arguana"])
    collection = found[0]
    queries = collection.queries(collection.qrels())
    runs = ExactRuns(splade_tiny, tmp_path / "cache", batch_size=4)(collection, queries)
    for mode, run in runs.items():
        for qid, ranking in run.items():
            assert qid not in ranking, (mode, qid)
    # the same collection with its self hits kept ranks the query's own text first
    kept = Collection(collection.name, collection.path)
    runs_kept = ExactRuns(splade_tiny, tmp_path / "cache", batch_size=4)(kept, queries)
    assert all(next(iter(runs_kept["bm25"][q])) == q for q in queries)
    table = cross_table(found, ExactRuns(splade_tiny, tmp_path / "cache"))
    assert table.rows["arguana"]["bm25"]["ndcg@10"] > 0.9


def test_in_process_top_k_scores_exactly_what_the_pruned_query_finds(
    tmp_path: Path, splade_tiny: Any
) -> None:
    from splade_es.exact_eval import encoded_corpus, load_encoded
    from splade_es.query import QueryPruning

    collection = find_collections([small(tmp_path / "cisi")])[0]
    queries = collection.queries(collection.qrels())
    pruned = ExactRuns(splade_tiny, tmp_path / "cache", pruning=QueryPruning(top_k=1))
    runs = pruned(collection, queries)
    ids, _, vectors = load_encoded(encoded_corpus(splade_tiny, collection, tmp_path / "cache"))
    for qid, text in queries.items():
        (token, weight), *rest = splade_tiny.encode_query(text).weights
        assert rest, "a one-term query would not tell pruned from unpruned"
        feature = SparseVector.from_pairs([(token, weight)]).to_features(None)
        ((key, value),) = feature.items()
        expected = {
            d: value * dict(v.weights).get(key, 0.0) for d, v in zip(ids, vectors, strict=True)
        }
        for doc, score in runs["splade"][qid].items():
            assert score == pytest.approx(expected[doc], rel=1e-5), (qid, doc)


def test_queries_are_encoded_once_per_run_and_the_corpus_once_per_cache(
    tmp_path: Path, splade_tiny: Any
) -> None:
    collections = find_collections([arguments(tmp_path / "arguana"), small(tmp_path / "cisi")])
    encoder = CountingEncoder(splade_tiny)
    table = cross_table(collections, ExactRuns(encoder, tmp_path / "cache", batch_size=4))
    assert set(table.modes) == {"bm25", "splade", "hybrid"}
    judged = [ARGUMENTS["a1"], ARGUMENTS["a2"], "diet and heart disease", "engines", "whales"]
    assert Counter(encoder.query_texts) == Counter(judged)
    assert encoder.documents == len(ARGUMENTS) + 3
    again = cross_table(collections, ExactRuns(encoder, tmp_path / "cache"))
    assert encoder.documents == len(ARGUMENTS) + 3  # read back from the cache
    assert again.rows == table.rows
    corpus = tmp_path / "cisi" / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + json.dumps({"_id": "4", "text": "new"}) + "\n")
    cross_table(collections, ExactRuns(encoder, tmp_path / "cache"))
    assert encoder.documents == len(ARGUMENTS) + 3 + 4  # a changed corpus is encoded again


def test_a_copied_dataset_folder_reads_the_cache_of_the_original(
    tmp_path: Path, splade_tiny: Any
) -> None:
    import os
    import shutil

    encoder = CountingEncoder(splade_tiny)
    original = small(tmp_path / "first" / "cisi")
    cross_table(find_collections([original]), ExactRuns(encoder, tmp_path / "cache"))
    assert encoder.documents == 3
    copy = shutil.copytree(original, tmp_path / "fresh-checkout" / "cisi")
    os.utime(copy / "corpus.jsonl", ns=(1, 1))  # a new copy: another path, another mtime
    cross_table(find_collections([copy]), ExactRuns(encoder, tmp_path / "cache"))
    assert encoder.documents == 3


def test_engine_modes_share_one_encoding_of_each_query(splade_tiny: Any) -> None:
    encoder = CountingEncoder(splade_tiny)
    cache = QueryCache(encoder)
    info = EngineInfo("opensearch", "2.19.6")
    searcher = Searcher(None, info, "idx", cache)  # type: ignore[arg-type]  # bodies only
    texts = [ARGUMENTS["a1"], ARGUMENTS["a2"]]
    cache.prime(texts)
    for mode in ("splade", "hybrid"):
        for text in texts:
            body = json.dumps(searcher.body(text, mode))
            assert "rank_feature" in body
    assert encoder.query_texts == texts


# The command --------------------------------------------------------------------------------------


def test_eval_in_process_json_shape(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    arguments(root / "arguana")
    small(root / "medline")
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--in-process",
            "--beir-dir",
            str(root),
            "--drop-self-hits",
            "arguana",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    table = json.loads(result.output[result.output.index("{\n") :])
    assert set(table) == {"collections", "mean", "settings"}
    assert list(table["collections"]) == ["arguana", "medline"]
    assert [e["queries"] for e in table["collections"].values()] == [2, 3]
    for entry in table["collections"].values():
        assert set(entry["modes"]) == {"bm25", "splade", "hybrid"}
        assert all(set(m) == set(METRICS) for m in entry["modes"].values())
    assert set(table["mean"]) == {"bm25", "splade", "hybrid"}
    assert table["settings"]["self_hits_dropped"] == ["arguana"]
    assert table["settings"]["path"] == "in-process (exact)"
    assert "query_top_k" not in table["settings"]


def test_eval_in_process_top_k_and_threshold_are_recorded_and_cost_splade_terms(
    tmp_path: Path,
) -> None:
    # one query judging two documents, each reached by one of its two words: cut to its heaviest
    # term, the query finds only one of them (a document scoring 0 is no hit)
    docs = {"1": "heart disease and diet", "2": "diet of whales in the arctic", "3": "car engines"}
    folder = write_collection(
        tmp_path / "medline", docs, {"q": "whales engines"}, {"q": {"2": 1, "3": 1}}
    )
    common = ["eval", "--in-process", "--beir-dir", str(folder), "--modes", "splade", "--json"]
    common += ["--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    tables = []
    for extra in ([], ["--top-k", "1"], ["--threshold", "1000"]):  # no weight reaches 1000
        result = CliRunner().invoke(main, [*common, *extra])
        assert result.exit_code == 0, result.output
        tables.append(json.loads(result.output[result.output.index("{\n") :]))
    full, top1, heaviest = tables
    assert top1["settings"]["query_top_k"] == 1
    assert heaviest["settings"]["query_threshold"] == 1000
    assert full["collections"]["medline"]["modes"]["splade"]["recall@100"] == 1.0
    assert top1["collections"]["medline"]["modes"]["splade"]["recall@100"] == 0.5
    assert heaviest["collections"]["medline"]["modes"]["splade"]["recall@100"] == 0.5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--in-process", "--modes", "hybrid:rrf"], "--in-process runs bm25, splade, hybrid"),
        (
            ["--in-process", "--drop-self-hits", "not-a-collection"],
            "--drop-self-hits not-a-collection",
        ),
        (["--in-process", "--fusion", "rrf"], "--fusion: not used by --in-process"),
        ([], "give --index (one collection) or --index-prefix"),
    ],
)
def test_eval_bad_options_are_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    folder = small(tmp_path / "medline")
    result = CliRunner().invoke(
        main, ["eval", "--beir-dir", str(folder), "--cache-dir", str(tmp_path), *extra]
    )
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_model_trained_against_a_frozen_document_side_reads_its_bases_corpora(
    tmp_path: Path,
) -> None:
    """`documents_of`: the document side is the base's bit for bit, so the base's encoded corpus
    is this model's too (a frozen run's six-collection score costs its queries only); a model
    without it, or naming another base, keys its own."""
    import shutil

    from splade_es.encoder import SpladeEncoder
    from splade_es.exact_eval import cache_key
    from splade_es.models import ModelSettings, model_identity, write_settings
    from tests.conftest import build_tiny_mlm

    base = build_tiny_mlm(tmp_path / "base", seed=1)
    other = build_tiny_mlm(tmp_path / "other", seed=2)
    corpus = small(tmp_path / "cisi") / "corpus.jsonl"

    def copy_of(name: str, documents_of: str | None) -> SpladeEncoder:
        folder = tmp_path / name
        shutil.copytree(base, folder)
        write_settings(folder, ModelSettings("shared", str(folder), None, 256, 64, True,
                                             documents_of))  # fmt: skip
        return SpladeEncoder.load(str(folder), device="cpu")

    key = cache_key(SpladeEncoder.load(str(base), device="cpu"), corpus)
    assert cache_key(copy_of("frozen", model_identity(str(base))), corpus) == key
    assert cache_key(copy_of("plain", None), corpus) != key
    assert cache_key(copy_of("elsewhere", model_identity(str(other))), corpus) != key
