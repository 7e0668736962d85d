"""`splade-es runner start|stop|status`: the local Flink / Spark clusters Beam pipelines run on."""

from __future__ import annotations

import json
from types import ModuleType

import click

from .maven import MavenError
from .processes import RunnerError

RUNNERS = ("flink", "spark")


def _module(name: str) -> ModuleType:
    if name == "flink":
        from splade_es_workshop.runners import flink

        return flink
    from splade_es_workshop.runners import spark

    return spark


@click.group()
def runner() -> None:
    """Local Beam runners: a Flink session cluster or a Spark standalone cluster + job server."""


@runner.command()
@click.argument("name", type=click.Choice(RUNNERS))
@click.option(
    "--workers",
    type=click.IntRange(1, 8),
    default=2,
    show_default=True,
    help="TaskManagers (Flink) or workers (Spark).",
)
def start(name: str, workers: int) -> None:
    """Build/fetch what is missing (cached), start the cluster and its Beam job server."""
    module = _module(name)
    try:
        cluster = module.start(module.settings_for(workers))
    except (RunnerError, MavenError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name} cluster up: {cluster.ui_url}")
    click.echo("run a pipeline on it with:")
    click.echo(
        "  python -m splade_es.pipelines.index_corpus "
        + " ".join(
            f"'{arg}'" if " " in arg or '"' in arg else arg for arg in cluster.pipeline_args()
        )
        + " --input ... --output ..."
    )


@runner.command()
@click.argument("name", type=click.Choice([*RUNNERS, "all"]), default="all")
def stop(name: str) -> None:
    """Stop a cluster's processes (job server, workers, master)."""
    for each in RUNNERS if name == "all" else (name,):
        stopped = _module(each).stop()
        click.echo(f"{each}: {'stopped ' + ', '.join(stopped) if stopped else 'not running'}")


@runner.command()
@click.argument("name", type=click.Choice([*RUNNERS, "all"]), default="all")
def status(name: str) -> None:
    """Processes (pid or null), UI overview and the pipeline options to use, as JSON."""
    report = {each: _module(each).status() for each in (RUNNERS if name == "all" else (name,))}
    click.echo(json.dumps(report, indent=2, default=str))
