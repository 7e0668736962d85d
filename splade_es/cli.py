"""`splade-es`: the command line, and the one place where its commands are registered.

Every command is named in `COMMANDS` with the module that defines it; the module is imported
when the command runs (or when `--help` lists it), so a missing optional extra costs one line
naming the extra, and nothing here is imported for its side effects. Modules that define
commands import the library and `splade_es.options`, never this module.

Every failure a user can cause ends as one line naming the record or option (no traceback), and
no credential appears in any output, whatever form it was given in.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS: dict[str, str] = {
    # the library's own commands (`pip install splade-es`)
    "encode": "splade_es.commands.encode:encode",
    "index-vectors": "splade_es.commands.index_vectors:index_vectors",
    "rewrite": "splade_es.commands.query:rewrite",
    "mapping": "splade_es.commands.query:mapping",
    "search": "splade_es.commands.search:search",
    "eval": "splade_es.commands.search:evaluate_command",
    "connect-model": "splade_es.commands.connect_model:connect_model",
    # front ends, each with its extra
    "serve": "splade_es.serve.cli:serve",
    "index": "splade_es.pipelines.cli:index",
    "upgrade": "splade_es.pipelines.cli:upgrade",
    "train": "splade_es.training.cli:train",
    "bench": "splade_es.benchmarks.cli:bench",
    # the workshop: local engine nodes and runner clusters for trying and testing the toolkit
    "engine": "splade_es_workshop.engines.cli:engine",
    "runner": "splade_es_workshop.runners.cli:runner",
}
WORKSHOP = "pip install ./workshop (splade-es-workshop, from the splade-es repository)"
INSTALL_HINTS = {
    "serve": "pip install 'splade-es[serve]'",
    "index": "pip install 'splade-es[beam]'",
    "upgrade": "pip install 'splade-es[beam]'",
    "train": "pip install 'splade-es[train]'",
    "bench": "pip install 'splade-es[bench]'",
    "engine": WORKSHOP,
    "runner": WORKSHOP,
}
"""What brings a command's dependencies, named when importing it fails."""


class Commands(click.Group):
    """A group whose commands are the entries of `COMMANDS`, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, _, attribute = COMMANDS[cmd_name].partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        except ImportError as exc:
            return unavailable(cmd_name, exc)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        return command


def unavailable(name: str, error: ImportError) -> click.Command:
    """A stand-in for a command whose optional dependencies are not installed."""
    hint = INSTALL_HINTS.get(name, "reinstall splade-es")
    message = f"`{name}` is unavailable: {error} ({hint})"

    def refuse(**_: Any) -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=refuse,
        help=f"(unavailable: {hint})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=Commands)
@click.version_option(package_name="splade-es")
def main() -> None:
    """SPLADE learned sparse retrieval for Elasticsearch and OpenSearch."""


def run() -> None:
    """Console-script entry point."""
    main(prog_name="splade-es")


if __name__ == "__main__":
    run()
