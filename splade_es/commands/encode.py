"""`splade-es encode`: a corpus file to encoded records, with the profile and DF sidecars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from splade_es.options import (
    BATCHING,
    ENCODER,
    POSITIVE,
    PRUNING,
    click_options,
    fail,
    input_option,
    load_encoder,
    pick,
)


@click.command()
@click_options(ENCODER, BATCHING, PRUNING)
@input_option("BEIR corpus: JSONL (_id, title, text) or Parquet with those columns.")
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="out.jsonl or out.parquet (replaced only when the run succeeds).",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where bad input lines go (default: <output>.rejects.jsonl).",
)
@click.option("--no-text", is_flag=True, help="Do not carry title/text into the output.")
@click.option(
    "--limit", type=POSITIVE, default=None, help="Encode only the first N good documents."
)
def encode(
    input_path: Path,
    output_path: Path,
    rejects: Path | None,
    no_text: bool,
    limit: int | None,
    **values: Any,
) -> None:
    """Encode a corpus into SPLADE feature records (JSONL or Parquet)."""
    from splade_es.batch_encode import DocumentPruning, encode_file
    from splade_es.corpus import write_dead_letters

    batch_size = values.pop("encode_batch_size")
    pruning_values = pick(values, PRUNING)
    quantization = pruning_values.pop("quantization")
    pruning = DocumentPruning(**pruning_values)
    if output_path.suffix not in (".jsonl", ".json", ".parquet"):
        fail(f"--output {output_path}: must end in .jsonl or .parquet")
    try:
        encoder = load_encoder(values)
        written, stats = encode_file(
            encoder,
            values["model"],
            input_path,
            output_path,
            pruning,
            quantization,
            batch_size,
            keep_text=not no_text,
            limit=limit,
        )
    except (ValueError, OSError, RuntimeError) as exc:
        fail(str(exc))
    rejects_path = rejects or output_path.with_name(output_path.name + ".rejects.jsonl")
    if stats.rejected:
        write_dead_letters(rejects_path, stats.rejected)
        for reject in stats.rejected[:10]:
            click.echo(f"rejected {reject.source}:{reject.line}: {reject.reason}", err=True)
    click.echo(
        f"read {stats.read} records: encoded {written}, rejected {len(stats.rejected)}"
        + (f" (see {rejects_path})" if stats.rejected else ""),
        err=True,
    )
