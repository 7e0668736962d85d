"""Measuring tools for `splade-es bench gpu`: timed model passes, peak memory, FLOP estimates.

Kept apart from the phases (benchmarks/gpu.py) so each phase is a short recipe over these. Timings
synchronise the device; the model-only timing tokenizes every batch first, so it is the model and
the pooling alone (what the FLOP share is about), while `encode_documents` timings (through
`encoder_speed.throughput`) are what a user sees, sparse conversion on the CPU included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import cycle

import torch

from splade_es.encoder import MLMSide
from splade_es.pooling import splade_pool

Pool = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}
"""Dense bfloat16 peak (no sparsity) by a substring of `torch.cuda.get_device_name()`."""
MIB = 1 << 20


def peak_tflops(device_name: str, override: float | None) -> float | None:
    """The card's dense bf16 peak: `--peak-tflops`, else by name (H100 / H200), else unknown."""
    if override:
        return override
    return next((v for k, v in PEAK_TFLOPS.items() if k in device_name), None)


def flops_per_doc(config: object, tokens: int) -> float | None:
    """Forward FLOPs of one BERT-style masked-LM document of `tokens` real tokens.

    2 x (transformer Linear parameters: 4h² + 2hi per layer) x tokens, plus attention scores and
    mixing (4 x tokens² x h per layer), plus the MLM head (its h x h transform and the h x vocab
    projection, 2 FLOPs per weight, per token; the packed pooling projects real tokens only).
    Embedding lookups cost no multiplications. None for configs without BERT's field names."""
    try:
        h = int(config.hidden_size)  # type: ignore[attr-defined]
        layers = int(config.num_hidden_layers)  # type: ignore[attr-defined]
        inner = int(config.intermediate_size)  # type: ignore[attr-defined]
        vocab = int(config.vocab_size)  # type: ignore[attr-defined]
    except AttributeError:
        return None
    dense = 2.0 * layers * (4 * h * h + 2 * h * inner) * tokens
    attention = 4.0 * layers * tokens * tokens * h
    head = 2.0 * (h * h + h * vocab) * tokens
    return dense + attention + head


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    """torch.cuda.max_memory_allocated in MiB since the last reset; None off CUDA."""
    return torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None


def filled_texts(corpus: Sequence[str], tokenizer: object, length: int, count: int) -> list[str]:
    """`count` texts each at least `length` tokens long, made by joining consecutive corpus texts,
    so that truncation to `length` gives every document exactly `length` tokens."""
    source: Iterator[str] = cycle(corpus)
    texts = []
    for _ in range(count):
        parts = [next(source)]
        while len(tokenizer(" ".join(parts))["input_ids"]) < length:  # type: ignore[operator]
            parts.append(next(source))
        texts.append(" ".join(parts))
    return texts


def token_lengths(side: MLMSide, texts: Sequence[str], max_length: int) -> list[int]:
    ids = side.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return [len(i) for i in ids]


@dataclass(frozen=True)
class Pass:
    """One timed pass of the model and pooling over pre-tokenized batches."""

    docs: int
    seconds: float
    real_tokens: int
    padded_tokens: int
    peak_mib: float | None
    flops: float | None

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0

    @property
    def tflops(self) -> float | None:
        return self.flops / self.seconds / 1e12 if self.flops and self.seconds > 0 else None

    def as_dict(self, peak: float | None) -> dict[str, float | int | None]:
        tflops = self.tflops
        return {
            "docs": self.docs,
            "seconds": round(self.seconds, 4),
            "docs_per_s": round(self.docs_per_s, 1),
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            "padding_share": round(1 - self.real_tokens / max(1, self.padded_tokens), 4),
            "peak_mib": None if self.peak_mib is None else round(self.peak_mib, 1),
            # 3 significant digits: a tiny model on a CPU does a few GFLOP/s, which 2 decimals
            # of TFLOP/s rounded to 0 on a busy machine
            "tflops": None if tflops is None else float(f"{tflops:.3g}"),
            "share_of_bf16_peak": None if tflops is None or not peak else round(tflops / peak, 4),
        }


def model_pass(
    side: MLMSide,
    texts: Sequence[str],
    max_length: int,
    batches: Sequence[Sequence[int]],
    pool: Pool = splade_pool,
) -> Pass:
    """Time `pool` over `batches` (index lists into `texts`), after one untimed warm-up batch."""
    device = side.device
    encoded = [
        side.tokenizer(
            [texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        for idx in batches
    ]
    real = sum(int(b["attention_mask"].sum()) for b in encoded)
    padded = sum(b["input_ids"].numel() for b in encoded)
    per_doc = [int(n) for b in encoded for n in b["attention_mask"].sum(dim=1).tolist()]
    with torch.inference_mode():
        pool(side.model, encoded[0]["input_ids"], encoded[0]["attention_mask"])
        synchronize(device)
        reset_peak(device)
        started = time.perf_counter()
        for batch in encoded:
            pool(side.model, batch["input_ids"], batch["attention_mask"])
        synchronize(device)
        seconds = time.perf_counter() - started
    estimates = [flops_per_doc(side.model.config, n) for n in per_doc]
    flops = None if any(e is None for e in estimates) else sum(e or 0.0 for e in estimates)
    return Pass(len(per_doc), seconds, real, padded, peak_mib(device), flops)


def in_order(count: int, batch_size: int) -> list[list[int]]:
    """Batches in input order, no length sorting: the padding a plain loop pays."""
    return [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]
