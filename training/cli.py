"""`splade-es train`: fine-tune a SPLADE model on a BEIR dataset.

Options override keys of `--config FILE` (JSON, or YAML when PyYAML is installed), which override the
defaults of `training.loop.TrainConfig`. Registered as `splade_es.commands: train = training.cli:train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

# click option name -> TrainConfig field (only options given on the command line override the config)
_FLOAT = float
_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "--beir-dir",
        {
            "type": click.Path(file_okay=False, path_type=Path),
            "help": "BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.",
        },
    ),
    (
        "--base-model",
        {"help": "Starting model: alias (splade-tiny), folder or hub name. [splade-tiny]"},
    ),
    ("--query-base-model", {"help": "Separate starting query encoder (shape pair)."}),
    (
        "--out",
        {
            "type": click.Path(file_okay=False, path_type=Path),
            "help": "Output folder; the best model is saved here, loadable by SpladeEncoder.load.",
        },
    ),
    ("--shape", {"type": click.Choice(["shared", "pair", "inference-free"]), "help": "[shared]"}),
    ("--train-split", {"help": "qrels/<split>.tsv used for training. [train]"}),
    ("--max-steps", {"type": int, "help": "Optimizer steps. [1000]"}),
    ("--batch-size", {"type": int, "help": "Queries per micro-batch (per device). [16]"}),
    ("--grad-accum", {"type": int, "help": "Gradient accumulation micro-batches. [1]"}),
    ("--lr", {"type": _FLOAT, "help": "Peak learning rate (linear warm-up and decay). [5e-5]"}),
    ("--lambda-d", {"type": _FLOAT, "help": "FLOPS weight on documents. [1e-3]"}),
    ("--lambda-q", {"type": _FLOAT, "help": "FLOPS/L1 weight on queries. [1e-3]"}),
    ("--query-reg", {"type": click.Choice(["flops", "l1"]), "help": "Query regularizer. [flops]"}),
    ("--reg-warmup-steps", {"type": int, "help": "Quadratic lambda warm-up steps. [max_steps/3]"}),
    ("--negatives", {"type": int, "help": "Hard negatives per query. [1]"}),
    (
        "--negative-source",
        {
            "type": click.Choice(["bm25", "splade", "bm25+splade", "engine", "random"]),
            "help": "Where hard negatives come from. [bm25]",
        },
    ),
    ("--engine-url", {"help": "Elasticsearch/OpenSearch URL for --negative-source engine."}),
    ("--engine-index", {"help": "Index name for --negative-source engine."}),
    (
        "--teacher-scores",
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "TSV query_id doc_id score for distillation.",
        },
    ),
    (
        "--loss",
        {
            "type": click.Choice(["auto", "infonce", "margin-mse", "kl"]),
            "help": "auto: margin-mse with teacher scores, else infonce. [auto]",
        },
    ),
    ("--doc-max-length", {"type": int, "help": "Document length of the saved model. [256]"}),
    ("--train-doc-max-length", {"type": int, "help": "Document truncation while training. [128]"}),
    ("--query-max-length", {"type": int, "help": "[64]"}),
    ("--eval-every", {"type": int, "help": "Dev evaluation every N steps (0: none). [0]"}),
    (
        "--dev-qrels",
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "Dev qrels TSV (default: a held-out slice of training queries).",
        },
    ),
    ("--save-every", {"type": int, "help": "Checkpoint every N steps. [eval-every or max-steps]"}),
    ("--seed", {"type": int, "help": "[0]"}),
    (
        "--mixed-precision",
        {
            "type": click.Choice(["auto", "no", "bf16", "fp16"]),
            "help": "auto: bf16/fp16 on CUDA, none on CPU. [auto]",
        },
    ),
]


def _field(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def _decorate(func: Any) -> Any:
    for option, kwargs in reversed(_OPTIONS):
        func = click.option(option, _field(option), default=None, **kwargs)(func)
    return func


@click.command("train")
@_decorate
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON/YAML file of training options (command-line options override it).",
)
@click.option("--resume", is_flag=True, default=None, help="Continue from OUT/checkpoint.")
@click.option("--cpu", is_flag=True, default=None, help="Train on CPU even when a GPU is present.")
@click.option("--no-progress", is_flag=True, default=False, help="No progress bar.")
def train(config_file: Path | None, no_progress: bool, **options: Any) -> None:
    """Fine-tune a SPLADE model on BEIR training data; writes a folder `SpladeEncoder.load` reads."""
    from training.data import DataError
    from training.loop import TrainConfig, load_config_file
    from training.loop import train as run_training

    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    values.update(
        {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if v is not None}
    )
    if no_progress:
        values["progress"] = False
    try:
        config = TrainConfig.from_dict(values)
        config.validate()
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        result = run_training(config)
    except DataError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = (
        f"trained {result.step} steps in {result.wall_seconds / 60:.1f} min; model: {result.out}"
    )
    if result.best_metrics:
        summary += (
            f" (best dev nDCG@10 {result.best_metrics['ndcg@10']:.4f} at step {result.best_step})"
        )
    click.echo(summary)


if __name__ == "__main__":
    train()
