"""`splade-es connect-model`: an encoder service becomes an OpenSearch cluster's ingest and query
model (ml-commons remote connector + ingest pipeline) — a production cluster operation, so it
lives with the core commands, not with the local dev nodes of `engine`."""

from __future__ import annotations

from typing import Any

import click

from splade_es.options import (
    CONNECTION,
    POSITIVE,
    click_options,
    fail,
    field_option,
    open_cluster_from,
)


@click.command("connect-model")
@click_options(CONNECTION)
@click.option(
    "--service-url",
    required=True,
    help="Where `splade-es serve` listens, as the cluster reaches it (http://host:port).",
)
@click.option("--index", required=True, help="Index whose default pipeline becomes the encoder.")
@field_option("SPLADE field to fill.")
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
