"""`splade-es engine start|stop|status`: a local node for development and tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import click

from splade_es.mappings import ENGINES

F = TypeVar("F", bound=Callable[..., Any])


def parse_plugins(value: str | None) -> frozenset[str] | None:
    """``--plugins``: comma-separated features (``neural``, ``ml``), ``none`` for a bare node,
    or None to keep the default spec's."""
    from .spec import FEATURES

    if value is None:
        return None
    names = [p.strip() for p in value.split(",") if p.strip()]
    if names == ["none"]:
        return frozenset()
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise click.BadParameter(
            f"{unknown[0] if unknown else value!r}: use {', '.join(FEATURES)} (comma-separated) "
            "or none",
            param_hint="--plugins",
        )
    return frozenset(names)


def _spec(opts: dict[str, Any]) -> Any:
    from . import DEFAULT_SPECS

    spec = DEFAULT_SPECS[opts["name"]]
    changes = {k: opts[k] for k in ("version", "port", "heap") if opts[k]}
    plugins = parse_plugins(opts["plugins"])
    if plugins is not None:
        changes["plugins"] = plugins
    return replace(spec, **changes)


def spec_options(func: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--engine",
                "name",
                type=click.Choice(ENGINES),
                default="opensearch",
                show_default=True,
            ),
            click.option(
                "--version", default=None, help="Engine version (default: the tested one)."
            ),
            click.option(
                "--port",
                type=int,
                default=None,
                help="HTTP port (default 9200 OpenSearch, 9250 ES).",
            ),
            click.option(
                "--heap", default=None, help="JVM heap per node, e.g. 1g (default 512m; ml: 1g)."
            ),
            click.option(
                "--nodes",
                type=click.IntRange(1, 9),
                default=1,
                show_default=True,
                help="Nodes of one cluster on ports PORT..PORT+N-1 (transport +100).",
            ),
            click.option(
                "--plugins",
                default=None,
                help="OpenSearch plugin features, comma-separated: neural (k-NN + neural-search, "
                "the default), ml (ml-commons + job-scheduler, implies neural) or none.",
            ),
        ]
    ):
        func = decorator(func)
    return func


@click.group()
def engine() -> None:
    """Run a local OpenSearch / Elasticsearch node fetched with Maven (cached, SHA-1 verified)."""


@engine.command("start")
@spec_options
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds to wait for health (default: SPLADE_ES_START_WAIT or 180).",
)
def engine_start(wait_s: float | None, nodes: int, **opts: Any) -> None:
    """Download (cached), start and wait for a local node or cluster; prints its URL(s),
    comma-separated (what --url and SPLADE_ES_URL take)."""
    from . import LauncherError, start_cluster

    try:
        click.echo(start_cluster(_spec(opts), nodes, wait_s=wait_s))
    except LauncherError as exc:
        raise click.ClickException(str(exc)) from None


@engine.command("stop")
@spec_options
def engine_stop(nodes: int, **opts: Any) -> None:
    """Stop a node or cluster started by `engine start` (also nodes stopped with SIGSTOP)."""
    from . import LauncherError, stop_cluster

    try:
        click.echo("stopped" if stop_cluster(_spec(opts), nodes) else "not running")
    except LauncherError as exc:
        raise click.ClickException(str(exc)) from None


@engine.command("status")
@spec_options
def engine_status(nodes: int, **opts: Any) -> None:
    """Whether the node runs: URL, version, pid, process state and plugins (JSON); for a
    cluster, each node's and how many nodes have joined."""
    from . import LauncherError, cluster_status

    try:
        click.echo(json.dumps(cluster_status(_spec(opts), nodes)))
    except LauncherError as exc:
        raise click.ClickException(str(exc)) from None
