"""`splade-es train`: fine-tune a SPLADE model on a BEIR dataset or a pairs file, on
sentence-transformers' SparseEncoderTrainer.

Options override keys of `--config FILE` (JSON, or YAML when PyYAML is installed), which override the
defaults of `training.trainer.TrainConfig`: one declaration (`_OPTIONS`) serves both. Connection
options (for `--negative-source engine`) are the CLI's own and never stored in the run's config.
Registered as `splade_es.commands: train = splade_es.training.cli:train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from splade_es.options import CONNECTION, click_options

# click option name -> TrainConfig field (only options given on the command line override the config)
_FLOAT = float
_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "--beir-dir",
        {
            "type": click.Path(path_type=Path),
            "help": "BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), or a JSONL or "
            "Parquet file of {query, positive, negatives?} pairs.",
        },
    ),
    (
        "--mix",
        {
            "type": click.Path(exists=True, path_type=Path),
            "multiple": True,
            "help": "Another BEIR folder or pairs file to train on beside --beir-dir "
            "(repeatable): mined and taught within itself, it keeps the model general; dev "
            "queries stay --beir-dir's.",
        },
    ),
    (
        "--mix-share",
        {
            "type": click.FloatRange(0, 1, min_open=True, max_open=True),
            "help": "Share of the training rows drawn from --mix, split evenly among them, "
            "spread over their queries. [0.5]",
        },
    ),
    (
        "--base-model",
        {"help": "Starting model: alias (splade-tiny), folder or hub name. [splade-tiny]"},
    ),
    ("--query-base-model", {"help": "Separate starting query encoder (shape pair)."}),
    (
        "--query-layers",
        {
            "type": click.IntRange(min=1),
            "help": "Shape pair: keep only the first N layers of the query encoder (a smaller, "
            "faster query side).",
        },
    ),
    (
        "--query-expansion/--no-query-expansion",
        {
            "help": "Shape pair: --no-query-expansion keeps each query to its own tokens' "
            "weights (no vocabulary head at query time: the cheapest query side). [on]",
        },
    ),
    (
        "--out",
        {
            "type": click.Path(file_okay=False, path_type=Path),
            "help": "Output folder; the best model is saved here, loadable by SpladeEncoder.load.",
        },
    ),
    ("--shape", {"type": click.Choice(["shared", "pair", "inference-free"]), "help": "[shared]"}),
    (
        "--pooling",
        {
            "type": click.Choice(["fast", "library"]),
            "help": "fast: splade_es.pooling; library: SpladePooling. [fast]",
        },
    ),
    ("--train-split", {"help": "qrels/<split>.tsv used for training. [train]"}),
    ("--max-steps", {"type": int, "help": "Optimizer steps. [720]"}),
    ("--batch-size", {"type": int, "help": "Queries per micro-batch (per device). [16]"}),
    ("--grad-accum", {"type": int, "help": "Gradient accumulation micro-batches. [1]"}),
    ("--lr", {"type": _FLOAT, "help": "Peak learning rate (linear warm-up and decay). [1e-4]"}),
    (
        "--query-weights-lr",
        {
            "type": _FLOAT,
            "help": "inference-free: peak learning rate of the query table. [100 x lr]",
        },
    ),
    ("--lambda-d", {"type": _FLOAT, "help": "FLOPS weight on documents. [1e-3]"}),
    ("--lambda-q", {"type": _FLOAT, "help": "FLOPS/L1 weight on queries. [1e-3]"}),
    ("--query-reg", {"type": click.Choice(["flops", "l1"]), "help": "Query regularizer. [flops]"}),
    ("--reg-warmup-steps", {"type": int, "help": "Quadratic lambda warm-up steps. [max_steps/3]"}),
    ("--weight-decay", {"type": _FLOAT, "help": "[0.01]"}),
    ("--warmup-ratio", {"type": _FLOAT, "help": "Learning-rate warm-up share of max_steps. [0.1]"}),
    ("--negatives", {"type": int, "help": "Hard negatives per query. [1]"}),
    (
        "--negative-source",
        {
            "type": click.Choice(["bm25", "splade", "bm25+splade", "engine", "random"]),
            "help": "Where hard negatives come from. [bm25+splade]",
        },
    ),
    (
        "--negative-depth",
        {"type": int, "help": "Negatives are drawn from this many top hits. [50]"},
    ),
    ("--engine-index", {"help": "Index to mine negatives from (--negative-source engine)."}),
    (
        "--engine-mode",
        {
            "type": click.Choice(["bm25", "splade", "hybrid"]),
            "help": "How the engine ranks (splade/hybrid encode with --base-model). [bm25]",
        },
    ),
    ("--engine-text-field", {"help": "Text field for BM25 on the engine index. [content]"}),
    (
        "--teacher-scores",
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "TSV query_id doc_id score for distillation.",
        },
    ),
    (
        "--teacher",
        {
            "type": click.Choice(["none", "ensemble"]),
            "help": "ensemble: teacher scores from BM25 + the base SPLADE model, fused. [ensemble]",
        },
    ),
    ("--teacher-bm25-weight", {"type": _FLOAT, "help": "BM25 share of the fused teacher. [0.5]"}),
    ("--contrastive-weight", {"type": _FLOAT, "help": "InfoNCE weight next to distillation. [1]"}),
    (
        "--anchor-weight",
        {
            "type": _FLOAT,
            "help": "L2 pull toward the starting weights, sum((w - w0)^2) (keeps what the base "
            "model knew outside the training domain). [0]",
        },
    ),
    (
        "--merge-weight",
        {
            "type": click.FloatRange(0, 1),
            "help": "The trained document model's share in the exported weights, the rest the "
            "base model's (WiSE-FT: keeps what the base model knew outside the training "
            "domain; a query side of its own stays as trained); 1 exports as trained. [0.5]",
        },
    ),
    (
        "--freeze-documents/--train-documents",
        {
            "help": "pair/inference-free: train the query side alone; the document side stays "
            "the base model's, so its index needs no re-encoding. [train both]",
        },
    ),
    ("--kl-temperature", {"type": _FLOAT, "help": "Temperature of the KL loss. [1.0]"}),
    (
        "--loss",
        {
            "type": click.Choice(["auto", "infonce", "margin-mse", "kl"]),
            "help": "auto: kl with the ensemble teacher, margin-mse with --teacher-scores, else "
            "infonce. [auto]",
        },
    ),
    ("--doc-max-length", {"type": int, "help": "Document length of the saved model. [256]"}),
    ("--train-doc-max-length", {"type": int, "help": "Document truncation while training. [128]"}),
    ("--query-max-length", {"type": int, "help": "[64]"}),
    ("--eval-every", {"type": int, "help": "Dev evaluation every N steps (0: none). [0]"}),
    ("--dev-fraction", {"type": _FLOAT, "help": "Training queries held out for dev. [0.1]"}),
    ("--dev-seed", {"type": int, "help": "Seed of the held-out dev slice (--seed: training). [0]"}),
    (
        "--dev-pool-depth",
        {"type": int, "help": "Dev queries rank their positives + BM25 top N documents. [50]"},
    ),
    (
        "--dev-qrels",
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "Dev qrels TSV (default: a held-out slice of training queries).",
        },
    ),
    ("--save-every", {"type": int, "help": "Checkpoint every N steps. [eval-every or max-steps]"}),
    ("--save-total-limit", {"type": int, "help": "Checkpoints kept (the best one too). [2]"}),
    ("--log-every", {"type": int, "help": "Log every N steps. [10]"}),
    (
        "--report-to",
        {"help": "Trainer logging integration: none, tensorboard, wandb, ... [none]"},
    ),
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
    return option.split("/")[0].lstrip("-").replace("-", "_")  # --x/--no-x: x


def _decorate(func: Any) -> Any:
    for option, kwargs in reversed(_OPTIONS):
        func = click.option(option, _field(option), default=None, **kwargs)(func)
    return func


@click.command("train")
@_decorate
@click_options(CONNECTION)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON/YAML file of training options (command-line options override it).",
)
@click.option(
    "--resume", is_flag=True, default=None, help="Continue from the last OUT/checkpoints/ entry."
)
@click.option("--cpu", is_flag=True, default=None, help="Train on CPU even when a GPU is present.")
@click.option("--no-progress", is_flag=True, default=False, help="No progress bar.")
def train(config_file: Path | None, no_progress: bool, **options: Any) -> None:
    """Fine-tune a SPLADE model on BEIR training data; writes a folder `SpladeEncoder.load` reads."""
    from .data import DataError
    from .trainer import TrainConfig, load_config_file
    from .trainer import train as run_training

    connection = {key: options.pop(key) for key in CONNECTION_KEYS}
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    values.update({k: _plain(v) for k, v in options.items() if v is not None and v != ()})
    if no_progress:
        values["progress"] = False
    try:
        config = TrainConfig.from_dict(values)
        config.validate()
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    searcher = _engine_searcher(config, connection)
    try:
        result = run_training(config, searcher)
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    summary = (
        f"trained {result.step} steps in {result.wall_seconds / 60:.1f} min; model: {result.out}"
    )
    if result.best_metrics:
        best = result.best_metrics["eval_dev_dot_ndcg@10"]
        summary += f" (best dev nDCG@10 {best:.4f} at step {result.best_step}"
        if result.base_metrics:
            summary += f"; base model {result.base_metrics['dev_dot_ndcg@10']:.4f}"
        summary += ")"
    click.echo(summary)


CONNECTION_KEYS = tuple(opt.name for opt in CONNECTION)


def _plain(value: Any) -> Any:
    """A config value as the JSON config file holds it: paths as text, repeated options as lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _engine_searcher(config: Any, connection: dict[str, Any]) -> Any:
    """The engine index negatives are mined from, opened with the connection options."""
    if config.negative_source != "engine":
        return None
    from splade_es.options import open_cluster_from

    from .data import engine_searcher

    client, info, _ = open_cluster_from(dict(connection))
    encoder = None
    if config.engine_mode != "bm25":
        from splade_es.encoder import SpladeEncoder

        encoder = SpladeEncoder.load(config.base_model, config.query_base_model)
    if not config.engine_index:
        raise click.UsageError("--negative-source engine needs --engine-index")
    return engine_searcher(
        client, info, config.engine_index, config.engine_mode, encoder, config.engine_text_field
    )


if __name__ == "__main__":
    train()
