"""`splade-es rewrite` and `mapping`: what a query or an index looks like in an engine's DSL."""

from __future__ import annotations

import json
from typing import Any

import click

from splade_es.mappings import DEFAULT_VERSIONS, ENGINES, Engine, index_body
from splade_es.options import (
    POSITIVE,
    QUANTIZATION,
    QUERY_SIDE,
    WEIGHT,
    click_options,
    fail,
    field_option,
    load_encoder,
)
from splade_es.query import FORMS, Form, Hybrid, QueryPruning, QueryRewriter


@click.command()
@click.argument("text")
@click_options(QUERY_SIDE)
@click.option("--engine", type=click.Choice(ENGINES), default="opensearch", show_default=True)
@click.option("--form", type=click.Choice(FORMS), default="rank_feature", show_default=True)
@field_option()
@click.option("--top-k", type=POSITIVE, default=None, help="Keep the k heaviest query terms.")
@click.option("--threshold", type=WEIGHT, default=None, help="Drop query terms below this weight.")
@click.option("--max-clauses", type=POSITIVE, default=1024, show_default=True)
@click.option(
    "--rescore-window",
    type=POSITIVE,
    default=None,
    help="Two-phase: pruned query retrieves, full query re-ranks this many.",
)
@click.option("--hybrid", is_flag=True, help="Add a BM25 match on the text field(s).")
@click.option("--bm25-weight", type=WEIGHT, default=1.0, show_default=True)
@click.option("--splade-weight", type=WEIGHT, default=1.0, show_default=True)
@click.option("--text-field", "text_fields", multiple=True, default=("content",), show_default=True)
@click_options((QUANTIZATION,))
@click.option("--size", type=POSITIVE, default=10, show_default=True)
@click.option("--explain", is_flag=True, help="Print the weighted tokens instead of the body.")
def rewrite(
    text: str,
    engine: Engine,
    form: Form,
    field: str,
    top_k: int | None,
    threshold: float | None,
    max_clauses: int,
    rescore_window: int | None,
    hybrid: bool,
    bm25_weight: float,
    splade_weight: float,
    text_fields: tuple[str, ...],
    quantization: float | None,
    size: int,
    explain: bool,
    **values: Any,
) -> None:
    """Print the engine query body for TEXT (or its weighted tokens with --explain)."""
    try:
        rewriter = QueryRewriter(
            encoder=load_encoder(values),
            engine=engine,
            form=form,
            field=field,
            pruning=QueryPruning(top_k, threshold, max_clauses),
            rescore_window=rescore_window,
            hybrid=Hybrid(bm25_weight, splade_weight, text_fields) if hybrid else None,
            quantization=quantization,
        )
        if explain:
            terms = rewriter.pruning.apply(rewriter.weighted_terms(text))
            click.echo(
                json.dumps({t: round(w, 4) for t, w in terms.weights}, indent=2, ensure_ascii=False)
            )
            return
        click.echo(json.dumps(rewriter.body(text, size=size), indent=2, ensure_ascii=False))
    except (ValueError, OSError, RuntimeError) as exc:
        fail(str(exc))


@click.command()
@click.option("--engine", type=click.Choice(ENGINES), default="opensearch", show_default=True)
@click.option(
    "--version",
    "engine_version",
    default=None,
    help="Engine version (default: the generation the toolkit targets: 3.6.0 / 9.2.4).",
)
@field_option()
@click.option("--field-type", type=click.Choice(["rank_features", "sparse_vector"]), default=None)
@click.option(
    "--analyzer",
    type=click.Choice(["standard", "english"]),
    default="standard",
    show_default=True,
    help="BM25 analyzer (english needs the analysis-common module).",
)
def mapping(
    engine: Engine, engine_version: str | None, field: str, field_type: str | None, analyzer: str
) -> None:
    """Print the create-index body (settings + mappings) for an engine."""
    version = engine_version or DEFAULT_VERSIONS[engine]
    try:
        click.echo(json.dumps(index_body(engine, version, field, field_type, analyzer), indent=2))  # type: ignore[arg-type]
    except ValueError as exc:
        fail(str(exc))
