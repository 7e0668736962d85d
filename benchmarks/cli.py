"""`splade-es bench NAME [ARGS]`: run one of the benchmark scripts (each writes its report under
`benchmarks/results/`); ARGS go to the script unchanged (`splade-es bench NAME --help`)."""

from __future__ import annotations

import importlib
import sys

import click

BENCHMARKS = {
    "latency-scale": "latency_scale",
    "synthetic": "synthetic",
    "encoder-speed": "encoder_speed",
    "latency": "latency",
    "encode-throughput": "encode_throughput",
    "bulk-throughput": "bulk_throughput",
    "index-size": "index_size",
    "runners": "runners",
    "serve": "serve",
    "training-sweep": "training_sweep",
    "gpu": "gpu",
}


@click.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("name", type=click.Choice(sorted(BENCHMARKS)), required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(name: str | None, args: tuple[str, ...]) -> None:
    """Run benchmark NAME with ARGS (NAME --help lists its options)."""
    if name is None:
        click.echo("usage: splade-es bench NAME [ARGS]   (NAME --help for its options)")
        click.echo("benchmarks: " + ", ".join(sorted(BENCHMARKS)))
        return
    from splade_es.client import EngineError

    module = importlib.import_module(f"splade_es.benchmarks.{BENCHMARKS[name]}")
    sys.argv = [f"splade-es bench {name}", *args]
    try:
        module.main()
    except (EngineError, OSError, ValueError, RuntimeError) as exc:
        raise click.ClickException(f"bench {name}: {exc}") from exc
