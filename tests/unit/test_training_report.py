"""The training report's summaries: seeds of one setting pooled, the engine table only for runs
scored through a node."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from splade_es.benchmarks.query_cost import REFERENCE, efficiency_table, query_terms
from splade_es.benchmarks.training_sweep import engine_table, query_speed, seed_spread, settings_of
from splade_es.corpus import read_qrels, read_queries
from splade_es.training.trainer import TrainConfig


def run(ndcg: float, hybrid: float, settings: str, engine: bool) -> dict[str, object]:
    scores: dict[str, object] = {"ndcg@10": ndcg + 0.5, "hybrid_ndcg@10": hybrid + 0.5}
    scores["settings"] = settings
    if engine:
        scores |= {
            "engine": "opensearch 3.6.0",
            "engine_analyzer": "english",
            "engine_bm25_ndcg@10": 0.6,
            "engine_ndcg@10": ndcg,
            "engine_recall@100": 0.9,
            "engine_hybrid_ndcg@10": hybrid,
            "engine_hybrid_recall@100": 0.95,
            "engine_fusion": "z_score@engine 0.3/0.7",
            "engine_fusion_dev_ndcg@10": 0.7,
        }
    return scores


def test_seeds_of_one_setting_are_pooled_through_the_engine() -> None:
    runs = {
        "a": run(0.70, 0.74, "lr=1", engine=True),
        "a-seed1": run(0.68, 0.76, "lr=1", engine=True),
        "b": run(0.60, 0.65, "lr=2", engine=True),
    }
    (line,) = seed_spread(runs, ["a", "a-seed1", "b"])
    assert "2 seeds (`a`, `a-seed1`, through the engine)" in line
    assert "SPLADE mean 0.6900 (0.6800-0.7000)" in line
    assert "hybrid mean 0.7500 (0.7400-0.7600)" in line


def test_seeds_without_engine_scores_pool_the_in_process_ones() -> None:
    runs = {"a": run(0.70, 0.74, "x", engine=True), "a2": run(0.60, 0.70, "x", engine=False)}
    (line,) = seed_spread(runs, ["a", "a2"])
    assert "through the engine" not in line
    assert "SPLADE mean 1.1500 (1.1000-1.2000)" in line


@pytest.mark.parametrize("engine", [True, False])
def test_engine_table_lists_only_runs_scored_on_a_node(engine: bool) -> None:
    runs = {"a": run(0.70, 0.74, "x", engine=engine), "b": run(0.6, 0.7, "y", engine=False)}
    lines = engine_table(runs, ["a", "b"])
    rows = [line for line in lines if line.startswith("| a ") or line.startswith("| b ")]
    assert [r.split(" |")[0] for r in rows] == (["| a"] if engine else [])
    if engine:
        assert "opensearch 3.6.0, BM25 on the english analyzer" in "\n".join(lines)


def xeval(splade: dict[str, float], hybrid_shift: float = 0.0) -> dict[str, object]:
    """A cross-collection result: SPLADE's nDCG@10 per collection, hybrid shifted from it."""
    return {
        "collections": {
            name: {
                "queries": 10,
                "modes": {
                    "splade": {"ndcg@10": value},
                    "hybrid": {"ndcg@10": value + hybrid_shift},
                },
            }
            for name, value in splade.items()
        }
    }


def test_in_and_out_of_domain_means_and_their_change_against_the_base_model() -> None:
    from splade_es.benchmarks.training_sweep import domain_table

    base = {
        "scifact": 0.6,
        "nfcorpus": 0.3,
        "arguana": 0.4,
        "cisi": 0.3,
        "medline": 0.7,
        "npl": 0.4,
    }
    tuned = dict(base, scifact=0.7, nfcorpus=0.4, cisi=0.1, npl=0.2)  # in +0.1, out -0.1
    runs = {
        "base": {"xeval": xeval(base, 0.05)},
        "tuned": {"xeval": xeval(tuned, 0.05)},
        "unscored": {},
    }
    lines = domain_table(runs, ["base", "tuned", "unscored"])
    (row,) = [line for line in lines if line.startswith("| tuned |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["0.5500", "+0.1000", "0.3500", "-0.1000"]  # SPLADE in, Δ, out, Δ
    assert cells[5:9] == ["0.6000", "+0.1000", "0.4000", "-0.1000"]  # hybrid
    assert cells[9:] == ["0.4000", "0.1000", "0.7000", "0.2000"]  # out-of-domain collections
    assert not any(line.startswith("| unscored |") for line in lines)
    assert domain_table({"tuned": runs["tuned"]}, ["tuned"]) == []  # nothing to compare with


def test_only_the_seed_may_differ_between_runs_pooled_as_seeds() -> None:
    """A recipe option off its default (the anchor, the teacher's BM25 share) is part of the
    settings, so such a run is never pooled with the plain recipe as one of its seeds."""
    config = dataclasses.asdict(TrainConfig(beir_dir="b", out="o"))
    plain = settings_of(config)
    assert settings_of({**config, "seed": 7, "out": "elsewhere"}) == plain
    anchored = settings_of({**config, "anchor_weight": 0.01})
    assert anchored != plain and "anchor_weight=0.01" in anchored
    assert plain.endswith("merge_weight=0.5")  # the default export, named: it changes the model
    assert settings_of({**config, "merge_weight": 1.0}).endswith("merge_weight=1.0")
    older = {k: v for k, v in config.items() if k != "merge_weight"}  # before the option
    assert "merge_weight" not in settings_of(older)
    assert "teacher_bm25_weight=0.0" in settings_of({**config, "teacher_bm25_weight": 0.0})
    runs = {
        "a": {"settings": plain, "ndcg@10": 0.70, "hybrid_ndcg@10": 0.74},
        "b": {
            "settings": settings_of({**config, "seed": 1}),
            "ndcg@10": 0.69,
            "hybrid_ndcg@10": 0.73,
        },
        "c": {"settings": anchored, "ndcg@10": 0.60, "hybrid_ndcg@10": 0.60},
    }
    (line,) = seed_spread(runs, ["a", "b", "c"])
    assert "2 seeds (`a`, `b`)" in line


def test_query_speed_times_every_test_query_and_counts_its_terms(
    scifact: Path, splade_tiny: Any
) -> None:
    speed = query_speed(splade_tiny, scifact, warmup=2, limit=20)
    queries = read_queries(scifact / "queries.jsonl")
    texts = [queries[q] for q in sorted(read_qrels(scifact / "qrels" / "test.tsv"))][:20]
    terms = [len(splade_tiny.encode_query(t)) for t in texts]
    assert speed["query_terms_one"] == pytest.approx(sum(terms) / len(terms))
    assert 0 < speed["query_ms_p50"] < 1000


def test_the_query_cost_table_holds_every_collection_to_the_reference() -> None:
    """An efficient run meets the bar only with few terms, under a millisecond and within 2% of
    the reference on every collection: one collection 3% under is a 'no'."""
    reference = {"xeval": xeval({"scifact": 0.70, "npl": 0.40}, hybrid_shift=0.035)}
    close = {"scifact": 0.695, "npl": 0.394}
    terms = {"scifact": 8.0, "npl": 6.0}
    runs: dict[str, dict[str, Any]] = {
        REFERENCE: reference,
        "good": {
            "xeval": xeval(close, hybrid_shift=0.035),  # hybrid: 0.73/0.735 and 0.429/0.435
            "query_ms_p50": 0.8,
            "query_terms_by_collection": terms,
        },
        "slow": {"xeval": xeval(close), "query_ms_p50": 1.2, "query_terms_by_collection": terms},
        "npl-low": {
            "xeval": xeval({"scifact": 0.70, "npl": 0.388}),
            "query_ms_p50": 0.5,
            "query_terms_by_collection": terms,
        },
        "untimed": {"xeval": xeval(close)},
    }
    lines = efficiency_table(runs, [REFERENCE, "good", "slow", "npl-low", "untimed"])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert rows["good"].endswith("| 0.985 | 0.986 | yes |")  # npl: 0.394/0.4, 0.429/0.435
    assert "| 7.0 |" in rows["good"] and "8.0 / 0.993" in rows["good"]
    assert rows["slow"].endswith("| no |") and rows["npl-low"].endswith("| 0.970 | 0.892 | no |")
    assert "untimed" not in rows and REFERENCE not in rows


def test_query_terms_are_counted_on_each_collection(scifact: Path, splade_tiny: Any) -> None:
    counted = query_terms(splade_tiny, [scifact])
    queries = read_queries(scifact / "queries.jsonl")
    judged = read_qrels(scifact / "qrels" / "test.tsv")
    vectors = splade_tiny.encode_queries([queries[q] for q in queries if q in judged])
    assert counted == {scifact.name: pytest.approx(sum(map(len, vectors)) / len(vectors))}


def test_pruned_queries_are_counted_and_timed_after_the_cut(
    scifact: Path, splade_tiny: Any
) -> None:
    from splade_es.query import QueryPruning

    cut = QueryPruning(top_k=3)
    counted = query_terms(splade_tiny, [scifact], cut)
    full = query_terms(splade_tiny, [scifact])
    assert counted[scifact.name] <= 3 < full[scifact.name]
    speed = query_speed(splade_tiny, scifact, warmup=2, limit=20, pruning=cut)
    assert speed["query_terms_one"] <= 3


def test_pruned_variants_get_their_own_rows_under_their_run() -> None:
    reference = {"xeval": xeval({"scifact": 0.70, "npl": 0.40})}
    pruned = {
        "xeval": xeval({"scifact": 0.69, "npl": 0.395}),
        "query_ms_p50": 0.9,
        "base_query_ms_p50": 2.5,
        "query_terms_by_collection": {"scifact": 10.0, "npl": 6.0},
    }
    runs: dict[str, dict[str, Any]] = {
        REFERENCE: reference,
        "pair": {
            "xeval": xeval({"scifact": 0.70, "npl": 0.40}),
            "query_ms_p50": 0.9,
            "query_terms_by_collection": {"scifact": 14.0, "npl": 7.0},
            "pruned": {"10": pruned, "w0.45": pruned, "8": pruned, "w0.3": pruned},
        },
    }
    lines = efficiency_table(runs, [REFERENCE, "pair"])
    labels = [line.split(" | ")[0].lstrip("| ") for line in lines if line.startswith("| pair")]
    assert labels == [
        "pair",
        "pair, `--top-k 8`",
        "pair, `--top-k 10`",
        "pair, `--threshold 0.3`",
        "pair, `--threshold 0.45`",
    ]
    row = next(line for line in lines if line.startswith("| pair, `--top-k 10`"))
    assert "| 0.90 (2.50) | 8.0 |" in row and row.endswith("| 0.986 | 0.986 | yes |")
