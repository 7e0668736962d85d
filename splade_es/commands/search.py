"""`splade-es search` and `eval`: queries built from what the index recorded about itself."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, cast

import click

from splade_es.options import (
    CONNECTION,
    FRACTION,
    POSITIVE,
    QUERY_SIDE,
    WEIGHT,
    F,
    JsonObject,
    apply_all,
    click_options,
    fail,
    field_option,
    load_encoder,
    open_cluster_from,
)
from splade_es.query import Hybrid, QueryPruning

SEARCH_OPTIONS = (
    "index",
    "field",
    "top_k",
    "bm25_weight",
    "splade_weight",
    "force_model",
    "fusion",
    "max_df",
    "df_file",
    "filter_query",
    "track_total_hits",
    "dfs",
    "rescore_window",
    "global_rescore",
)


def searcher_for(
    client: Any,
    info: Any,
    encoder: Any,
    model: str | None,
    index: str,
    field: str = "splade",
    force_model: bool = False,
    top_k: int | None = None,
    bm25_weight: float = 1.0,
    splade_weight: float = 1.0,
    fusion: str = "sum",
    two_phase: bool = False,
    max_df: float | None = None,
    df_file: Path | None = None,
    filter_query: dict[str, Any] | None = None,
    track_total_hits: bool = False,
    dfs: bool = False,
    rescore_window: int | None = None,
    global_rescore: bool = False,
) -> Any:
    """A Searcher built from what the index recorded about itself (`SEARCH_OPTIONS` as given to
    `search` / `eval`)."""
    from splade_es.fusion import Fusion
    from splade_es.search import DFS, Searcher
    from splade_es.search_pipelines import TwoPhase
    from splade_es.term_stats import DocumentFrequencies

    frequencies = DocumentFrequencies.load(df_file) if df_file is not None else None
    return Searcher.for_index(
        client,
        info,
        index,
        encoder,
        field,
        model=model,
        force_model=force_model,
        pruning=QueryPruning(top_k, max_df_ratio=max_df, frequencies=frequencies),
        hybrid=Hybrid(bm25_weight, splade_weight),
        fusion=Fusion.parse(fusion),
        two_phase=TwoPhase() if two_phase else None,
        filter=filter_query,
        track_total_hits=track_total_hits,
        rescore_window=rescore_window,
        search_type=DFS if dfs else None,
        rescore_scope="global" if global_rescore else "shard",
    )


def mode_variant(searcher: Any, spec: str) -> tuple[Any, str]:
    """An eval mode: `bm25`, `splade`, `splade:two-phase`, `hybrid`, `hybrid:min_max@client`..."""
    from dataclasses import replace

    from splade_es.fusion import Fusion
    from splade_es.search_pipelines import TwoPhase

    mode, _, variant = spec.partition(":")
    if mode == "hybrid" and variant:
        return replace(searcher, fusion=Fusion.parse(variant)), mode
    if mode == "splade" and variant == "two-phase":
        return replace(searcher, two_phase=TwoPhase()), mode
    if mode in ("bm25", "splade", "hybrid") and not variant:
        return searcher, mode
    raise ValueError(
        f"unknown mode {spec!r}: use bm25, splade, splade:two-phase, hybrid or hybrid:METHOD"
        "[@engine|@client] with METHOD one of sum, min_max, l2, z_score, rrf"
    )


def search_options(func: F) -> F:
    """What `search` and `eval` share: the index, its field, query pruning, hybrid weights."""
    decorators = [
        click.option("--index", required=True),
        field_option(),
        click.option(
            "--top-k", type=POSITIVE, default=None, help="Keep the k heaviest query terms."
        ),
        click.option(
            "--max-df",
            type=FRACTION,
            default=None,
            help="Drop query terms held by more than this share of the corpus (needs --df-file).",
        ),
        click.option(
            "--df-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="Document frequencies counted by `encode` (<output>.df.json).",
        ),
        click.option("--bm25-weight", type=WEIGHT, default=1.0, show_default=True),
        click.option("--splade-weight", type=WEIGHT, default=1.0, show_default=True),
        click.option(
            "--force-model", is_flag=True, help="Query with a model other than the index's."
        ),
        click.option(
            "--fusion",
            default="sum",
            show_default=True,
            help="Hybrid fusion: sum (one bool query), min_max, l2, z_score or rrf, "
            "optionally @engine (OpenSearch search pipeline) or @client.",
        ),
        click.option(
            "--filter",
            "filter_query",
            type=JsonObject(),
            default=None,
            help='Engine query every hit must match, as JSON (e.g. \'{"term": {"lang": "en"}}\').',
        ),
        click.option(
            "--track-total-hits",
            is_flag=True,
            help="Count every match (off: Lucene skips documents that cannot be top hits).",
        ),
        click.option(
            "--dfs",
            is_flag=True,
            help="dfs_query_then_fetch: BM25 with corpus-wide term statistics (several shards).",
        ),
        click.option(
            "--rescore-window",
            type=POSITIVE,
            default=None,
            help="Two-phase: the --top-k pruned query retrieves, the full query re-scores this "
            "many hits (per shard, a Lucene rescore, unless --global-rescore).",
        ),
        click.option(
            "--global-rescore",
            is_flag=True,
            help="Two-phase over all shards: re-score the top window of the whole index.",
        ),
    ]

    @functools.wraps(func)
    def checked(*args: Any, **values: Any) -> Any:
        if values.get("max_df") is not None and values.get("df_file") is None:
            raise click.UsageError("--max-df needs --df-file (the <output>.df.json `encode` wrote)")
        if values.get("global_rescore") and values.get("rescore_window") is None:
            raise click.UsageError("--global-rescore needs --rescore-window")
        return func(*args, **values)

    return apply_all(decorators, cast(F, checked))


@click.command()
@click.argument("text")
@click_options(CONNECTION, QUERY_SIDE)
@search_options
@click.option(
    "--mode", type=click.Choice(["bm25", "splade", "hybrid"]), default="splade", show_default=True
)
@click.option("--size", type=POSITIVE, default=10, show_default=True)
@click.option(
    "--two-phase", is_flag=True, help="SPLADE via OpenSearch's neural_sparse two-phase processor."
)
def search(text: str, mode: str, size: int, two_phase: bool, **values: Any) -> None:
    """Search INDEX for TEXT and print the hits."""
    from splade_es.client import EngineError

    client, info, _ = open_cluster_from(values)
    try:
        encoder = load_encoder(values) if mode != "bm25" else None
        shared = {key: values[key] for key in SEARCH_OPTIONS}
        searcher = searcher_for(
            client, info, encoder, values["model"], two_phase=two_phase, **shared
        )
        hits = searcher.search(text, mode, size)
        for rank, hit in enumerate(hits, start=1):
            click.echo(f"{rank:>3}  {hit.score:9.4f}  {hit.id:<14} {hit.title[:80]}")
        if not hits:
            click.echo(f"no hits in {values['index']!r} ({mode})", err=True)
    except (EngineError, ValueError, OSError, RuntimeError) as exc:
        fail(str(exc))


@click.command("eval")
@click_options(CONNECTION, QUERY_SIDE)
@search_options
@click.option(
    "--beir-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option("--split", default="test", show_default=True)
@click.option(
    "--modes",
    default="bm25,splade,hybrid",
    show_default=True,
    help="Comma-separated: bm25, splade, splade:two-phase, hybrid, hybrid:METHOD[@engine|@client].",
)
@click.option("--json", "as_json", is_flag=True, help="Print {mode: {metric: value}} as JSON.")
def evaluate_command(beir_dir: Path, split: str, modes: str, as_json: bool, **values: Any) -> None:
    """Run a BEIR split's queries through the engine; print nDCG@10, MRR@10, Recall@100."""
    from splade_es.client import EngineError
    from splade_es.corpus import read_qrels, read_queries
    from splade_es.evaluation import evaluate

    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    if not wanted:
        fail(f"--modes {modes!r}: give a comma-separated list of modes")
    client, info, _ = open_cluster_from(values)
    results: dict[str, dict[str, float]] = {}
    try:
        qrels = read_qrels(beir_dir / "qrels" / f"{split}.tsv")
        queries = {q: t for q, t in read_queries(beir_dir / "queries.jsonl").items() if q in qrels}
        encoder = load_encoder(values) if any(m != "bm25" for m in wanted) else None
        shared = {key: values[key] for key in SEARCH_OPTIONS}
        searcher = searcher_for(client, info, encoder, values["model"], **shared)
        qids = list(queries)
        for spec in wanted:
            variant, mode = mode_variant(searcher, spec)
            hits = variant.search_many([queries[q] for q in qids], mode, size=100)
            run = {q: {h.id: h.score for h in hs} for q, hs in zip(qids, hits, strict=True)}
            results[spec] = evaluate(run, qrels)
    except (EngineError, ValueError, OSError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(
        f"{'mode':<24} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8}   ({len(queries)} queries, {split}; "
        f"BM25 analyzer: {searcher.analyzer})"
    )
    for mode, m in results.items():
        click.echo(f"{mode:<24} {m['ndcg@10']:>8.4f} {m['mrr@10']:>8.4f} {m['recall@100']:>8.4f}")
