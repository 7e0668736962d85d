"""`splade-es index-vectors`: bulk encoded records into one index, resumable, nothing lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from splade_es.options import (
    BULK,
    CONNECTION,
    LAYOUT,
    QUANTIZATION,
    bulk_options,
    click_options,
    dead_letter_note,
    fail,
    field_option,
    input_option,
    open_cluster_from,
    pick,
    shard_layout,
)


@click.command("index-vectors")
@click_options(CONNECTION, BULK, LAYOUT)
@input_option("What `encode` wrote (.jsonl or .parquet).")
@click.option("--index", required=True, help="One concrete index (no patterns).")
@field_option()
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
@click.option(
    "--quantization",
    type=QUANTIZATION.type,
    default=None,
    help="For an input without its <input>.profile.json: the factor its vectors were quantized "
    "with (0: float weights). With a profile, it must agree.",
)
def index_vectors(
    input_path: Path,
    index: str,
    field: str,
    field_type: str | None,
    dead_letter: Path | None,
    resume: bool,
    quantization: float | None,
    **values: Any,
) -> None:
    """Bulk-index encoded records (plus their text for BM25) into INDEX."""
    from click.core import ParameterSource

    from splade_es.client import EngineError
    from splade_es.indexing import default_dead_letter, index_file
    from splade_es.records import FieldProfile

    stated = click.get_current_context().get_parameter_source("quantization")
    made = FieldProfile(quantization=quantization) if stated != ParameterSource.DEFAULT else None
    options = bulk_options(pick(values, BULK))
    client, info, _ = open_cluster_from(values)
    dead_letter = dead_letter or default_dead_letter(input_path, index)
    try:
        summary = index_file(
            client,
            info,
            input_path,
            index,
            field,
            field_type,
            options,
            dead_letter,
            resume,
            made,
            layout=shard_layout(values),
        )
    except (EngineError, ValueError, OSError) as exc:
        fail(str(exc))
    for note in summary.notes:
        click.echo(note, err=True)
    click.echo(summary.line() + dead_letter_note(summary, dead_letter), err=True)
    if not summary.adds_up():
        raise SystemExit(1)
