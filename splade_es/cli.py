"""`splade-es` command line: encode, index, rewrite, search, evaluate, run local engines.

Every failure a user can cause ends as one line naming the record or option (no traceback), and
no credential appears in any output, whatever form it was given in.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import click

from splade_es.engines.cli import engine
from splade_es.mappings import ENGINES, Engine, index_body
from splade_es.options import (
    BATCHING,
    BULK,
    CONNECTION,
    ENCODER,
    FRACTION,
    POSITIVE,
    PRUNING,
    WEIGHT,
    bulk_options,
    click_options,
    connection_settings,
    load_encoder,
    pick,
)
from splade_es.query import FORMS, Form, Hybrid, QueryPruning, QueryRewriter
from splade_es.runners.cli import runner

F = TypeVar("F", bound=Callable[..., Any])
QUERY_SIDE = tuple(o for o in ENCODER if o.name != "doc_max_length")


def apply_all(decorators: Sequence[Callable[[Any], Any]], func: F) -> F:
    """Apply click option decorators so they appear in the listed order."""
    decorated: Any = func
    for decorator in reversed(decorators):
        decorated = decorator(decorated)
    return cast(F, decorated)


def fail(message: str) -> NoReturn:
    """Exit with a one-line error (secrets redacted) instead of a traceback."""
    from splade_es.client import redact

    raise click.ClickException(redact(" ".join(str(message).split())))


def dead_letter_note(summary: Any, path: Path) -> str:
    return f"; see {path}" if summary.rejected or summary.dead_lettered else ""


@click.group()
@click.version_option(package_name="splade-es")
def main() -> None:
    """SPLADE learned sparse retrieval for Elasticsearch and OpenSearch."""


@main.command()
@click_options(ENCODER, BATCHING, PRUNING)
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="BEIR corpus: JSONL (_id, title, text) or Parquet with those columns.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="out.jsonl or out.parquet (replaced only when the run succeeds).",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where bad input lines go (default: <output>.rejects.jsonl).",
)
@click.option("--no-text", is_flag=True, help="Do not carry title/text into the output.")
@click.option(
    "--limit", type=POSITIVE, default=None, help="Encode only the first N good documents."
)
def encode(
    input_path: Path,
    output_path: Path,
    rejects: Path | None,
    no_text: bool,
    limit: int | None,
    **values: Any,
) -> None:
    """Encode a corpus into SPLADE feature records (JSONL or Parquet)."""
    from itertools import islice

    from splade_es.batch_encode import DocumentPruning, encode_corpus
    from splade_es.corpus import (
        EncodedWriter,
        EncodingProfile,
        ReadStats,
        read_documents,
        write_dead_letters,
    )
    from splade_es.models import model_identity
    from splade_es.term_stats import DocumentFrequencies

    batch_size = values.pop("encode_batch_size")
    pruning_values = pick(values, PRUNING)
    quantization = pruning_values.pop("quantization") or None
    pruning = DocumentPruning(**pruning_values)
    if output_path.suffix not in (".jsonl", ".json", ".parquet"):
        fail(f"--output {output_path}: must end in .jsonl or .parquet")
    try:
        encoder = load_encoder(values)
        stats = ReadStats()
        docs = read_documents(input_path, stats)
        if limit is not None:
            docs = islice(docs, limit)
        with EncodedWriter(output_path) as writer:
            written = encode_corpus(
                encoder, docs, writer, pruning, quantization, batch_size, keep_text=not no_text
            )
    except (ValueError, OSError, RuntimeError) as exc:
        fail(str(exc))
    EncodingProfile(
        model_identity(values["model"]),
        quantization,
        pruning.as_dict(),
        encoder.settings.doc_max_length,
    ).write(output_path)
    writer.frequencies().save(DocumentFrequencies.path_for(output_path))
    rejects_path = rejects or output_path.with_name(output_path.name + ".rejects.jsonl")
    if stats.rejected:
        write_dead_letters(rejects_path, stats.rejected)
        for reject in stats.rejected[:10]:
            click.echo(f"rejected {reject.source}:{reject.line}: {reject.reason}", err=True)
    click.echo(
        f"read {stats.read} records: encoded {written}, rejected {len(stats.rejected)}"
        + (f" (see {rejects_path})" if stats.rejected else ""),
        err=True,
    )


@main.command()
@click.argument("text")
@click_options(QUERY_SIDE)
@click.option("--engine", type=click.Choice(ENGINES), default="opensearch", show_default=True)
@click.option("--form", type=click.Choice(FORMS), default="rank_feature", show_default=True)
@click.option("--field", default="splade", show_default=True)
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
@click.option(
    "--quantization",
    type=WEIGHT,
    default=100.0,
    show_default=True,
    help="The factor the documents were quantized with (0: float weights).",
)
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
    quantization: float,
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
            quantization=quantization or None,
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


@main.command()
@click.option("--engine", type=click.Choice(ENGINES), default="opensearch", show_default=True)
@click.option(
    "--version",
    "engine_version",
    default=None,
    help="Engine version (default: 2.19 for OpenSearch, 9.0 for Elasticsearch).",
)
@click.option("--field", default="splade", show_default=True)
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
    version = engine_version or ("2.19.0" if engine == "opensearch" else "9.0.0")
    try:
        click.echo(json.dumps(index_body(engine, version, field, field_type, analyzer), indent=2))  # type: ignore[arg-type]
    except ValueError as exc:
        fail(str(exc))


# Engine, indexing, search, evaluation ------------------------------------------------------------


def open_cluster_from(values: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(client, engine info, settings) from CONNECTION values (popped), or a one-line error."""
    from splade_es.client import EngineError, open_cluster

    try:
        settings = connection_settings(pick(values, CONNECTION))
        client, info = open_cluster(settings)
    except (EngineError, ValueError) as exc:
        fail(str(exc))
    return client, info, settings


main.add_command(engine)


@main.command("index-vectors")
@click_options(CONNECTION, BULK)
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="What `encode` wrote (.jsonl or .parquet).",
)
@click.option("--index", required=True, help="One concrete index (no patterns).")
@click.option("--field", default="splade", show_default=True)
@click.option("--field-type", type=click.Choice(["rank_features", "sparse_vector"]), default=None)
@click.option(
    "--dead-letter",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rejected records with reasons (default: <input>.<index>.dead-letter.jsonl).",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="After an interrupted run on the same index and input, skip what is verified indexed.",
)
@click.option(
    "--shards", type=POSITIVE, default=1, show_default=True, help="Primary shards of a new index."
)
@click.option(
    "--replicas",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Replicas of each shard of a new index (needs that many more nodes).",
)
def index_vectors(
    input_path: Path,
    index: str,
    field: str,
    field_type: str | None,
    dead_letter: Path | None,
    resume: bool,
    shards: int,
    replicas: int,
    **values: Any,
) -> None:
    """Bulk-index encoded records (plus their text for BM25) into INDEX."""
    from splade_es.client import EngineError
    from splade_es.corpus import EncodingProfile
    from splade_es.indexing import FileIndexer
    from splade_es.indices import ShardLayout, SpladeField, ensure_index

    options = bulk_options(pick(values, BULK))
    client, info, _ = open_cluster_from(values)
    dead_letter = dead_letter or input_path.with_name(
        f"{input_path.name}.{index}.dead-letter.jsonl"
    )
    made = EncodingProfile.read(input_path) or EncodingProfile(quantization=100.0)
    splade = SpladeField(quantization=made.quantization, model=made.model, pruning=made.pruning)
    try:
        layout = ShardLayout(shards, replicas)
        profile = ensure_index(client, info, index, field, field_type, splade, layout=layout)
        summary = FileIndexer(client, profile, field, options).run(input_path, dead_letter, resume)
    except (EngineError, ValueError, OSError) as exc:
        fail(f"{exc} (progress saved: re-run the same command to resume)")
    for note in summary.notes:
        click.echo(note, err=True)
    click.echo(summary.line() + dead_letter_note(summary, dead_letter), err=True)
    if not summary.adds_up():
        raise SystemExit(1)


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
        click.option("--field", default="splade", show_default=True),
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


@main.command()
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
        for rank, hit in enumerate(searcher.search(text, mode, size), start=1):
            click.echo(f"{rank:>3}  {hit.score:9.4f}  {hit.id:<14} {hit.title[:80]}")
    except (EngineError, ValueError, OSError, RuntimeError) as exc:
        fail(str(exc))


@main.command("eval")
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


import splade_es.serve.cli  # noqa: E402,F401  (registers `serve` and `engine connect-model`)

main.add_command(runner)


def _load_plugin_commands() -> None:
    """Commands from other packages (e.g. `training`) via the `splade_es.commands` entry point."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="splade_es.commands"):
        try:
            command = entry.load()
        except ImportError as exc:  # an optional package whose deps are missing
            click.echo(f"splade-es: command {entry.name!r} unavailable: {exc}", err=True)
            continue
        main.add_command(command, entry.name)


def run() -> None:
    """Console-script entry point."""
    _load_plugin_commands()
    main(prog_name="splade-es")


if __name__ == "__main__":
    run()
