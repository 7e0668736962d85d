"""`splade-es serve` (the encoder service) and `splade-es engine connect-model` (ml-commons).

Imported at the end of `splade_es.cli`, which it extends; Starlette, uvicorn and torch are
imported only when a command runs, so the CLI starts fast without the `[serve]` extra.
"""

from __future__ import annotations

from typing import Any

import click

from splade_es.cli import engine, fail, main, open_cluster_from
from splade_es.options import CONNECTION, ENCODER, POSITIVE, WEIGHT, click_options, load_encoder
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR


@main.command()
@click_options(ENCODER)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--max-batch",
    type=POSITIVE,
    default=32,
    show_default=True,
    help="Most texts merged into one model call.",
)
@click.option(
    "--max-queue",
    type=POSITIVE,
    default=64,
    show_default=True,
    help="Requests that may wait; more get 503.",
)
@click.option(
    "--max-wait-ms",
    type=WEIGHT,
    default=2.0,
    show_default=True,
    help="How long a batch waits for more requests to merge.",
)
@click.option(
    "--max-texts",
    type=POSITIVE,
    default=256,
    show_default=True,
    help="Most texts in one request (more: 413).",
)
@click.option(
    "--max-body-bytes",
    type=POSITIVE,
    default=1 << 20,
    show_default=True,
    help="Largest request body (more: 413).",
)
@click.option(
    "--quantization",
    type=WEIGHT,
    default=DEFAULT_QUANTIZATION_FACTOR,
    show_default=True,
    help="Must match the index: documents get round(w*factor), queries w/factor; 0 = floats.",
)
def serve(
    host: str,
    port: int,
    max_batch: int,
    max_queue: int,
    max_wait_ms: float,
    max_texts: int,
    max_body_bytes: int,
    quantization: float,
    **model_opts: Any,
) -> None:
    """Serve the encoder over HTTP (POST /encode/documents, /encode/queries; GET /health, /ready)."""
    try:
        import uvicorn

        from splade_es.serve.app import EncoderService, ServiceLimits, create_app
    except ImportError as exc:
        fail(f"`serve` needs the [serve] extra (pip install 'splade-es[serve]'): {exc}")
    try:
        limits = ServiceLimits(max_body_bytes, max_texts, max_batch, max_queue, max_wait_ms / 1000)
    except ValueError as exc:
        fail(str(exc))
    service = EncoderService(
        lambda: load_encoder(model_opts),
        limits,
        quantization or None,
        description=model_opts["model"]
        + (f" + {model_opts['query_model']}" if model_opts["query_model"] else ""),
    )
    uvicorn.run(create_app(service), host=host, port=port, log_level="info", access_log=False)


@engine.command("connect-model")
@click_options(CONNECTION)
@click.option(
    "--service-url",
    required=True,
    help="Where `splade-es serve` listens, as the cluster reaches it (http://host:port).",
)
@click.option("--index", required=True, help="Index whose default pipeline becomes the encoder.")
@click.option("--field", default="splade", show_default=True, help="SPLADE field to fill.")
@click.option(
    "--source-field", default="text", show_default=True, help="Document field that is encoded."
)
@click.option("--name", default="splade-es", show_default=True, help="Prefix of created objects.")
@click.option(
    "--batch-size",
    type=POSITIVE,
    default=16,
    show_default=True,
    help="Documents per encoder request from the ingest processor.",
)
@click.option(
    "--failure-index",
    default=None,
    help="Send documents that fail to encode here (pipeline on_failure; needs ingest-common).",
)
@click.option(
    "--keep-node-settings",
    is_flag=True,
    help="Do not set only_run_on_ml_node=false and the ML memory thresholds to 100.",
)
def connect_model(
    service_url: str,
    index: str,
    field: str,
    source_field: str,
    name: str,
    batch_size: int,
    failure_index: str | None,
    keep_node_settings: bool,
    **opts: Any,
) -> None:
    """Register the encoder service in ml-commons; make it INDEX's ingest pipeline.

    Prints the document and query model ids; search with
    `{"neural_sparse": {FIELD: {"query_text": ..., "model_id": <query model>}}}`.
    """
    from splade_es.client import EngineError
    from splade_es.mlcommons import RemoteModelSetup, connect_encoder_service

    try:
        setup = RemoteModelSetup(
            service_url,
            index,
            field,
            source_field,
            name,
            batch_size,
            failure_index,
            relax_node_settings=not keep_node_settings,
        )
    except ValueError as exc:
        fail(str(exc))
    client, info, _ = open_cluster_from(opts)
    try:
        connected = connect_encoder_service(client, info, setup)
    except (EngineError, ValueError) as exc:
        fail(str(exc))
    click.echo(f"document model: {connected.document_model_id}")
    click.echo(f"query model:    {connected.query_model_id}")
    click.echo(f"pipeline:       {connected.pipeline_id} (default pipeline of {index!r})")
