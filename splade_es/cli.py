"""`splade-es` command line: encode corpora, rewrite queries, print mappings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from splade_es.mappings import ENGINES, Engine, index_body
from splade_es.query import FORMS, Form, Hybrid, QueryPruning, QueryRewriter
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

F = TypeVar("F", bound=Callable[..., Any])


def model_options(func: F) -> F:
    """Options that choose and run a SPLADE model; shared by every command that encodes."""
    decorators = [
        click.option("--model", default="splade-tiny", show_default=True,
                     help="Alias, local folder or Hugging Face name."),
        click.option("--query-model", default=None,
                     help="Separate query encoder (doc/query pair models)."),
        click.option("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best)."),
        click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
                     default="float32", show_default=True),
        click.option("--doc-max-length", type=int, default=None,
                     help="Document truncation (default: model settings or 256)."),
        click.option("--query-max-length", type=int, default=None,
                     help="Query truncation (default: model settings or 64)."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def load_encoder(opts: dict[str, Any]) -> Any:
    """Build the encoder from `model_options` values (imported lazily: torch is slow to import)."""
    from splade_es.encoder import SpladeEncoder

    return SpladeEncoder.load(
        opts["model"],
        query_model=opts["query_model"],
        device=opts["device"],
        dtype=opts["dtype"],
        doc_max_length=opts["doc_max_length"],
        query_max_length=opts["query_max_length"],
    )


def fail(message: str) -> None:
    """Exit with a one-line error instead of a traceback."""
    raise click.ClickException(message)


@click.group()
@click.version_option(package_name="splade-es")
def main() -> None:
    """SPLADE learned sparse retrieval for Elasticsearch and OpenSearch."""


@main.command()
@model_options
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="BEIR corpus JSONL (_id, title, text).")
@click.option("--output", "output_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="out.jsonl or out.parquet")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where bad input lines go (default: <output>.rejects.jsonl).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--top-k", type=int, default=None, help="Keep the k heaviest terms per document.")
@click.option("--max-ratio", type=float, default=None, help="Keep terms >= ratio * max weight.")
@click.option("--alpha-mass", type=float, default=None, help="Keep terms holding this weight mass.")
@click.option("--threshold", type=float, default=None, help="Keep terms with weight >= threshold.")
@click.option("--quantization", type=float, default=DEFAULT_QUANTIZATION_FACTOR, show_default=True,
              help="Integer weights = round(weight * factor); 0 writes floats.")
@click.option("--no-text", is_flag=True, help="Do not carry title/text into the output.")
@click.option("--limit", type=int, default=None, help="Encode only the first N good documents.")
def encode(input_path: Path, output_path: Path, rejects: Path | None, batch_size: int,
           top_k: int | None, max_ratio: float | None, alpha_mass: float | None,
           threshold: float | None, quantization: float, no_text: bool, limit: int | None,
           **model_opts: Any) -> None:
    """Encode a BEIR corpus into SPLADE feature records (JSONL or Parquet)."""
    from itertools import islice

    from splade_es.batch_encode import DocumentPruning, encode_corpus
    from splade_es.corpus import EncodedWriter, ReadStats, read_documents, write_rejects

    try:
        writer = EncodedWriter(output_path)
    except ValueError as exc:
        fail(str(exc))
    encoder = load_encoder(model_opts)
    stats = ReadStats()
    docs = read_documents(input_path, stats)
    if limit is not None:
        docs = islice(docs, limit)
    try:
        pruning = DocumentPruning(top_k, max_ratio, alpha_mass, threshold)
        with writer:
            written = encode_corpus(encoder, docs, writer, pruning, quantization or None,
                                    batch_size, keep_text=not no_text)
    except ValueError as exc:
        fail(str(exc))
    rejects_path = rejects or output_path.with_name(output_path.name + ".rejects.jsonl")
    if stats.rejected:
        write_rejects(rejects_path, stats.rejected)
        for reject in stats.rejected[:10]:
            click.echo(f"rejected {reject.source}:{reject.line}: {reject.reason}", err=True)
    click.echo(
        f"read {stats.read} lines: encoded {written}, rejected {len(stats.rejected)}"
        + (f" (see {rejects_path})" if stats.rejected else ""),
        err=True,
    )


@main.command()
@click.argument("text")
@model_options
@click.option("--engine", type=click.Choice(ENGINES), default="opensearch", show_default=True)
@click.option("--form", type=click.Choice(FORMS), default="rank_feature", show_default=True)
@click.option("--field", default="splade", show_default=True)
@click.option("--top-k", type=int, default=None, help="Keep the k heaviest query terms.")
@click.option("--threshold", type=float, default=None, help="Drop query terms below this weight.")
@click.option("--max-clauses", type=int, default=1024, show_default=True)
@click.option("--rescore-window", type=int, default=None,
              help="Two-phase: pruned query retrieves, full query re-ranks this many.")
@click.option("--hybrid", is_flag=True, help="Add a BM25 match on the text field.")
@click.option("--bm25-weight", type=float, default=1.0, show_default=True)
@click.option("--splade-weight", type=float, default=1.0, show_default=True)
@click.option("--text-field", default="content", show_default=True)
@click.option("--size", type=int, default=10, show_default=True)
@click.option("--explain", is_flag=True, help="Print the weighted tokens instead of the body.")
def rewrite(text: str, engine: Engine, form: Form, field: str, top_k: int | None,
            threshold: float | None, max_clauses: int, rescore_window: int | None,
            hybrid: bool, bm25_weight: float, splade_weight: float, text_field: str, size: int,
            explain: bool, **model_opts: Any) -> None:
    """Print the engine query body for TEXT (or its weighted tokens with --explain)."""
    try:
        rewriter = QueryRewriter(
            encoder=load_encoder(model_opts),
            engine=engine,
            form=form,
            field=field,
            pruning=QueryPruning(top_k, threshold, max_clauses),
            rescore_window=rescore_window,
            hybrid=Hybrid(bm25_weight, splade_weight, text_field) if hybrid else None,
        )
        if explain:
            terms = rewriter.pruning.apply(rewriter.weighted_terms(text))
            click.echo(json.dumps({t: round(w, 4) for t, w in terms.weights}, indent=2,
                                  ensure_ascii=False))
            return
        click.echo(json.dumps(rewriter.body(text, size=size), indent=2, ensure_ascii=False))
    except ValueError as exc:
        fail(str(exc))


@main.command()
@click.option("--engine", type=click.Choice(ENGINES), default="opensearch", show_default=True)
@click.option("--version", "engine_version", default=None,
              help="Engine version (default: 2.19 for OpenSearch, 9.0 for Elasticsearch).")
@click.option("--field", default="splade", show_default=True)
@click.option("--field-type", type=click.Choice(["rank_features", "sparse_vector"]), default=None)
def mapping(engine: Engine, engine_version: str | None, field: str, field_type: str | None) -> None:
    """Print the create-index body (settings + mappings) for an engine."""
    version = engine_version or ("2.19.0" if engine == "opensearch" else "9.0.0")
    try:
        click.echo(json.dumps(index_body(engine, version, field, field_type), indent=2))
    except ValueError as exc:
        fail(str(exc))


def run() -> None:
    """Console-script entry point."""
    main(prog_name="splade-es")


if __name__ == "__main__":
    run()
