"""`splade-es` command line: encode corpora, rewrite queries, print mappings."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from splade_es.mappings import ENGINES, Engine, index_body
from splade_es.query import FORMS, Form, Hybrid, QueryPruning, QueryRewriter
from splade_es.runners.cli import runner
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

F = TypeVar("F", bound=Callable[..., Any])


def apply_all(decorators: Sequence[Callable[[Any], Any]], func: F) -> F:
    """Apply click option decorators so they appear in the listed order."""
    decorated: Any = func
    for decorator in reversed(decorators):
        decorated = decorator(decorated)
    return cast(F, decorated)


def model_options(func: F) -> F:
    """Options that choose and run a SPLADE model; shared by every command that encodes."""
    decorators = [
        click.option(
            "--model",
            default="splade-tiny",
            show_default=True,
            help="Alias, local folder or Hugging Face name.",
        ),
        click.option(
            "--query-model", default=None, help="Separate query encoder (doc/query pair models)."
        ),
        click.option("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best)."),
        click.option(
            "--dtype",
            type=click.Choice(["float32", "float16", "bfloat16"]),
            default="float32",
            show_default=True,
        ),
        click.option(
            "--doc-max-length",
            type=int,
            default=None,
            help="Document truncation (default: model settings or 256).",
        ),
        click.option(
            "--query-max-length",
            type=int,
            default=None,
            help="Query truncation (default: model settings or 64).",
        ),
    ]
    return apply_all(decorators, func)


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
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="BEIR corpus JSONL (_id, title, text).",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="out.jsonl or out.parquet",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where bad input lines go (default: <output>.rejects.jsonl).",
)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--top-k", type=int, default=None, help="Keep the k heaviest terms per document.")
@click.option("--max-ratio", type=float, default=None, help="Keep terms >= ratio * max weight.")
@click.option("--alpha-mass", type=float, default=None, help="Keep terms holding this weight mass.")
@click.option("--threshold", type=float, default=None, help="Keep terms with weight >= threshold.")
@click.option(
    "--quantization",
    type=float,
    default=DEFAULT_QUANTIZATION_FACTOR,
    show_default=True,
    help="Integer weights = round(weight * factor); 0 writes floats.",
)
@click.option("--no-text", is_flag=True, help="Do not carry title/text into the output.")
@click.option("--limit", type=int, default=None, help="Encode only the first N good documents.")
def encode(
    input_path: Path,
    output_path: Path,
    rejects: Path | None,
    batch_size: int,
    top_k: int | None,
    max_ratio: float | None,
    alpha_mass: float | None,
    threshold: float | None,
    quantization: float,
    no_text: bool,
    limit: int | None,
    **model_opts: Any,
) -> None:
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
            written = encode_corpus(
                encoder,
                docs,
                writer,
                pruning,
                quantization or None,
                batch_size,
                keep_text=not no_text,
            )
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
@click.option(
    "--rescore-window",
    type=int,
    default=None,
    help="Two-phase: pruned query retrieves, full query re-ranks this many.",
)
@click.option("--hybrid", is_flag=True, help="Add a BM25 match on the text field.")
@click.option("--bm25-weight", type=float, default=1.0, show_default=True)
@click.option("--splade-weight", type=float, default=1.0, show_default=True)
@click.option("--text-field", default="content", show_default=True)
@click.option("--size", type=int, default=10, show_default=True)
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
    text_field: str,
    size: int,
    explain: bool,
    **model_opts: Any,
) -> None:
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
            click.echo(
                json.dumps({t: round(w, 4) for t, w in terms.weights}, indent=2, ensure_ascii=False)
            )
            return
        click.echo(json.dumps(rewriter.body(text, size=size), indent=2, ensure_ascii=False))
    except ValueError as exc:
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
def mapping(engine: Engine, engine_version: str | None, field: str, field_type: str | None) -> None:
    """Print the create-index body (settings + mappings) for an engine."""
    version = engine_version or ("2.19.0" if engine == "opensearch" else "9.0.0")
    try:
        click.echo(json.dumps(index_body(engine, version, field, field_type), indent=2))
    except ValueError as exc:
        fail(str(exc))


# Engine, indexing, search, evaluation ------------------------------------------------------------


def connection_options(func: F) -> F:
    """Where the cluster is; secrets may also come from SPLADE_ES_* environment variables."""
    decorators = [
        click.option(
            "--url",
            default=None,
            help="Cluster URL [env SPLADE_ES_URL; default http://127.0.0.1:9200].",
        ),
        click.option("--user", default=None, help="Basic-auth user [env SPLADE_ES_USER]."),
        click.option(
            "--password", default=None, help="Basic-auth password [env SPLADE_ES_PASSWORD]."
        ),
        click.option(
            "--api-key", default=None, help="API key, base64 or id:key [env SPLADE_ES_API_KEY]."
        ),
        click.option(
            "--ca-certs", default=None, help="CA bundle for TLS [env SPLADE_ES_CA_CERTS]."
        ),
    ]
    return apply_all(decorators, func)


def open_cluster_from(opts: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(client, engine info, settings) from `connection_options`, or a one-line error."""
    from splade_es.client import ConnectionSettings, EngineError, open_cluster

    settings = ConnectionSettings.from_env(
        url=opts.pop("url"),
        username=opts.pop("user"),
        password=opts.pop("password"),
        api_key=opts.pop("api_key"),
        ca_certs=opts.pop("ca_certs"),
    )
    try:
        client, info = open_cluster(settings)
    except EngineError as exc:
        fail(str(exc))
    return client, info, settings


@main.group()
def engine() -> None:
    """Run a local OpenSearch / Elasticsearch node fetched from Maven Central."""


def _spec(name: str, version: str | None, port: int | None, heap: str | None) -> Any:
    from dataclasses import replace

    from splade_es.launcher import DEFAULT_SPECS

    spec = DEFAULT_SPECS[name]
    changes: dict[str, Any] = {"version": version, "port": port, "heap": heap}
    return replace(spec, **{k: v for k, v in changes.items() if v})


def engine_spec_options(func: F) -> F:
    decorators = [
        click.option(
            "--engine", "name", type=click.Choice(ENGINES), default="opensearch", show_default=True
        ),
        click.option(
            "--version", "version", default=None, help="Engine version (default: the tested one)."
        ),
        click.option(
            "--port", type=int, default=None, help="HTTP port (default 9200 OpenSearch, 9250 ES)."
        ),
        click.option("--heap", default=None, help="JVM heap, e.g. 1g (default 512m)."),
    ]
    return apply_all(decorators, func)


@engine.command("start")
@engine_spec_options
def engine_start(name: str, version: str | None, port: int | None, heap: str | None) -> None:
    """Download (cached), start and wait for a single local node; prints its URL."""
    from splade_es.launcher import LauncherError, start

    try:
        click.echo(start(_spec(name, version, port, heap)))
    except LauncherError as exc:
        fail(str(exc))


@engine.command("stop")
@engine_spec_options
def engine_stop(name: str, version: str | None, port: int | None, heap: str | None) -> None:
    """Stop a node started by `engine start`."""
    from splade_es.launcher import stop

    click.echo("stopped" if stop(_spec(name, version, port, heap)) else "not running")


@engine.command("status")
@engine_spec_options
def engine_status(name: str, version: str | None, port: int | None, heap: str | None) -> None:
    """Whether the node runs, its URL, version and pid (JSON)."""
    from splade_es.launcher import status

    click.echo(json.dumps(status(_spec(name, version, port, heap))))


@main.command("index-vectors")
@connection_options
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="What `encode` wrote (.jsonl or .parquet).",
)
@click.option("--index", required=True)
@click.option("--field", default="splade", show_default=True)
@click.option("--field-type", type=click.Choice(["rank_features", "sparse_vector"]), default=None)
@click.option(
    "--dead-letter",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rejected records with reasons (default: <input>.<index>.dead-letter.jsonl).",
)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--concurrency", type=int, default=2, show_default=True)
@click.option("--max-retries", type=int, default=6, show_default=True)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip records a previous interrupted run already indexed.",
)
def index_vectors(
    input_path: Path,
    index: str,
    field: str,
    field_type: str | None,
    dead_letter: Path | None,
    batch_size: int,
    concurrency: int,
    max_retries: int,
    resume: bool,
    **conn: Any,
) -> None:
    """Bulk-index encoded records (plus their text for BM25) into INDEX."""
    from splade_es.client import EngineError
    from splade_es.corpus import read_encoded
    from splade_es.indexing import BulkIndexer, BulkOptions, ensure_index

    client, info, _ = open_cluster_from(conn)
    dead_letter = dead_letter or input_path.with_name(
        f"{input_path.name}.{index}.dead-letter.jsonl"
    )
    progress = input_path.with_name(f"{input_path.name}.{index}.progress.json")
    if not resume:
        progress.unlink(missing_ok=True)
    try:
        ensure_index(client, info, index, field, field_type)
        options = BulkOptions(
            batch_size=batch_size, concurrency=concurrency, max_retries=max_retries
        )
        summary = BulkIndexer(client, index, field, options).run(
            read_encoded(input_path), dead_letter, progress_file=progress
        )
    except EngineError as exc:
        fail(f"{exc} (progress saved; re-run the same command to resume)")
    progress.unlink(missing_ok=True)
    click.echo(
        summary.line() + (f"; dead letters in {dead_letter}" if summary.dead_lettered else ""),
        err=True,
    )


def searcher_for(
    client: Any,
    info: Any,
    index: str,
    field: str,
    encoder: Any,
    top_k: int | None = None,
    bm25_weight: float = 1.0,
    splade_weight: float = 1.0,
) -> Any:
    """A Searcher whose query form follows the index's actual SPLADE field type."""
    from splade_es.client import EngineError
    from splade_es.mappings import sparse_field_type
    from splade_es.query import Hybrid, QueryPruning
    from splade_es.search import Searcher

    try:
        mapping = next(iter(client.indices.get_mapping(index=index).values()))["mappings"]
    except Exception as exc:
        raise EngineError(f"cannot read the mapping of index {index!r}: {exc}") from exc
    field_type = sparse_field_type(mapping, field)
    if field_type is None:
        raise EngineError(f"index {index!r} has no SPLADE field {field!r}")
    return Searcher(
        client,
        info,
        index,
        encoder,
        field,
        field_type,
        QueryPruning(top_k),
        Hybrid(bm25_weight, splade_weight),
    )


@main.command()
@click.argument("text")
@connection_options
@model_options
@click.option("--index", required=True)
@click.option("--field", default="splade", show_default=True)
@click.option(
    "--mode", type=click.Choice(["bm25", "splade", "hybrid"]), default="splade", show_default=True
)
@click.option("--size", type=int, default=10, show_default=True)
@click.option("--top-k", type=int, default=None, help="Query pruning: keep the k heaviest terms.")
@click.option("--bm25-weight", type=float, default=1.0, show_default=True)
@click.option("--splade-weight", type=float, default=1.0, show_default=True)
def search(
    text: str,
    index: str,
    field: str,
    mode: str,
    size: int,
    top_k: int | None,
    bm25_weight: float,
    splade_weight: float,
    **opts: Any,
) -> None:
    """Search INDEX for TEXT and print the hits."""
    from splade_es.client import EngineError

    client, info, _ = open_cluster_from(opts)
    try:
        encoder = load_encoder(opts) if mode != "bm25" else None
        searcher = searcher_for(
            client, info, index, field, encoder, top_k, bm25_weight, splade_weight
        )
        for rank, hit in enumerate(searcher.search(text, mode, size), start=1):
            click.echo(f"{rank:>3}  {hit.score:9.4f}  {hit.id:<14} {hit.title[:80]}")
    except EngineError as exc:
        fail(str(exc))


@main.command("eval")
@connection_options
@model_options
@click.option("--index", required=True)
@click.option(
    "--beir-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option("--split", default="test", show_default=True)
@click.option("--field", default="splade", show_default=True)
@click.option("--modes", default="bm25,splade,hybrid", show_default=True)
@click.option("--top-k", type=int, default=None, help="Query pruning: keep the k heaviest terms.")
@click.option("--bm25-weight", type=float, default=1.0, show_default=True)
@click.option("--splade-weight", type=float, default=1.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print {mode: {metric: value}} as JSON.")
def evaluate_command(
    index: str,
    beir_dir: Path,
    split: str,
    field: str,
    modes: str,
    top_k: int | None,
    bm25_weight: float,
    splade_weight: float,
    as_json: bool,
    **opts: Any,
) -> None:
    """Run a BEIR split's queries through the engine; print nDCG@10, MRR@10, Recall@100."""
    from splade_es.client import EngineError
    from splade_es.corpus import read_qrels, read_queries
    from splade_es.evaluation import evaluate

    client, info, _ = open_cluster_from(opts)
    qrels = read_qrels(beir_dir / "qrels" / f"{split}.tsv")
    queries = {q: t for q, t in read_queries(beir_dir / "queries.jsonl").items() if q in qrels}
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    results: dict[str, dict[str, float]] = {}
    try:
        encoder = load_encoder(opts) if set(wanted) - {"bm25"} else None
        searcher = searcher_for(
            client, info, index, field, encoder, top_k, bm25_weight, splade_weight
        )
        qids = list(queries)
        for mode in wanted:
            hits = searcher.search_many([queries[q] for q in qids], mode, size=100)
            run = {q: {h.id: h.score for h in hs} for q, hs in zip(qids, hits, strict=True)}
            results[mode] = evaluate(run, qrels)
    except EngineError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(
        f"{'mode':<8} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8}   ({len(queries)} queries, {split})"
    )
    for mode, m in results.items():
        click.echo(f"{mode:<8} {m['ndcg@10']:>8.4f} {m['mrr@10']:>8.4f} {m['recall@100']:>8.4f}")


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
