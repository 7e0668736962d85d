"""Encode throughput on SciFact: splade-es vs a naive transformers loop vs sentence-transformers.

All three encode the same documents with the same model at the same max length, one after the
other in one process, and must agree on the vectors (checked). Writes a Markdown report.

    python -m splade_es.benchmarks.encode_throughput --docs 512 --max-length 256
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import torch

from splade_es.corpus import read_documents
from splade_es.encoder import SpladeEncoder
from splade_es.models import DEFAULT_MODEL, resolve

from . import paths

RESULTS = paths.RESULTS


def naive_loop(encoder: SpladeEncoder, texts: list[str], max_length: int) -> list[dict[str, float]]:
    """The common helper shape: one document at a time, full `[1, L, V]` logits, then max."""
    side = encoder.document_side
    out = []
    for text in texts:
        batch = side.tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            logits = side.model(**batch).logits
            weights = (torch.log1p(torch.relu(logits)) * batch["attention_mask"][..., None]).amax(
                1
            )[0]
        idx = weights.nonzero().flatten().tolist()
        out.append({side.id_to_token[i]: float(weights[i]) for i in idx})
    return out


def ours(encoder: SpladeEncoder, texts: list[str], batch_size: int) -> list[dict[str, float]]:
    return [v.as_dict() for v in encoder.encode_documents(texts, batch_size=batch_size)]


def sentence_transformers(
    model_path: str, texts: list[str], max_length: int, batch_size: int
) -> Callable[[], list[dict[str, float]]]:
    """sentence-transformers' SparseEncoder (MLMTransformer + SpladePooling) on the same weights."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    mlm = Transformer(model_path, transformer_task="fill-mask", max_seq_length=max_length)
    model = SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu")

    def run() -> list[dict[str, float]]:
        emb = model.encode_document(texts, batch_size=batch_size, convert_to_tensor=True)
        out = []
        for row in emb:
            dense = row.to_dense()
            idx = dense.nonzero().flatten().tolist()
            out.append({model.tokenizer.convert_ids_to_tokens(i): float(dense[i]) for i in idx})
        return out

    return run


def agree(a: list[dict[str, float]], b: list[dict[str, float]], special: set[str]) -> float:
    """Largest absolute weight difference between two encodings (special tokens ignored)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for key in (set(x) | set(y)) - special:
            worst = max(worst, abs(x.get(key, 0.0) - y.get(key, 0.0)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--corpus", type=Path, default=paths.SCIFACT / "corpus.jsonl")
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS / "encode_throughput.md")
    args = parser.parse_args()

    texts = [d.full_text for d in islice(read_documents(args.corpus), args.docs)]
    encoder = SpladeEncoder.load(args.model, device="cpu", doc_max_length=args.max_length)
    special = set(encoder.document_side.tokenizer.all_special_tokens)
    encoder.encode_documents(texts[:8])  # warm-up

    timings: dict[str, float] = {}
    results: dict[str, list[dict[str, float]]] = {}
    runners: dict[str, Callable[[], list[dict[str, float]]]] = {
        "splade-es (length-sorted batches, packed-token max pooling)": lambda: ours(
            encoder, texts, args.batch_size
        ),
        "naive transformers loop (1 doc at a time, full logits)": lambda: naive_loop(
            encoder, texts, args.max_length
        ),
        "sentence-transformers SparseEncoder": sentence_transformers(
            resolve(args.model), texts, args.max_length, args.batch_size
        ),
    }
    for name, run in runners.items():
        start = time.perf_counter()
        results[name] = run()
        timings[name] = time.perf_counter() - start
        print(f"{name}: {len(texts) / timings[name]:.1f} docs/s", flush=True)

    names = list(runners)
    base = timings[names[0]]
    lines = [
        "# Encode throughput: SciFact, "
        + f"{len(texts)} docs, max length {args.max_length}, model `{args.model}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, CPU; "
        f"batch size {args.batch_size}. One run, side by side in one process.",
        "",
        "| encoder | seconds | docs/s | splade-es speed-up | max weight diff vs splade-es |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        diff = agree(results[names[0]], results[name], special)
        lines.append(
            f"| {name} | {timings[name]:.1f} | {len(texts) / timings[name]:.1f} | "
            f"{timings[name] / base:.2f}x | {diff:.2e} |"
        )
    lines += [
        "",
        "Command: `python -m splade_es.benchmarks.encode_throughput "
        + f"--docs {args.docs} --max-length {args.max_length} --batch-size {args.batch_size}`",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(json.dumps({k: len(texts) / v for k, v in timings.items()}))


if __name__ == "__main__":
    main()
