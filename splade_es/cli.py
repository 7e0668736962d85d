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
def index_vectors(
    input_path: Path,
    index: str,
    field: str,
    field_type: str | None,
    dead_letter: Path | None,
    resume: bool,
    **values: Any,
) -> None:
    """Bulk-index encoded records (plus their text for BM25) into INDEX."""
    from splade_es.client import EngineError
    from splade_es.corpus import EncodingProfile
    from splade_es.indexing import FileIndexer
    from splade_es.indices import SpladeField, ensure_index

    options = bulk_options(pick(values, BULK))
    client, info, _ = open_cluster_from(values)
    dead_letter = dead_letter or input_path.with_name(
        f"{input_path.name}.{index}.dead-letter.jsonl"
    )
    made = EncodingProfile.read(input_path) or EncodingProfile(quantization=100.0)
    splade = SpladeField(quantization=made.quantization, model=made.model, pruning=made.pruning)
    try:
        profile = ensure_index(client, info, index, field, field_type, splade)
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
) -> Any:
    """A Searcher built from what the index recorded about itself (`SEARCH_OPTIONS` as given to
    `search` / `eval`)."""
    from splade_es.fusion import Fusion
    from splade_es.search import Searcher
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
    ]

    @functools.wraps(func)
    def checked(*args: Any, **values: Any) -> Any:
        if values.get("max_df") is not None and values.get("df_file") is None:
            raise click.UsageError("--max-df needs --df-file (the <output>.df.json `encode` wrote)")
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
    engine_only = {"index": None, "top_k": None, "max_df": None, "df_file": None, "fusion": "sum"}
    if given := [k for k, default in engine_only.items() if values.get(k) != default]:
        names = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{names}: not used by --in-process (engine searches only)")
    settings = ExactSettings(
        bm25_weight=values["bm25_weight"], splade_weight=values["splade_weight"]
    )
    encoder = load_encoder(values)
    exact = ExactRuns(encoder, cache, settings, batch_size, model_identity(values["model"]))

    def runs(collection: Any, queries: Any) -> dict[str, Any]:
        made = exact(collection, queries)
        return {m: made[m] for m in wanted}

    return runs, {**encoder_settings(values, encoder), **settings.describe()}


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
    from splade_es.beir_eval import QueryCache, engine_runs, index_collection
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
