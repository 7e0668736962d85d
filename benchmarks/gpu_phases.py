"""The phases of `splade-es bench gpu` (see benchmarks/gpu.py): each takes the run's context and
a deadline and returns its results as plain JSON data, `{"rows": [...], ...}`.

A phase checks the deadline before each measurement it starts and lists what it left out under
`not_run`; `Skip` says a phase cannot run here at all (and why).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import torch

from splade_es.corpus import parse_document_line, read_documents
from splade_es.encoder import OutOfMemory, SpladeEncoder, pick_device, token_batches
from splade_es.models import resolve
from splade_es.pooling import naive_splade_pool, splade_pool

from .encoder_speed import Contender, max_diff, random_bert_base, throughput
from .gpu_measure import (
    filled_texts,
    in_order,
    model_pass,
    peak_mib,
    peak_tflops,
    reset_peak,
    token_lengths,
)

Results = dict[str, Any]
Weights = dict[str, float]
OOM_TOLERANCE = 1e-3
"""Largest weight difference allowed between a split batch's vectors and small-batch ones (float32;
GPU kernels may pick other algorithms for other batch shapes)."""


class Skip(Exception):
    """This phase cannot run here; the message says why."""


def plain_beir(folder: Path, work: Path) -> Path:
    """`folder` itself when it holds corpus.jsonl, else a copy in `work` with corpus.jsonl.gz
    unpacked (the GPU machine gets SciFact gzipped, to fit the carried files)."""
    if (folder / "corpus.jsonl").is_file():
        return folder
    packed = folder / "corpus.jsonl.gz"
    if not packed.is_file():
        raise ValueError(f"--scifact {folder}: no corpus.jsonl or corpus.jsonl.gz there")
    target = work / "scifact"
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("corpus.jsonl.gz"))
    with gzip.open(packed, "rb") as src, (target / "corpus.jsonl").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


@dataclass
class Context:
    """What every phase shares: options, device, corpus texts, the models it built."""

    args: argparse.Namespace
    device: torch.device
    peak: float | None
    scifact: Path
    corpus: list[str]
    work: Path
    models: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    """What each built model is, for the report."""

    @classmethod
    def create(cls, args: argparse.Namespace, work: Path) -> Context:
        device = pick_device(args.device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        scifact = plain_beir(args.scifact, work)
        corpus = [d.full_text for d in read_documents(scifact / "corpus.jsonl")]
        return cls(args, device, peak_tflops(name, args.peak_tflops), scifact, corpus, work)

    @property
    def fast_dtype(self) -> str:
        """The dtype the GPU phases run in: bfloat16 on CUDA, float32 on CPU."""
        return "bfloat16" if self.device.type == "cuda" else "float32"

    def model(self, name: str) -> str:
        """A model folder: splade-tiny (the bundled model), or `bert-base`: a BertForMaskedLM of
        BERT-base size (or `--base-config small`) with random weights and splade-tiny's tokenizer,
        which costs what a trained one does."""
        if name not in self.models:
            if name == "bert-base":
                from transformers import BertConfig

                config = BertConfig()
                if self.args.base_config == "small":
                    config = BertConfig(
                        hidden_size=64,
                        num_hidden_layers=1,
                        num_attention_heads=2,
                        intermediate_size=128,
                    )
                folder = self.work / "bert-base"
                random_bert_base(folder, resolve("splade-tiny"), config)
                self.models[name] = str(folder)
                terms = sparse_like(folder, resolve("splade-tiny"), self.corpus[:16])
                self.notes["bert-base"] = (
                    f"BertForMaskedLM, {config.num_hidden_layers} layers, hidden "
                    f"{config.hidden_size}, random weights, splade-tiny's tokenizer; output bias "
                    f"shifted so SciFact documents get ~{terms} terms at 256 tokens, as splade-tiny"
                )
            else:
                self.models[name] = resolve(name)
        return self.models[name]

    def load(self, name: str, dtype: str, length: int, **kw: Any) -> SpladeEncoder:
        return SpladeEncoder.load(
            self.model(name), device=str(self.device), dtype=dtype, doc_max_length=length, **kw
        )

    def free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def sparse_like(folder: Path, reference: str, texts: list[str], length: int = 256) -> int:
    """Shift the random model's output bias so its vectors have as many terms as `reference`'s.

    Random weights make about half of all logits positive: ~15,000 terms a document, whose sparse
    conversion on the CPU would then dominate every end-to-end number (a trained SPLADE keeps a
    few hundred). After the shift the model costs what a trained one does, conversion included.
    Returns the reference's median term count."""
    from transformers import AutoModelForMaskedLM

    ref = SpladeEncoder.load(reference, device="cpu", doc_max_length=length)
    terms = sorted(len(v.as_dict()) for v in ref.encode_documents(texts))[len(texts) // 2]
    model = AutoModelForMaskedLM.from_pretrained(folder)
    batch = ref.document_side.tokenizer(
        texts, padding=True, truncation=True, max_length=length, return_tensors="pt"
    )
    with torch.inference_mode():
        pooled = splade_pool(model, batch["input_ids"], batch["attention_mask"])
    # log1p(relu(max logit)): the k-th largest pooled weight is log1p of the k-th largest logit
    kth = pooled.topk(max(1, terms), dim=1).values[:, -1].median()
    shift = float(torch.expm1(kth))
    with torch.no_grad():
        model.get_output_embeddings().bias -= shift
    model.save_pretrained(folder)
    return terms


def as_dicts(vectors: Sequence[Any]) -> list[Weights]:
    return [v.as_dict() for v in vectors]


def encoding(encoder: SpladeEncoder, batch_size: int) -> Callable[[list[str]], list[Weights]]:
    return lambda texts: as_dicts(encoder.encode_documents(texts, batch_size=batch_size))


def over(deadline: float) -> bool:
    return time.monotonic() > deadline


def encoder_phase(ctx: Context, deadline: float) -> Results:
    """docs/s per model x length x dtype: end to end and model + pooling alone."""
    a = ctx.args
    rows: list[dict[str, Any]] = []
    not_run: list[str] = []
    for model in a.models:
        for length in a.lengths:
            if over(deadline):
                not_run.append(f"{model} at {length} tokens: budget spent")
                continue
            encoders: dict[str, SpladeEncoder] = {}
            for dtype in a.dtypes:
                if dtype == "float16" and ctx.device.type != "cuda":
                    not_run.append(f"{model} at {length} tokens, float16: CUDA only")
                    continue
                encoders[dtype] = ctx.load(model, dtype, length)
            side = next(iter(encoders.values())).document_side
            texts = filled_texts(ctx.corpus, side.tokenizer, length, a.docs)
            contenders = [
                Contender(d, encoding(e, a.batch_size), lambda t: []) for d, e in encoders.items()
            ]
            timed = {r.variant: r for r in throughput(model, contenders, texts, a.repeats)}
            batches = token_batches(token_lengths(side, texts, length), a.batch_size)
            for dtype, encoder in encoders.items():
                measured = model_pass(encoder.document_side, texts, length, batches)
                rows.append(
                    {
                        "model": model,
                        "length": length,
                        "dtype": dtype,
                        "batch_size": a.batch_size,
                        "encode_docs_per_s": round(timed[dtype].docs_per_s, 1),
                        "max_diff_vs_float32": timed[dtype].max_diff,
                        **measured.as_dict(ctx.peak),
                    }
                )
            del encoders, contenders
            ctx.free()
    return {"rows": rows, "not_run": not_run}


def batching_phase(ctx: Context, deadline: float) -> Results:
    """Natural-length SciFact documents: input order vs length-sorted vs a token cap per batch."""
    a = ctx.args
    length = max(a.lengths)
    encoder = ctx.load("bert-base", ctx.fast_dtype, length)
    side = encoder.document_side
    texts = ctx.corpus[: a.docs]
    lengths = token_lengths(side, texts, length)
    plans: list[tuple[str, list[list[int]], int | None]] = [
        ("input order, 32 per batch", in_order(len(texts), 32), None),
        ("length-sorted, 32 per batch", token_batches(lengths, 32), None),
    ]
    plans += [
        (f"length-sorted, <= {cap} tokens per batch", token_batches(lengths, 4096, cap), cap)
        for cap in a.max_tokens
    ]
    rows, not_run = [], []
    for name, batches, cap in plans:
        if over(deadline):
            not_run.append(f"{name}: budget spent")
            continue
        measured = model_pass(side, texts, length, batches)
        row: dict[str, Any] = {"plan": name, "batches": len(batches), **measured.as_dict(ctx.peak)}
        if name != plans[0][0]:  # what encode_documents does with this plan, end to end
            encoder.max_tokens_per_batch = cap
            started = time.perf_counter()
            encoder.encode_documents(texts, batch_size=4096 if cap else 32)
            row["encode_docs_per_s"] = round(len(texts) / (time.perf_counter() - started), 1)
        rows.append(row)
    return {
        "model": "bert-base",
        "dtype": ctx.fast_dtype,
        "max_length": length,
        "rows": rows,
        "not_run": not_run,
    }


def pooling_phase(ctx: Context, deadline: float) -> Results:
    """The packed pooling vs the plain one that materialises `[batch, length, vocab]` logits."""
    a = ctx.args
    rows, not_run = [], []
    for length in a.lengths:
        if over(deadline):
            not_run.append(f"{length} tokens: budget spent")
            continue
        encoder = ctx.load("bert-base", ctx.fast_dtype, length)
        side = encoder.document_side
        texts = filled_texts(ctx.corpus, side.tokenizer, length, min(a.docs, 8 * a.pool_batch_size))
        batches = token_batches(token_lengths(side, texts, length), a.pool_batch_size)
        vocab = side.model.get_output_embeddings().out_features
        itemsize = torch.empty((), dtype=side.model.dtype).element_size()
        logits_mib = a.pool_batch_size * length * vocab * itemsize / (1 << 20)
        sample = side.tokenizer(
            texts[: a.pool_batch_size],
            padding=True,
            truncation=True,
            max_length=length,
            return_tensors="pt",
        ).to(ctx.device)
        with torch.inference_mode():
            packed = splade_pool(side.model, sample["input_ids"], sample["attention_mask"])
            plain = naive_splade_pool(side.model, sample["input_ids"], sample["attention_mask"])
            diff = float((packed.float() - plain.float()).abs().max())
        for name, pool in (
            ("packed (splade_es.pooling)", splade_pool),
            ("plain", naive_splade_pool),
        ):
            measured = model_pass(side, texts, length, batches, pool)
            rows.append(
                {
                    "length": length,
                    "pooling": name,
                    "batch_size": a.pool_batch_size,
                    "logits_mib_per_batch": round(logits_mib, 1) if name == "plain" else None,
                    "max_diff_packed_vs_plain": diff,
                    **measured.as_dict(ctx.peak),
                }
            )
        del encoder, side, sample
        ctx.free()
    return {"model": "bert-base", "dtype": ctx.fast_dtype, "rows": rows, "not_run": not_run}


class _SplitCounter(logging.Handler):
    """Counts the encoder's 'out of memory ... splitting' warnings: one per split batch."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.splits = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "out of memory" in record.getMessage():
            self.splits += 1


def oom_phase(ctx: Context, deadline: float) -> Results:
    """One batch of every document, too big for the memory: split and retried, nothing lost.

    On CUDA (unless `--inject-oom-tokens`) the allocator is capped at what is allocated now plus
    `--oom-headroom-mib`, so the out-of-memory is the real one; on CPU a forward pre-hook raises
    torch's out-of-memory error above `--inject-oom-tokens` tokens (default: 2 documents' worth)."""
    a = ctx.args
    length = min(256, max(a.lengths))
    encoder = ctx.load("bert-base", "float32", length)
    side = encoder.document_side
    texts = filled_texts(ctx.corpus, side.tokenizer, length, a.oom_docs)
    want = as_dicts(encoder.encode_documents(texts, batch_size=8))
    injected = a.inject_oom_tokens or (None if ctx.device.type == "cuda" else 2 * length)
    counter = _SplitCounter()
    logging.getLogger("splade_es.encoder").addHandler(counter)
    refused: list[int] = []

    def refuse(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        tokens = kwargs["input_ids"].numel()
        if injected is not None and tokens > injected:
            refused.append(tokens)
            raise OutOfMemory(f"injected: {tokens} tokens")

    hook = side.model.register_forward_pre_hook(refuse, with_kwargs=True)
    side.oom_token_limit = None
    if injected is None:
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(ctx.device).total_memory
        cap = torch.cuda.memory_allocated(ctx.device) + a.oom_headroom_mib * (1 << 20)
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), ctx.device)
    started = time.perf_counter()
    try:
        got = as_dicts(encoder.encode_documents(texts, batch_size=len(texts)))
    finally:
        hook.remove()
        logging.getLogger("splade_es.encoder").removeHandler(counter)
        if ctx.device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
    seconds = time.perf_counter() - started
    same_count = len(got) == len(want)
    diff = max_diff(want, got) if same_count else None
    empty = sum(1 for v in got if not v)
    fired = side.oom_token_limit is not None
    return {
        "mode": "injected" if injected is not None else "real CUDA out-of-memory under a cap",
        "docs": len(texts),
        "length": length,
        "vectors": len(got),
        "empty_vectors": empty,
        "splits": counter.splits,
        "learned_token_limit": side.oom_token_limit,
        "max_diff_vs_small_batches": diff,
        "seconds": round(seconds, 2),
        "passed": fired
        and same_count
        and empty == 0
        and diff is not None
        and diff <= OOM_TOLERANCE,
        "rows": [],
    }


def corpus_file(ctx: Context, docs: int) -> tuple[Path, list[str]]:
    """A JSONL corpus of `docs` documents with distinct ids: Wikipedia passages when the file is
    there, else SciFact's documents over and over; and their texts, for the encoder alone."""
    path = ctx.work / f"beam-corpus-{docs}.jsonl"
    texts = []
    with path.open("w", encoding="utf-8") as out:
        if ctx.args.wikipedia_file.is_file():
            for i, doc in enumerate(wikipedia(ctx.args.wikipedia_file, docs)):
                out.write(json.dumps({"_id": f"w{i}", "title": doc[0], "text": doc[1]}) + "\n")
                texts.append(f"{doc[0]} {doc[1]}".strip() if doc[0] else doc[1])
        else:
            for i, text in enumerate(islice(cycle(ctx.corpus), docs)):
                out.write(json.dumps({"_id": f"d{i}", "title": "", "text": text}) + "\n")
                texts.append(text)
    return path, texts


def wikipedia(path: Path, count: int) -> list[tuple[str, str]]:
    """(title, text) of the first `count` passages of a gzipped BEIR corpus."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in islice(handle, count):
            doc = parse_document_line(line)
            out.append((doc.title, doc.text))
    return out


def beam_phase(ctx: Context, deadline: float) -> Results:
    """The pipeline with `--beam-workers` processes sharing the device vs the encoder alone.

    The pipeline runs on all documents and, budget permitting, on a quarter of them: the
    difference is its steady rate, without the fixed cost of starting workers and loading models
    (which a short run on a fast GPU is mostly made of)."""
    a = ctx.args
    length = 256 if 256 in a.lengths else max(a.lengths)
    path, texts = corpus_file(ctx, a.beam_docs)
    started = time.perf_counter()
    encoder = ctx.load("bert-base", "auto", length)
    loaded = time.perf_counter() - started
    encoder.encode_documents(texts[:32], batch_size=32)
    started = time.perf_counter()
    vectors = encoder.encode_documents(texts, batch_size=32)
    alone = time.perf_counter() - started
    if len(vectors) != len(texts):
        raise RuntimeError(f"the encoder returned {len(vectors)} vectors for {len(texts)} texts")
    del encoder, vectors
    ctx.free()
    alone_rate = len(texts) / alone
    rows: list[dict[str, Any]] = [
        {"setup": "encoder alone (encode call, model loaded)", "docs": len(texts),
         "seconds": round(alone, 2), "docs_per_s": round(alone_rate, 1)},
        {"setup": "encoder alone, model load included", "docs": len(texts),
         "seconds": round(alone + loaded, 2), "docs_per_s": round(len(texts) / (alone + loaded), 1)},
    ]  # fmt: skip
    full = pipeline_seconds(ctx, path, len(texts), length)
    label = f"Beam FnApiRunner, {a.beam_workers} workers, end to end"
    rows.append({"setup": label, "docs": len(texts), "seconds": round(full, 2),
                 "docs_per_s": round(len(texts) / full, 1)})  # fmt: skip
    results: dict[str, Any] = {
        "model": "bert-base",
        "dtype": "auto (bfloat16 on CUDA, float32 on CPU)",
        "max_length": length,
        "corpus": "wikipedia" if a.wikipedia_file.is_file() else "scifact, repeated",
        "end_to_end_vs_encoder": round(len(texts) / full / alone_rate, 3),
        "rows": rows,
    }
    quarter = len(texts) // 4
    if quarter and not over(deadline):
        small = ctx.work / "beam-corpus-quarter.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        small.write_text("".join(lines[:quarter]), encoding="utf-8")
        part = pipeline_seconds(ctx, small, quarter, length)
        rows.append({"setup": label, "docs": quarter, "seconds": round(part, 2),
                     "docs_per_s": round(quarter / part, 1)})  # fmt: skip
        if full > part:
            steady = (len(texts) - quarter) / (full - part)
            results["steady_docs_per_s"] = round(steady, 1)
            results["steady_vs_encoder"] = round(steady / alone_rate, 3)
    return results


def pipeline_seconds(ctx: Context, corpus: Path, docs: int, length: int) -> float:
    """Seconds of one pipeline run over `corpus` to JSONL; every document must be written."""
    from splade_es.pipelines.index_corpus import run

    runner = ["--runner=FnApiRunner"]
    if ctx.args.beam_workers > 1:
        runner += [
            f"--direct_num_workers={ctx.args.beam_workers}",
            "--direct_running_mode=multi_processing",
        ]
    device = [] if ctx.device.type == "cuda" else [f"--device={ctx.device}"]
    out = ctx.work / f"beam-out-{docs}"
    summary = run(
        [
            *runner,
            f"--input={corpus}",
            f"--output={out / 'encoded.jsonl'}",
            f"--model={ctx.model('bert-base')}",
            f"--doc_max_length={length}",
            "--encode_batch_size=32",
            *device,
        ]
    )
    if summary.written != docs or not summary.adds_up():
        raise RuntimeError(f"the pipeline lost documents: {summary.line()}")
    return summary.seconds


def training_phase(ctx: Context, deadline: float) -> Results:
    """`splade-es train` on SciFact for `--train-steps` steps (bf16 on CUDA), in this process."""
    from splade_es.training.cli import train

    a = ctx.args
    out = ctx.work / "train"
    argv = [
        f"--beir-dir={ctx.scifact}",
        f"--out={out}",
        f"--base-model={ctx.model('bert-base')}",
        f"--max-steps={a.train_steps}",
        f"--batch-size={a.train_batch_size}",
        # the steps are timed: no mining, teacher scoring or merge around them
        "--negative-source=random",
        "--teacher=none",
        "--merge-weight=1",
        "--eval-every=0",
        f"--log-every={max(1, a.train_steps // 5)}",
        f"--mixed-precision={'bf16' if ctx.device.type == 'cuda' else 'no'}",
        "--no-progress",
    ]
    if ctx.device.type == "cpu":
        argv.append("--cpu")
    if a.train_queries:
        config = ctx.work / "train-config.json"
        config.write_text(json.dumps({"max_train_queries": a.train_queries}))
        argv.append(f"--config={config}")
    reset_peak(ctx.device)
    started = time.perf_counter()
    train.main(argv, standalone_mode=False)
    wall = time.perf_counter() - started
    peak = peak_mib(ctx.device)
    peak = None if peak is None else round(peak, 1)
    history = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    final: dict[str, Any] = next((h for h in reversed(history) if "train_runtime" in h), {})
    losses = [h["loss"] for h in history if "loss" in h]
    return {
        "model": "bert-base",
        "steps": a.train_steps,
        "batch_size": a.train_batch_size,
        "mixed_precision": "bf16" if ctx.device.type == "cuda" else "no",
        "rows": [
            {
                "steps_per_s": final.get("train_steps_per_second"),
                "samples_per_s": final.get("train_samples_per_second"),
                "train_runtime_s": final.get("train_runtime"),
                "wall_s_with_setup_and_export": round(wall, 1),
                "peak_mib": peak,
                "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None,
            }
        ],
    }


def wikipedia_phase(ctx: Context, deadline: float) -> Results:
    """The first `--wikipedia` passages encoded with the BERT-base model (stops at the budget)."""
    a = ctx.args
    if not a.wikipedia:
        raise Skip("not asked (--wikipedia N)")
    if not a.wikipedia_file.is_file():
        raise Skip(f"{a.wikipedia_file} is not here")
    passages = wikipedia(a.wikipedia_file, a.wikipedia)
    texts = [f"{t} {x}".strip() if t else x for t, x in passages]
    encoder = ctx.load(
        "bert-base", "auto", 256, max_tokens_per_batch=max(a.max_tokens, default=None)
    )
    encoder.encode_documents(texts[:32])
    done, started = 0, time.perf_counter()
    for start in range(0, len(texts), 8192):
        if over(deadline):
            break
        done += len(encoder.encode_documents(texts[start : start + 8192], batch_size=1024))
    seconds = time.perf_counter() - started
    return {
        "model": "bert-base",
        "max_length": 256,
        "rows": [
            {
                "passages_asked": len(texts),
                "passages_encoded": done,
                "seconds": round(seconds, 2),
                "docs_per_s": round(done / seconds, 1),
            }
        ],
    }


PHASES: dict[str, Callable[[Context, float], Results]] = {
    "encoder": encoder_phase,
    "batching": batching_phase,
    "pooling": pooling_phase,
    "oom": oom_phase,
    "beam": beam_phase,
    "training": training_phase,
    "wikipedia": wikipedia_phase,
}
