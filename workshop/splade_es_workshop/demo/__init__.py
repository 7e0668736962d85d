"""The main job on embedded defaults: start a local OpenSearch, encode and index the bundled sample
corpus with `splade-tiny`, then compare BM25, SPLADE and hybrid results for the sample queries.

    python -m splade_es_workshop.demo            (what `make demo` runs)
"""

from __future__ import annotations

import json
import sys
import tempfile
from importlib import resources
from pathlib import Path

import click

from splade_es.batch_encode import encode_corpus
from splade_es.client import ConnectionSettings, open_cluster
from splade_es.corpus import (
    EncodedWriter,
    ReadStats,
    read_documents,
    read_qrels,
    read_queries,
)
from splade_es.encoder import SpladeEncoder
from splade_es.evaluation import evaluate
from splade_es.indexing import FileIndexer
from splade_es.indices import SpladeField, ensure_index
from splade_es.models import DEFAULT_MODEL, model_identity
from splade_es.query import QueryRewriter
from splade_es.search import MODES, Searcher
from splade_es_workshop.engines import DEFAULT_SPECS, start

INDEX = "splade-es-demo"


def sample_path(name: str) -> Path:
    """A file of the bundled sample corpus (30 short health abstracts written for this project)."""
    return Path(str(resources.files("splade_es") / "data" / name))


@click.command()
@click.option(
    "--engine", type=click.Choice(sorted(DEFAULT_SPECS)), default="opensearch", show_default=True
)
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
def demo(engine: str, model: str) -> None:
    """Run the whole pipeline on the bundled sample data and print a comparison."""
    click.echo(f"1. starting a local {engine} node (fetched with Maven on first use)...")
    url = start(DEFAULT_SPECS[engine])
    client, info = open_cluster(ConnectionSettings(url=url))
    click.echo(f"   {info.engine} {info.version} at {url}")

    click.echo(f"2. encoding the sample corpus with {model}...")
    encoder = SpladeEncoder.load(model)
    stats = ReadStats()
    with tempfile.TemporaryDirectory() as tmp:
        encoded = Path(tmp) / "sample.jsonl"
        with EncodedWriter(encoded) as writer:
            encode_corpus(
                encoder,
                read_documents(sample_path("sample_corpus.jsonl"), stats),
                writer,
                progress=False,
            )
        click.echo(f"   {stats.accepted} documents encoded, {len(stats.rejected)} rejected")

        click.echo(f"3. indexing into {INDEX!r}...")
        client.indices.delete(index=INDEX, ignore_unavailable=True)
        profile = ensure_index(client, info, INDEX, splade=SpladeField(model=model_identity(model)))
        summary = FileIndexer(client, profile, show_progress=False).run(
            encoded, Path(tmp) / "dead.jsonl", resume=False
        )
        click.echo(f"   {summary.line()} (BM25 analyzer: {profile.analyzer})")

    queries = read_queries(sample_path("sample_queries.jsonl"))
    qrels = read_qrels(sample_path("sample_qrels.tsv"))
    searcher = Searcher.for_index(client, info, INDEX, encoder, model=model)
    field_type = searcher.field_type
    first = next(iter(queries.values()))
    click.echo(f"\n4. the query {first!r} rewritten for {info.engine} ({field_type}):")
    terms = QueryRewriter(encoder).weighted_terms(first)
    click.echo("   weighted terms: " + ", ".join(f"{t}={w:.2f}" for t, w in terms.weights[:12]))
    click.echo("   body: " + json.dumps(searcher.body(first, "splade", size=3))[:400] + " ...")

    click.echo("\n5. top 3 per mode (* = relevant):")
    runs: dict[str, dict[str, dict[str, float]]] = {m: {} for m in MODES}
    for qid, text in queries.items():
        click.echo(f"\n   {text!r}")
        for mode in MODES:
            hits = searcher.search(text, mode, size=10)
            runs[mode][qid] = {h.id: h.score for h in hits}
            shown = "  ".join(
                f"{'*' if h.id in qrels.get(qid, {}) else ' '}{h.id} {h.title[:28]}"
                for h in hits[:3]
            )
            click.echo(f"     {mode:<6} {shown}")
    click.echo(
        "\n6. nDCG@10 on the sample queries: "
        + ", ".join(f"{mode} {evaluate(runs[mode], qrels)['ndcg@10']:.3f}" for mode in MODES)
    )
    command = Path(sys.executable).parent / "splade-es"
    click.echo(
        f"\nThe node keeps running at {url}; stop it with: make stop"
        f" (or {command} engine stop --engine {engine})"
    )
