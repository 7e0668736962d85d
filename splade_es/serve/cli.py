"""`splade-es serve`: the encoder service.

Starlette, uvicorn and torch are imported only when the command runs, so `splade-es --help`
works without the `[serve]` extra.
"""

from __future__ import annotations

from typing import Any

import click

from splade_es.options import (
    ENCODER,
    POSITIVE,
    QUANTIZATION,
    WEIGHT,
    click_options,
    fail,
    load_encoder,
)


@click.command()
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
@click_options((QUANTIZATION,))
def serve(
    host: str,
    port: int,
    max_batch: int,
    max_queue: int,
    max_wait_ms: float,
    max_texts: int,
    max_body_bytes: int,
    quantization: float | None,
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
    from splade_es.batch_encode import encoder_profile

    service = EncoderService(
        lambda: load_encoder(model_opts),
        limits,
        quantization,
        describe=lambda encoder: encoder_profile(encoder, model_opts["model"], quantization),
    )
    uvicorn.run(create_app(service), host=host, port=port, log_level="info", access_log=False)
