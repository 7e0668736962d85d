"""Fine-tuning on sentence-transformers' `SparseEncoderTrainer` (the Hugging Face Trainer: one or
many GPUs, mixed precision, checkpoints, resume, logging); this module only prepares what it lacks.

Output folder layout (`config.out`):

    out/                  the trained model (best dev checkpoint when evaluating), exported in the
                          project's folder format: `SpladeEncoder.load(out)` reads it
    out/checkpoints/      the trainer's checkpoints (sentence-transformers format, resumable)
    out/train_log.jsonl   the trainer's log history (losses, regularizer weights, dev metrics)
    out/train_config.json the resolved configuration
    out/teacher_scores.tsv  fused teacher scores, when `teacher = "ensemble"`
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from splade_es.models import DEFAULT_MODEL, model_identity

from .data import (
    BeirData,
    DataError,
    Negatives,
    RowPlan,
    Searcher,
    balanced_rows,
    bm25_negatives,
    build_rows,
    load_training_data,
    merge_negatives,
    negative_columns,
    read_qrels_checked,
    read_teacher_scores,
    run_negatives,
    searcher_negatives,
    splade_run,
    split_dev,
)

log = logging.getLogger(__name__)

NEGATIVE_SOURCES = ("bm25", "splade", "bm25+splade", "engine", "random")
LOSSES = ("auto", "infonce", "margin-mse", "kl")
TEACHERS = ("none", "ensemble")
DEV_METRIC = "eval_dev_dot_ndcg@10"


@dataclass
class TrainConfig:
    """Everything a run needs; the CLI and config files map onto these fields one to one."""

    beir_dir: str = ""  # a BEIR folder, or a JSONL/Parquet pairs file
    out: str = ""
    # more BEIR folders / pairs files trained on beside beir_dir (keeps a model general); each is
    # mined and taught within itself; dev queries and the dev slice stay beir_dir's
    mix: list[str] = field(default_factory=list)
    mix_share: float = 0.5  # share of the training rows drawn from `mix`, split evenly among them
    base_model: str = DEFAULT_MODEL
    query_base_model: str | None = None
    query_layers: int | None = None  # pair: keep the first N layers of the query MLM (smaller)
    query_expansion: bool = True  # pair: False keeps each query to its own tokens (cheaper)
    shape: str = "shared"  # shared | pair | inference-free
    pooling: str = "fast"  # fast (splade_es.pooling) | library (SpladePooling)
    train_split: str = "train"
    max_train_queries: int | None = None
    # optimisation (passed to SparseEncoderTrainingArguments)
    max_steps: int = 720
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-4
    query_weights_lr: float | None = None  # inference-free query table (default: 100 * lr)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16
    cpu: bool = False
    # data
    negatives: int = 1
    negative_depth: int = 50
    negative_source: str = "bm25+splade"  # bm25 | splade | bm25+splade | engine | random
    engine_index: str | None = None
    engine_mode: str = "bm25"  # bm25 | splade | hybrid (on the engine index)
    engine_text_field: str | None = None
    teacher: str = "ensemble"  # none | ensemble (BM25 + the base SPLADE model, fused)
    teacher_scores: str | None = None  # TSV query_id doc_id score
    teacher_bm25_weight: float = 0.5
    loss: str = "auto"  # auto | infonce | margin-mse | kl
    contrastive_weight: float = 1.0  # extra InfoNCE weight next to a distillation loss
    anchor_weight: float = 0.0  # L2 pull toward the base model's weights (keeps general quality)
    merge_weight: float = 0.5  # export the document MLM as w * trained + (1 - w) * base
    # pair / inference-free: keep the base model's document MLM as it is and train the query side
    # alone, so an index already encoded with the base model stays valid (no re-encoding)
    freeze_documents: bool = False
    kl_temperature: float = 1.0
    doc_max_length: int = 256  # exported model
    train_doc_max_length: int = 128  # training and dev evaluation
    query_max_length: int = 64
    # regularisation (SpladeLoss + its weight scheduler)
    lambda_d: float = 1e-3
    lambda_q: float = 1e-3
    query_reg: str = "flops"  # flops | l1
    reg_warmup_steps: int | None = None  # quadratic warm-up; default max_steps // 3
    # evaluation / checkpoints / logging (the trainer's own)
    eval_every: int = 0
    dev_qrels: str | None = None
    dev_fraction: float = 0.1
    dev_max_queries: int = 100
    dev_seed: int = 0  # which training queries are held out; `seed` varies the training alone
    dev_corpus: str = "pool"  # pool (dev positives + BM25 top dev_pool_depth) | full
    dev_pool_depth: int = 50
    save_every: int = 0  # default: eval_every, else max_steps
    save_total_limit: int | None = 2
    log_every: int = 10
    report_to: str = "none"  # none | tensorboard | wandb | ... (the Trainer's report_to)
    resume: bool = False
    stop_at_step: int | None = None  # stop (with a checkpoint) before max_steps, as if interrupted
    progress: bool = True

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        normalised = {str(k).replace("-", "_"): v for k, v in values.items()}
        unknown = sorted(set(normalised) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**normalised)

    @property
    def ranking_loss(self) -> str:
        if self.loss != "auto":
            return self.loss
        if self.teacher_scores:  # scores of another model (a cross-encoder): margins
            return "margin-mse"
        return "kl" if self.teacher == "ensemble" else "infonce"

    @property
    def rows_needed(self) -> int:
        """Training rows the run consumes: one per query in every micro-batch of every step."""
        return self.max_steps * self.batch_size * self.grad_accum

    @property
    def has_teacher(self) -> bool:
        return bool(self.teacher_scores) or self.teacher == "ensemble"

    def validate(self) -> None:
        if not self.beir_dir or not self.out:
            raise ValueError("beir_dir and out are required")
        mixed = self.mix if isinstance(self.mix, list) else []
        checks = [
            (self.shape in ("shared", "pair", "inference-free"), f"unknown shape {self.shape!r}"),
            (self.pooling in ("fast", "library"), "pooling must be fast or library"),
            (self.query_reg in ("flops", "l1"), "query_reg must be flops or l1"),
            (self.loss in LOSSES, f"unknown loss {self.loss!r}"),
            (self.teacher in TEACHERS, f"teacher must be one of {TEACHERS}"),
            (
                self.negative_source in NEGATIVE_SOURCES,
                f"unknown negative_source {self.negative_source!r}",
            ),
            (self.engine_mode in ("bm25", "splade", "hybrid"), "engine_mode: bm25|splade|hybrid"),
            (
                self.mixed_precision in ("auto", "no", "bf16", "fp16"),
                f"unknown mixed_precision {self.mixed_precision!r}",
            ),
            (self.dev_corpus in ("pool", "full"), "dev_corpus must be pool or full"),
            (
                self.max_steps >= 0 and self.batch_size > 0 and self.grad_accum > 0,
                "max_steps must be >= 0 (0: export the starting model), batch_size and "
                "grad_accum positive",
            ),
            (self.negatives >= 0, "negatives must be >= 0"),
            (self.lambda_d >= 0 and self.lambda_q >= 0, "lambda_d and lambda_q must be >= 0"),
            (self.anchor_weight >= 0, "anchor_weight must be >= 0"),
            (0.0 <= self.merge_weight <= 1.0, "merge_weight must be in [0, 1]"),
            (
                self.query_layers is None or (self.shape == "pair" and self.query_layers >= 1),
                "query_layers needs shape 'pair' and must be >= 1",
            ),
            (
                self.query_expansion or (self.shape == "pair" and self.pooling == "fast"),
                "query_expansion off needs shape 'pair' and pooling 'fast'",
            ),
            (
                not self.freeze_documents or self.shape in ("pair", "inference-free"),
                "freeze_documents needs shape 'pair' or 'inference-free' (a query side of its own)",
            ),
            (0.0 <= self.teacher_bm25_weight <= 1.0, "teacher_bm25_weight must be in [0, 1]"),
            (
                isinstance(self.mix, list) and all(isinstance(m, str) and m for m in self.mix),
                "mix must be a list of BEIR folders or pairs files",
            ),
            (0.0 < self.mix_share < 1.0, "mix_share must be between 0 and 1 (exclusive)"),
            (
                not any(Path(m).resolve() == Path(self.beir_dir).resolve() for m in mixed),
                "mix repeats beir_dir (its held-out dev queries would train)",
            ),
            (
                not self.mix or self.negative_source != "engine",
                "mix needs a negative_source other than 'engine' (the engine index holds one "
                "collection)",
            ),
            (
                not (self.mix and self.teacher_scores),
                "mix needs teacher 'ensemble' or none, not teacher_scores (they name one "
                "collection's ids)",
            ),
            (
                self.loss in ("auto", "infonce") or self.has_teacher,
                f"loss {self.loss!r} needs teacher_scores or teacher 'ensemble'",
            ),
            (
                self.ranking_loss != "kl" or self.negatives >= 1,
                "loss 'kl' needs negatives >= 1 (a softmax over one candidate is constant)",
            ),
            (
                self.negative_source != "engine" or bool(self.engine_index),
                "negative_source 'engine' needs engine_index (and a connection)",
            ),
            (
                not (self.teacher_scores and self.teacher == "ensemble"),
                "give teacher_scores or teacher 'ensemble', not both",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class TrainResult:
    out: Path
    step: int
    best_step: int | None
    best_metrics: dict[str, float] | None
    base_metrics: dict[str, float] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    model: Any = None  # the trained SparseEncoder (what was exported to `out`)


def _is_main_process() -> bool:
    """Rank 0 of a `torchrun` / `accelerate launch` run (or a single process)."""
    return int(os.environ.get("RANK", "0")) == 0


def _mixed_precision(choice: str, cpu: bool) -> str:
    import torch

    if choice != "auto":
        return choice
    if cpu or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def load_config_file(path: Path) -> dict[str, Any]:
    """A JSON (or, when PyYAML is installed, YAML) mapping of `TrainConfig` fields."""
    text = Path(path).read_text()
    if Path(path).suffix in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(text)
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


# Data preparation ----------------------------------------------------------------------------


class _BaseEncoder:
    """The base model as the encoder loads it, loaded once when first needed (a mixed run's
    collections share it)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self._encoder: Any = None

    def get(self) -> Any:
        if self._encoder is None:
            from splade_es.encoder import SpladeEncoder

            self._encoder = SpladeEncoder.load(
                self.config.base_model,
                self.config.query_base_model,
                doc_max_length=self.config.doc_max_length,
                query_max_length=self.config.query_max_length,
            )
        return self._encoder


class _BaseSplade:
    """The base model's exact SPLADE scores over one collection, computed once when needed."""

    def __init__(self, config: TrainConfig, data: BeirData, encoder: _BaseEncoder) -> None:
        self.config, self.data, self.encoder = config, data, encoder
        self._run: dict[str, dict[str, float]] | None = None

    def run(self, qids: Sequence[str]) -> dict[str, dict[str, float]]:
        if self._run is None:
            encoder = self.encoder.get()
            self._run = splade_run(self.data, qids, encoder, progress=self.config.progress)
        return self._run


def mine_negatives(
    config: TrainConfig,
    data: BeirData,
    qids: Sequence[str],
    searcher: Searcher | None,
    base: _BaseSplade,
) -> Negatives:
    """Hard negatives from the configured source, after any the input itself names."""
    depth, source = config.negative_depth, config.negative_source
    parts: list[Negatives] = [data.given_negatives] if data.given_negatives else []
    if source == "engine":
        if searcher is None:
            raise DataError("negative_source 'engine' needs a connection (--url ...)")
        parts.append(searcher_negatives(data, qids, searcher, depth))
    if "bm25" in source:
        parts.append(bm25_negatives(data, qids, depth))
    if "splade" in source:
        parts.append(run_negatives(data, base.run(qids), depth))
    return merge_negatives(*parts) if parts else {}


def _teacher(
    config: TrainConfig,
    data: BeirData,
    qids: Sequence[str],
    negatives: Negatives,
    base: _BaseSplade,
    file_name: str = "teacher_scores.tsv",
) -> dict[str, dict[str, float]] | None:
    if config.teacher_scores:
        return read_teacher_scores(Path(config.teacher_scores), data.docs, data.queries)
    if config.teacher != "ensemble":
        return None
    from .teacher import Fusion, candidates, ensemble_scores, write_teacher_scores

    pools = candidates(data, qids, negatives, config.negative_depth)
    scores = ensemble_scores(data, pools, base.run(qids), Fusion(config.teacher_bm25_weight))
    if _is_main_process():
        write_teacher_scores(Path(config.out) / file_name, scores)
    return scores


@dataclass
class DevSet:
    """Dev queries, their qrels and the documents they are ranked among."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus: dict[str, str]

    def evaluator(self) -> Any:
        from sentence_transformers.sparse_encoder.evaluation import (
            SparseInformationRetrievalEvaluator,
        )

        relevant = {q: {d for d, g in docs.items() if g > 0} for q, docs in self.qrels.items()}
        return SparseInformationRetrievalEvaluator(
            queries=self.queries,
            corpus=self.corpus,
            relevant_docs=relevant,
            name="dev",
            ndcg_at_k=[10],
            mrr_at_k=[10],
            accuracy_at_k=[10],
            precision_recall_at_k=[10, 100],
            map_at_k=[100],
            write_csv=False,
            batch_size=32,
        )


def training_and_dev_queries(
    config: TrainConfig, qids: Sequence[str], data: BeirData
) -> tuple[list[str], list[str]]:
    """(training, held-out dev) query ids: dev queries never train, whether they are a slice of
    the training split (`dev_fraction`, drawn with `dev_seed`) or the queries of `dev_qrels`."""
    if config.dev_qrels:
        held_out = read_qrels_checked(Path(config.dev_qrels), data.docs, data.queries)
        return [q for q in qids if q not in held_out], []
    if config.eval_every > 0:
        return split_dev(qids, config.dev_fraction, config.dev_max_queries, config.dev_seed)
    return list(qids), []


def build_dev(config: TrainConfig, data: BeirData, dev_qids: Sequence[str]) -> DevSet | None:
    """Held-out training queries (or `dev_qrels`) ranked among their BM25 pool or the corpus."""
    if config.eval_every <= 0:
        return None
    if config.dev_qrels:
        qrels = read_qrels_checked(Path(config.dev_qrels), data.docs, data.queries)
    else:
        qrels = {q: data.qrels[q] for q in dev_qids}
    if not qrels:
        return None
    queries = {q: data.queries[q] for q in qrels}
    if config.dev_corpus == "full":
        return DevSet(queries, qrels, dict(data.docs))
    from splade_es.bm25 import BM25

    run = BM25(list(data.docs), list(data.docs.values())).search(queries, k=config.dev_pool_depth)
    pool: dict[str, None] = {}
    for qid in qrels:
        pool.update(dict.fromkeys(qrels[qid]))
        pool.update(dict.fromkeys(run.get(qid, {})))
    return DevSet(queries, qrels, {d: data.docs[d] for d in pool})


# The run -----------------------------------------------------------------------------------------


def _trainer_arguments(
    config: TrainConfig, model: Any, has_dev: bool, n_negatives: int, main_dir: Path
) -> Any:
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sparse_encoder import SparseEncoderTrainingArguments

    from .model import query_weights_parameter

    precision = _mixed_precision(config.mixed_precision, config.cpu)
    save_every = config.save_every or config.eval_every or config.max_steps
    if has_dev and save_every % config.eval_every:
        raise ValueError("save_every must be a multiple of eval_every (best-checkpoint selection)")
    table = query_weights_parameter(model)
    lr_mapping = (
        {re.escape(table) + "$": config.query_weights_lr or config.lr * 100} if table else {}
    )
    routes = {"query": "query", "positive": "document"}
    routes.update({name: "document" for name in negative_columns(n_negatives)})
    return SparseEncoderTrainingArguments(
        output_dir=str(main_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float is a ratio of max_steps (Transformers v5)
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=config.cpu,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        router_mapping=routes,
        learning_rate_mapping=lr_mapping,
        eval_strategy="steps" if has_dev else "no",
        eval_steps=config.eval_every if has_dev else None,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=has_dev,
        metric_for_best_model=DEV_METRIC if has_dev else None,
        greater_is_better=True,
        logging_steps=config.log_every,
        report_to=[] if config.report_to == "none" else [config.report_to],
        disable_tqdm=not config.progress,
        dataloader_drop_last=True,
    )


def _keep_callback_logs() -> Any:
    from transformers import TrainerCallback

    class KeepCallbackLogs(TrainerCallback):
        """Copy what other callbacks add to a log record (the regularizer weights) into the
        trainer's log history, which keeps only what the trainer itself logged."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> Any:
            if logs and state.log_history:
                record = state.log_history[-1]
                record.update({k: v for k, v in logs.items() if k not in record})
            return control

    return KeepCallbackLogs()


def _callbacks(config: TrainConfig, loss: Any) -> list[Any]:
    from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import (
        SpladeRegularizerWeightSchedulerCallback,
    )
    from transformers import TrainerCallback

    warmup = config.reg_warmup_steps
    warmup = config.max_steps // 3 if warmup is None else warmup
    # the library's scheduler takes a ratio in (0, 1]; 1 step of warm-up is "none"
    ratio = min(1.0, max(warmup, 1) / config.max_steps)
    callbacks: list[Any] = [
        SpladeRegularizerWeightSchedulerCallback(
            loss, scheduler_type="quadratic", warmup_ratio=ratio
        ),
        _keep_callback_logs(),
    ]
    stop = config.stop_at_step

    if stop:

        class StopAt(TrainerCallback):
            """Interrupt the run at `stop` with a checkpoint, as a crash after saving would."""

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                if state.global_step >= stop:
                    control.should_save = True
                    control.should_training_stop = True
                return control

        callbacks.append(StopAt())
    return callbacks


def _rows_per_pass(data: BeirData, qids: Sequence[str]) -> int:
    return sum(1 for q in qids for g in data.qrels.get(q, {}).values() if g > 0)


def collection_rows(
    config: TrainConfig,
    data: BeirData,
    qids: Sequence[str],
    searcher: Searcher | None,
    rows: int | None,
    teacher_file: str,
    base_encoder: _BaseEncoder,
) -> dict[str, list[Any]]:
    """One collection's training rows: negatives mined and teacher scores fused within it (a
    SciFact query never draws an NFCorpus negative), enough passes for `rows`, then exactly `rows`
    of them spread over its queries; `rows=None` (no mix) keeps every row of the passes, as a
    single-collection run always has."""
    base = _BaseSplade(config, data, base_encoder)
    negatives = mine_negatives(config, data, qids, searcher, base)
    teacher = _teacher(config, data, qids, negatives, base, teacher_file)
    needed = rows or config.rows_needed
    passes = max(1, -(-needed // max(1, _rows_per_pass(data, qids))))
    plan = RowPlan(config.negatives, passes, config.negative_depth, config.seed)
    try:
        columns = build_rows(data, qids, negatives, plan, teacher)
    except DataError as exc:
        raise DataError(f"{data.source}: {exc}") from exc
    return columns if rows is None else balanced_rows(columns, rows, config.seed)


def mixed_collections(config: TrainConfig) -> list[BeirData]:
    """The `mix` collections, loaded (their training split)."""
    return [load_training_data(Path(source), config.train_split) for source in config.mix]


def training_rows(
    config: TrainConfig, data: BeirData, qids: Sequence[str], searcher: Searcher | None
) -> tuple[dict[str, list[Any]], list[BeirData]]:
    """The run's training rows and the `mix` collections they drew on: `beir_dir`'s `qids`
    alone, or its `1 - mix_share` of the rows beside each mixed collection's even part of the rest
    (all of a mixed collection's queries take part; its own dev split is never read)."""
    rows_needed = config.rows_needed
    mixed = mixed_collections(config)
    own = rows_needed - round(rows_needed * config.mix_share) if mixed else None
    base = _BaseEncoder(config)
    columns = collection_rows(config, data, qids, searcher, own, "teacher_scores.tsv", base)
    for number, extra in enumerate(mixed, start=1):
        share = -(-(rows_needed - (own or 0)) // len(mixed))
        more = collection_rows(
            config, extra, sorted(extra.qrels), None, share, f"teacher_scores.mix{number}.tsv", base
        )
        columns = {name: values + more[name] for name, values in columns.items()}
    return columns, mixed


def train(config: TrainConfig, searcher: Searcher | None = None) -> TrainResult:
    """Fine-tune a SPLADE model; returns where the exported model is and the logged history.

    `searcher` mines negatives for `negative_source = "engine"` (`training.data.engine_searcher`
    builds one on a live index; any `({qid: text}, k) -> {qid: [doc ids]}` callable works).
    """
    import torch
    from datasets import Dataset
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from .losses import Objective, build_loss
    from .model import freeze_documents, merge_with_base

    config.validate()
    started = time.time()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    data = load_training_data(Path(config.beir_dir), config.train_split)
    if config.max_steps == 0:
        return _untrained(config, data, started)
    all_qids = sorted(data.qrels)
    if config.max_train_queries:
        all_qids = all_qids[: config.max_train_queries]
    train_qids, dev_qids = training_and_dev_queries(config, all_qids, data)
    columns, mixed = training_rows(config, data, train_qids, searcher)
    train_dataset = Dataset.from_dict(columns)
    dev = build_dev(config, data, dev_qids)

    model = _starting_model(config, data, mixed)
    if config.freeze_documents:
        freeze_documents(model)
    objective = Objective(
        ranking=config.ranking_loss,  # type: ignore[arg-type]
        lambda_d=config.lambda_d,
        lambda_q=config.lambda_q,
        query_regularizer=config.query_reg,  # type: ignore[arg-type]
        contrastive_weight=config.contrastive_weight,
        anchor_weight=config.anchor_weight,
        kl_temperature=config.kl_temperature,
    )
    loss = build_loss(model, objective)
    evaluator = dev.evaluator() if dev else None
    checkpoints = out / "checkpoints"
    resume_from = (
        get_last_checkpoint(str(checkpoints)) if config.resume and checkpoints.is_dir() else None
    )
    base_metrics = None
    if evaluator is not None and resume_from is None:
        base_metrics = {k: float(v) for k, v in evaluator(model).items()}
    args = _trainer_arguments(config, model, dev is not None, config.negatives, checkpoints)
    if _is_main_process():
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    trainer = SparseEncoderTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=_callbacks(config, loss),
    )
    trainer.train(resume_from_checkpoint=resume_from)
    history = list(trainer.state.log_history)
    if trainer.is_world_process_zero():  # one writer when launched on several GPUs
        with (out / "train_log.jsonl").open("w", encoding="utf-8") as handle:
            for entry in history:
                handle.write(json.dumps(entry) + "\n")
        if not config.freeze_documents:  # a frozen side is the base already, bit for bit
            merge_with_base(model, config.base_model, config.merge_weight)
        _export(config, model, out)
    best_step, best_metrics = _best(trainer.state, history)
    return TrainResult(
        out=out,
        step=int(trainer.state.global_step),
        best_step=best_step,
        best_metrics=best_metrics,
        base_metrics=base_metrics,
        history=history,
        wall_seconds=time.time() - started,
        model=model,
    )


def _export(config: TrainConfig, model: Any, out: Path) -> None:
    from .model import export_model

    export_model(
        model,
        out,
        config.doc_max_length,
        config.query_max_length,
        # a frozen document side: an index the base filled serves the new queries as it is
        documents_of=model_identity(config.base_model) if config.freeze_documents else None,
    )


def _starting_model(config: TrainConfig, data: BeirData, mixed: Sequence[BeirData]) -> Any:
    """The model of `config.shape` training starts from (inference-free: its table the corpus
    IDF of every collection the run reads)."""
    from .model import build_model

    return build_model(
        config.shape,  # type: ignore[arg-type]
        config.base_model,
        config.query_base_model,
        idf_texts=[t for d in (data, *mixed) for t in d.docs.values()]
        if config.shape == "inference-free"
        else None,
        pooling=config.pooling,  # type: ignore[arg-type]
        query_length=config.query_max_length,
        document_length=config.train_doc_max_length,
        query_layers=config.query_layers,
        query_expansion=config.query_expansion,
    )


def _untrained(config: TrainConfig, data: BeirData, started: float) -> TrainResult:
    """`max_steps` 0: the model training would start from, exported as it is (no negatives, no
    teacher): an inference-free query side's table is the corpus IDF of the run's collections, a
    cut query encoder is its base's first layers. The ablation's zero point: what the steps add."""
    model = _starting_model(config, data, mixed_collections(config))
    out = Path(config.out)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    _export(config, model, out)
    return TrainResult(out, 0, None, None, wall_seconds=time.time() - started, model=model)


def _best(
    state: Any, history: Sequence[Mapping[str, Any]]
) -> tuple[int | None, dict[str, float] | None]:
    evals = [h for h in history if DEV_METRIC in h]
    if not evals:
        return None, None
    best = max(evals, key=lambda h: h[DEV_METRIC])
    return int(best["step"]), {k: float(v) for k, v in best.items() if isinstance(v, int | float)}


__all__ = ["DataError", "TrainConfig", "TrainResult", "load_config_file", "train"]
