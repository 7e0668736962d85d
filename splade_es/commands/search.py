"""`splade-es search` and `eval`: queries built from what the index recorded about itself."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import click

from splade_es.options import (
    BATCHING,
    CONNECTION,
    ENCODER,
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
    "threshold",
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
    threshold: float | None = None,
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
        pruning=QueryPruning(top_k, threshold, max_df_ratio=max_df, frequencies=frequencies),
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


def search_options(func: F, index_required: bool = True) -> F:
    """What `search` and `eval` share: the index, its field, query pruning, hybrid weights."""
    decorators = [
        click.option(
            "--index",
            required=index_required,
            help=None if index_required else "The index (one collection; else --index-prefix).",
        ),
        field_option(),
        click.option(
            "--top-k", type=POSITIVE, default=None, help="Keep the k heaviest query terms."
        ),
        click.option(
            "--threshold",
            type=WEIGHT,
            default=None,
            help="Drop query terms below this weight (the heaviest term always stays).",
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
            "optionally @engine (OpenSearch search pipeline) or @client (BM25 and SPLADE as "
            "two searches in one _msearch, fused here; sum@client too).",
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
@click_options(CONNECTION, ENCODER)
@functools.partial(search_options, index_required=False)
@click.option(
    "--beir-dir",
    "beir_dirs",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    multiple=True,
    required=True,
    help="A BEIR folder, or a folder of BEIR folders; repeat for several collections.",
)
@click.option("--split", default="test", show_default=True)
@click.option(
    "--modes",
    default="bm25,splade,hybrid",
    show_default=True,
    help="Comma-separated: bm25, splade, splade:two-phase, hybrid, hybrid:METHOD[@engine|@client] "
    "(--in-process: bm25, splade, hybrid).",
)
@click.option(
    "--index-prefix",
    default=None,
    help="Each collection searches the index <prefix><collection name> (e.g. beir- gives "
    "beir-scifact).",
)
@click.option(
    "--create-missing",
    is_flag=True,
    help="Encode (cached, as --in-process) and index a collection whose index does not exist.",
)
@click.option(
    "--drop-self-hits",
    "self_hits",
    multiple=True,
    metavar="COLLECTION",
    help="Drop each query's own id from its ranking in this collection (repeatable). ArguAna "
    "needs it (its queries are arguments of its corpus): --drop-self-hits arguana.",
)
@click.option(
    "--in-process",
    is_flag=True,
    help="No engine: exact SPLADE dot products, in-process BM25 (k1=0.9, b=0.4, no stemming) and "
    "hybrid = BM25 + SPLADE (--bm25-weight/--splade-weight), over whole corpora.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where encoded corpora are cached (default: $SPLADE_ES_EVAL_CACHE or "
    "~/.cache/splade-es/eval).",
)
@click_options(BATCHING)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def evaluate_command(
    beir_dirs: tuple[Path, ...],
    split: str,
    modes: str,
    index_prefix: str | None,
    create_missing: bool,
    self_hits: tuple[str, ...],
    in_process: bool,
    cache_dir: Path | None,
    as_json: bool,
    **values: Any,
) -> None:
    """Score BEIR collections with BM25, SPLADE and hybrid: nDCG@10 and Recall@100 per
    collection, and their mean; each collection through its own index, or in process."""
    from splade_es.beir_eval import cross_table, find_collections
    from splade_es.client import EngineError
    from splade_es.exact_eval import cache_dir_from_env

    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    if not wanted:
        fail(f"--modes {modes!r}: give a comma-separated list of modes")
    try:
        collections = find_collections(beir_dirs, split, self_hits)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    cache = cache_dir or cache_dir_from_env()
    batch_size = values.pop("encode_batch_size")
    try:
        if in_process:
            runs, settings = in_process_source(values, wanted, cache, batch_size)
        else:
            runs, settings = engine_source(
                values, wanted, collections, index_prefix, create_missing, cache, batch_size
            )
        table = cross_table(
            collections, runs, settings, progress=lambda line: click.echo(line, err=True)
        )
    except (EngineError, ValueError, OSError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(table.to_json(), indent=2))
        return
    click.echo(table.render())
    click.echo("; ".join(f"{k}: {v}" for k, v in table.settings.items()))


def in_process_source(
    values: dict[str, Any], wanted: list[str], cache: Path, batch_size: int
) -> tuple[Any, dict[str, Any]]:
    """`eval --in-process`: the exact runs, restricted to the modes asked for."""
    from splade_es.exact_eval import ExactRuns, ExactSettings
    from splade_es.models import model_identity

    if unknown := [m for m in wanted if m not in ("bm25", "splade", "hybrid")]:
        raise ValueError(f"--modes {','.join(unknown)}: --in-process runs bm25, splade, hybrid")
    engine_only = {"index": None, "max_df": None, "df_file": None, "fusion": "sum"}
    if given := [k for k, default in engine_only.items() if values.get(k) != default]:
        names = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{names}: not used by --in-process (engine searches only)")
    settings = ExactSettings(
        bm25_weight=values["bm25_weight"], splade_weight=values["splade_weight"]
    )
    encoder = load_encoder(values)
    top_k, threshold = values["top_k"], values["threshold"]
    pruning = QueryPruning(top_k, threshold) if (top_k, threshold) != (None, None) else None
    exact = ExactRuns(
        encoder, cache, settings, batch_size, model_identity(values["model"]), pruning
    )

    def runs(collection: Any, queries: Any) -> dict[str, Any]:
        made = exact(collection, queries)
        return {m: made[m] for m in wanted}

    described = {**encoder_settings(values, encoder), **settings.describe()}
    if top_k is not None:
        described["query_top_k"] = top_k
    if threshold is not None:
        described["query_threshold"] = threshold
    return runs, described


def encoder_settings(values: dict[str, Any], encoder: Any) -> dict[str, Any]:
    """The model settings a table was made with (kept with its numbers)."""
    return {
        "model": values["model"],
        "dtype": values.get("dtype") or "auto",
        "doc_max_length": encoder.settings.doc_max_length,
        "query_max_length": encoder.settings.query_max_length,
    }


def engine_source(
    values: dict[str, Any],
    wanted: list[str],
    collections: Sequence[Any],
    index_prefix: str | None,
    create_missing: bool,
    cache: Path,
    batch_size: int,
) -> tuple[Any, dict[str, Any]]:
    """`eval` through the engine: per collection its index, a searcher per mode, one query cache."""
    from splade_es.beir_eval import QueryCache, engine_runs
    from splade_es.exact_eval import index_collection
    from splade_es.models import model_identity

    index = values.pop("index")
    if index is not None and (index_prefix is not None or len(collections) > 1):
        raise click.UsageError("--index names one collection's index; use --index-prefix")
    if index is None and index_prefix is None:
        raise click.UsageError("give --index (one collection) or --index-prefix")
    client, info, _ = open_cluster_from(values)
    needs_model = create_missing or any(m != "bm25" for m in wanted)
    encoder = load_encoder(values) if needs_model else None
    queries = QueryCache(encoder, batch_size) if encoder is not None else None
    shared = {key: values[key] for key in SEARCH_OPTIONS if key != "index"}
    model = model_identity(values["model"])
    analyzers: list[str] = []

    def runs(collection: Any, texts: Any) -> dict[str, Any]:
        name = index if index is not None else f"{index_prefix}{collection.name}"
        if create_missing:
            click.echo(
                index_collection(
                    client,
                    info,
                    encoder,
                    collection,
                    name,
                    shared["field"],
                    cache,
                    model,
                    batch_size,
                ),
                err=True,
            )
        searcher = searcher_for(client, info, queries, values["model"], name, **shared)
        if searcher.analyzer not in analyzers:
            analyzers.append(searcher.analyzer)
        variants = {spec: mode_variant(searcher, spec) for spec in wanted}
        # one more hit where the query's own document will be dropped, so 100 remain
        return engine_runs(variants, texts, depth=101 if collection.drop_self_hits else 100)

    settings: dict[str, Any] = {"path": f"engine ({info.engine} {info.version})"}
    if encoder is not None:
        settings.update(encoder_settings(values, encoder))
    settings["fusion"] = values["fusion"]
    settings["bm25_analyzer"] = analyzers  # filled as the collections run
    return runs, settings
