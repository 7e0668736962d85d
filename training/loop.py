"""The training loop: accelerate (CPU, one or many GPUs, bf16/fp16 autocast on CUDA), gradient
accumulation, checkpoints and resume, periodic exact dev evaluation, best-checkpoint export.

Output folder layout (`config.out`):

    out/                  best model by dev nDCG@10 (or the final one without dev evaluation);
                          `SpladeEncoder.load(out)` loads it (weights, tokenizer, splade_es.json)
    out/last/             the model at the last step
    out/checkpoint/       accelerate state (model, optimizer, scheduler, RNG) + trainer_state.json
    out/train_log.jsonl   one record per log interval / evaluation
    out/train_config.json the resolved configuration
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from splade_es.sparse import SparseVector
from training import losses
from training.data import (
    BatchSampler,
    BeirData,
    DataError,
    Searcher,
    bm25_negatives,
    build_examples,
    engine_searcher,
    load_beir,
    merge_negatives,
    read_qrels_checked,
    read_teacher_scores,
    searcher_negatives,
    splade_negatives,
    split_dev,
)
from training.evaluate import evaluate_vectors
from training.model import SpladeModel, active_terms, tokenize

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"


@dataclass
class TrainConfig:
    """Everything a run needs; the CLI and config files map onto these fields one to one."""

    beir_dir: str = ""
    out: str = ""
    base_model: str = "splade-tiny"
    query_base_model: str | None = None
    shape: str = "shared"
    train_split: str = "train"
    max_train_queries: int | None = None
    # optimisation
    max_steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
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
    negative_source: str = "bm25"  # bm25 | splade | bm25+splade | engine | random
    engine_url: str | None = None
    engine_index: str | None = None
    teacher_scores: str | None = None
    loss: str = "auto"  # auto | infonce | margin-mse | kl
    contrastive_weight: float = 0.0  # extra InfoNCE weight next to a distillation loss
    doc_max_length: int = 256  # exported model / dev evaluation
    train_doc_max_length: int = 128
    query_max_length: int = 64
    # regularisation
    lambda_d: float = 1e-3
    lambda_q: float = 1e-3
    query_reg: str = "flops"  # flops | l1
    reg_warmup_steps: int | None = None  # default: max_steps // 3
    # evaluation / checkpoints / logging
    eval_every: int = 0
    dev_qrels: str | None = None
    dev_fraction: float = 0.1
    dev_max_queries: int = 100
    dev_corpus: str = "pool"  # pool (dev positives + BM25 top dev_pool_depth) | full
    dev_pool_depth: int = 50
    save_every: int = 0  # default: eval_every, else max_steps
    log_every: int = 10
    resume: bool = False
    stop_at_step: int | None = None  # stop (with a checkpoint) before max_steps, as if interrupted
    progress: bool = True

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**{k.replace("-", "_"): v for k, v in values.items()})

    def validate(self) -> None:
        if not self.beir_dir or not self.out:
            raise ValueError("beir_dir and out are required")
        checks = [
            (self.shape in ("shared", "pair", "inference-free"), f"unknown shape {self.shape!r}"),
            (
                self.query_reg in ("flops", "l1"),
                f"query_reg must be flops or l1, not {self.query_reg!r}",
            ),
            (self.loss in ("auto", "infonce", "margin-mse", "kl"), f"unknown loss {self.loss!r}"),
            (
                self.negative_source in ("bm25", "splade", "bm25+splade", "engine", "random"),
                f"unknown negative_source {self.negative_source!r}",
            ),
            (
                self.mixed_precision in ("auto", "no", "bf16", "fp16"),
                f"unknown mixed_precision {self.mixed_precision!r}",
            ),
            (self.dev_corpus in ("pool", "full"), "dev_corpus must be pool or full"),
            (
                self.max_steps > 0 and self.batch_size > 0 and self.grad_accum > 0,
                "max_steps, batch_size and grad_accum must be positive",
            ),
            (self.negatives >= 0, "negatives must be >= 0"),
            (self.lambda_d >= 0 and self.lambda_q >= 0, "lambda_d and lambda_q must be >= 0"),
            (
                self.loss in ("auto", "infonce") or self.teacher_scores,
                f"loss {self.loss!r} needs teacher_scores",
            ),
            (
                self.negative_source != "engine" or (self.engine_url and self.engine_index),
                "negative_source 'engine' needs engine_url and engine_index (or a searcher)",
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
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0


def _mixed_precision(choice: str, cpu: bool) -> str:
    if choice != "auto":
        return choice
    if cpu or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def encode_vectors(
    model: SpladeModel,
    texts: Sequence[str],
    max_length: int,
    side: str,
    batch_size: int = 32,
    device: torch.device | None = None,
) -> list[SparseVector]:
    """Encode texts with the training model exactly as `SpladeEncoder` would (length-sorted batches)."""
    device = device or next(model.parameters()).device
    tokenizer = model.tokenizer
    lengths = [
        len(x) for x in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    ]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    id_to_token = [str(t) for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
    out: list[SparseVector | None] = [None] * len(texts)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenize(tokenizer, [texts[i] for i in idx], max_length).to(device)
            encode = model.encode_documents if side == "document" else model.encode_queries
            weights = encode(batch["input_ids"], batch["attention_mask"]).float().cpu()
            rows, cols = weights.nonzero(as_tuple=True)
            values = weights[rows, cols].tolist()
            per_row: list[list[tuple[str, float]]] = [[] for _ in idx]
            for r, c, v in zip(rows.tolist(), cols.tolist(), values, strict=True):
                per_row[r].append((id_to_token[c], v))
            for i, pairs in zip(idx, per_row, strict=True):
                out[i] = SparseVector.from_pairs(pairs)
    model.train(was_training)
    return [v for v in out if v is not None]


class DevSet:
    """Dev queries, their qrels and the documents they are scored against."""

    def __init__(
        self, data: BeirData, qrels: Mapping[str, Mapping[str, int]], doc_ids: Sequence[str]
    ):
        self.queries = {q: data.queries[q] for q in qrels}
        self.qrels = {q: dict(d) for q, d in qrels.items()}
        self.doc_ids = list(doc_ids)
        self.doc_texts = [data.docs[d] for d in self.doc_ids]

    def evaluate(self, model: SpladeModel, config: TrainConfig) -> dict[str, float]:
        docs = encode_vectors(model, self.doc_texts, config.doc_max_length, "document")
        qids = list(self.queries)
        queries = encode_vectors(
            model, [self.queries[q] for q in qids], config.query_max_length, "query"
        )
        return evaluate_vectors(
            self.doc_ids, docs, dict(zip(qids, queries, strict=True)), self.qrels
        )


def _build_dev(config: TrainConfig, data: BeirData, dev_qids: Sequence[str]) -> DevSet | None:
    if config.eval_every <= 0:
        return None
    if config.dev_qrels:
        qrels = read_qrels_checked(Path(config.dev_qrels), data.docs, data.queries)
    else:
        qrels = {q: data.qrels[q] for q in dev_qids}
    if not qrels:
        return None
    if config.dev_corpus == "full":
        return DevSet(data, qrels, list(data.docs))
    from training.bm25 import BM25

    bm25 = BM25(list(data.docs), list(data.docs.values()))
    run = bm25.search({q: data.queries[q] for q in qrels}, k=config.dev_pool_depth)
    pool: dict[str, None] = {}
    for qid in qrels:
        pool.update(dict.fromkeys(qrels[qid]))
        pool.update(dict.fromkeys(run.get(qid, {})))
    return DevSet(data, qrels, list(pool))


def _negatives(
    config: TrainConfig, data: BeirData, qids: Sequence[str], searcher: Searcher | None
) -> dict[str, list[str]]:
    depth = config.negative_depth
    source = config.negative_source
    if searcher is not None and source in ("bm25", "engine"):
        return searcher_negatives(data, qids, searcher, depth)
    if source == "engine":
        assert config.engine_url and config.engine_index
        return searcher_negatives(
            data, qids, engine_searcher(config.engine_url, config.engine_index), depth
        )
    if source == "random":
        return {}
    parts = []
    if "bm25" in source:
        parts.append(bm25_negatives(data, qids, depth))
    if "splade" in source:
        from splade_es.encoder import SpladeEncoder

        encoder = SpladeEncoder.load(
            config.base_model,
            doc_max_length=config.doc_max_length,
            query_max_length=config.query_max_length,
        )
        parts.append(splade_negatives(data, qids, encoder, depth))
    return merge_negatives(*parts)


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


def train(config: TrainConfig, searcher: Searcher | None = None) -> TrainResult:
    """Fine-tune a SPLADE model; returns where the best model is and the logged history.

    `searcher` is an optional negative-mining hook `({qid: text}, k) -> {qid: [doc ids]}` (for
    example `training.data.engine_searcher(url, index)`); without it BM25 runs in process.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    config.validate()
    started = time.time()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        mixed_precision=_mixed_precision(config.mixed_precision, config.cpu),
        cpu=config.cpu,
        step_scheduler_with_optimizer=False,  # max_steps counts optimizer steps on any world size
    )
    set_seed(config.seed)
    main = accelerator.is_main_process

    data = load_beir(Path(config.beir_dir), config.train_split)
    teacher = (
        read_teacher_scores(Path(config.teacher_scores), data.docs, data.queries)
        if config.teacher_scores
        else None
    )
    all_qids = sorted(data.qrels)
    if config.max_train_queries:
        all_qids = all_qids[: config.max_train_queries]
    if config.eval_every > 0 and not config.dev_qrels:
        train_qids, dev_qids = split_dev(
            all_qids, config.dev_fraction, config.dev_max_queries, config.seed
        )
    else:
        train_qids, dev_qids = all_qids, []
    negatives = _negatives(config, data, train_qids, searcher)
    examples = build_examples(data, train_qids, negatives, teacher)
    sampler = BatchSampler(
        data,
        examples,
        config.batch_size,
        config.negatives,
        config.seed,
        teacher,
        config.negative_depth,
    )
    dev = _build_dev(config, data, dev_qids) if main else None
    loss_name = config.loss if config.loss != "auto" else ("margin-mse" if teacher else "infonce")

    model = SpladeModel.from_base(
        config.shape,  # type: ignore[arg-type]
        config.base_model,
        config.query_base_model,
        idf_texts=list(data.docs.values()) if config.shape == "inference-free" else None,
    )
    model.train()
    query_table = [p for n, p in model.named_parameters() if n == "query_weights"]
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "query_weights")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [
                p
                for n, p in model.named_parameters()
                if any(k in n for k in no_decay) and n != "query_weights"
            ],
            "weight_decay": 0.0,
        },
    ]
    if query_table:
        groups.append(
            {
                "params": query_table,
                "weight_decay": 0.0,
                "lr": config.query_weights_lr or config.lr * 100,
            }
        )
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * config.max_steps), config.max_steps
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    core: SpladeModel = accelerator.unwrap_model(model)

    checkpoint = out / "checkpoint"
    state: dict[str, Any] = {"step": 0, "best_ndcg": None, "best_step": None, "best_metrics": None}
    history: list[dict[str, Any]] = []
    if config.resume and (checkpoint / STATE_FILE).is_file():
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / STATE_FILE).read_text())
        history = state.pop("history", [])
        log.info("resumed from %s at step %d", checkpoint, state["step"])
    elif main:
        (out / "train_log.jsonl").unlink(missing_ok=True)
    if main:
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")

    reg_warmup = (
        config.reg_warmup_steps if config.reg_warmup_steps is not None else config.max_steps // 3
    )
    save_every = config.save_every or config.eval_every or config.max_steps
    world, rank = accelerator.num_processes, accelerator.process_index
    step = int(state["step"])
    bar = tqdm(
        total=config.max_steps,
        initial=step,
        disable=not (config.progress and main),
        unit="step",
        dynamic_ncols=True,
    )
    running: dict[str, float] = {}
    running_n = 0
    log_path = out / "train_log.jsonl"

    def record(entry: dict[str, Any]) -> None:
        history.append(entry)
        if main:
            with log_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    def save_model(folder: Path) -> None:
        if main:
            core.save(folder, config.doc_max_length, config.query_max_length)

    def evaluate_now() -> None:
        if dev is None:
            return
        metrics = dev.evaluate(core, config)
        entry = {"step": step, "dev": metrics}
        improved = state["best_ndcg"] is None or metrics["ndcg@10"] > state["best_ndcg"]
        if improved:
            state.update(best_ndcg=metrics["ndcg@10"], best_step=step, best_metrics=metrics)
            save_model(out)
        entry["best"] = improved
        record(entry)
        bar.write(
            f"step {step}: dev nDCG@10 {metrics['ndcg@10']:.4f} doc terms "
            f"{metrics['doc_terms']:.1f} query terms {metrics['query_terms']:.1f}"
            + (" (best)" if improved else "")
        )

    def save_checkpoint() -> None:
        accelerator.wait_for_everyone()
        accelerator.save_state(str(checkpoint))
        if main:
            payload = dict(state, step=step, history=history)
            (checkpoint / STATE_FILE).write_text(json.dumps(payload, indent=2) + "\n")

    if step == 0 and dev is not None and not history:
        evaluate_now()  # the base model's dev score: fine-tuning must beat it to be kept
    limit = min(config.max_steps, config.stop_at_step or config.max_steps)
    while step < limit:
        lam_d = losses.warmup_lambda(config.lambda_d, step, reg_warmup)
        lam_q = losses.warmup_lambda(config.lambda_q, step, reg_warmup)
        for micro in range(config.grad_accum):
            batch = sampler.batch((step * config.grad_accum + micro) * world + rank)
            q_in = tokenize(core.tokenizer, batch.queries, config.query_max_length).to(
                accelerator.device
            )
            d_in = tokenize(core.tokenizer, batch.docs, config.train_doc_max_length).to(
                accelerator.device
            )
            sync = micro == config.grad_accum - 1
            context = accelerator.no_sync(model) if not sync and world > 1 else _null()
            with context:
                q_rep, d_rep = model(
                    q_in["input_ids"],
                    q_in["attention_mask"],
                    d_in["input_ids"],
                    d_in["attention_mask"],
                )
                q_rep, d_rep = q_rep.float(), d_rep.float()
                terms: dict[str, torch.Tensor] = {}
                if loss_name == "infonce":
                    terms["rank"] = losses.info_nce(q_rep, d_rep)
                else:
                    own = losses.own_scores(q_rep, d_rep, batch.n_negatives)
                    assert batch.teacher is not None
                    target = torch.tensor(batch.teacher, device=own.device, dtype=own.dtype)
                    distil = (
                        losses.margin_mse if loss_name == "margin-mse" else losses.kl_distillation
                    )
                    terms["rank"] = distil(own, target)
                    if config.contrastive_weight > 0:
                        terms["infonce"] = config.contrastive_weight * losses.info_nce(q_rep, d_rep)
                terms["flops_d"] = losses.flops(d_rep)
                q_reg = losses.flops(q_rep) if config.query_reg == "flops" else losses.l1(q_rep)
                terms[f"{config.query_reg}_q"] = q_reg
                total = sum(v for k, v in terms.items() if k in ("rank", "infonce"))
                total = total + lam_d * terms["flops_d"] + lam_q * q_reg
                accelerator.backward(total / config.grad_accum)
            for key, value in terms.items():
                running[key] = running.get(key, 0.0) + float(value.detach())
            running["loss"] = running.get("loss", 0.0) + float(total.detach())
            running["doc_terms"] = running.get("doc_terms", 0.0) + active_terms(d_rep.detach())
            running["query_terms"] = running.get("query_terms", 0.0) + active_terms(q_rep.detach())
            running_n += 1
            if not math.isfinite(float(total.detach())):
                raise FloatingPointError(f"loss is {float(total)} at step {step}")
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        state["step"] = step
        bar.update(1)
        if step % config.log_every == 0 or step == config.max_steps:
            entry = {k: v / running_n for k, v in running.items()}
            entry.update(step=step, lambda_d=lam_d, lambda_q=lam_q, lr=scheduler.get_last_lr()[0])
            record(entry)
            bar.set_postfix(
                loss=f"{entry['loss']:.3f}",
                d=f"{entry['doc_terms']:.0f}",
                q=f"{entry['query_terms']:.0f}",
            )
            running, running_n = {}, 0
        due = config.eval_every > 0 and (step % config.eval_every == 0 or step == limit)
        if due and main:
            evaluate_now()
        if step % save_every == 0 or step == limit:
            save_checkpoint()
    bar.close()
    accelerator.wait_for_everyone()
    save_model(out / "last")
    if dev is None:
        save_model(out)  # no dev evaluation: the final model is the result
    return TrainResult(
        out=out,
        step=step,
        best_step=state.get("best_step"),
        best_metrics=state.get("best_metrics"),
        history=history,
        wall_seconds=time.time() - started,
    )


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


__all__ = ["DataError", "TrainConfig", "TrainResult", "load_config_file", "train"]
