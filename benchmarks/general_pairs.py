"""General-domain training pairs from the Wikipedia passages, for `splade-es train --mix`.

A fine-tuned model forgets what it knew outside its domain; training on general text beside the
user's pairs, taught by the base model (the recipe's ensemble teacher), is the classic remedy
(learning without forgetting). No query generator is at hand here, so the queries are weak ones:
an article's title as the query and its first 100-word passage (the lead) as the positive, one
pair per article, `--pairs` articles drawn with a seed. Negatives and teacher scores come from the
trainer, mined among these leads.

    python -m splade_es.benchmarks.general_pairs --out runs/wikipedia-title-lead.jsonl

Only Wikipedia is read: none of the judged collections, so no test query is trained on.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path

import click

from .distractors import WIKIPEDIA

MIN_WORDS = 40  # a lead shorter than this is a stub or a redirect-like page, not a description


def leads(source: Path) -> Iterator[tuple[str, str]]:
    """(title, first passage) of every article whose lead has at least MIN_WORDS words."""
    with gzip.open(source, "rt", encoding="utf-8") as lines:
        for line in lines:
            passage = json.loads(line)
            title, text = passage.get("title", "").strip(), passage.get("text", "").strip()
            if passage.get("_id", "").endswith("-0") and title and len(text.split()) >= MIN_WORDS:
                yield title, text


def title_lead_pairs(source: Path, n: int, seed: int = 0) -> list[dict[str, str]]:
    """`n` articles drawn with `seed` (all of them if fewer), in corpus order."""
    every = list(leads(source))
    picked = sorted(random.Random(seed).sample(range(len(every)), min(n, len(every))))
    return [{"query": every[i][0], "positive": every[i][1]} for i in picked]


@click.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--pairs", type=click.IntRange(min=1), default=6000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=WIKIPEDIA,
    show_default=True,
    help="Passages as gzip JSONL with _id '{page}-{k}', title, text.",
)
def main(out: Path, pairs: int, seed: int, source: Path) -> None:
    """Write `--pairs` {query: title, positive: lead passage} records as a JSONL pairs file."""
    records = title_lead_pairs(source, pairs, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    click.echo(f"{len(records)} title -> lead pairs from {source.name}: {out}")


if __name__ == "__main__":
    main()
