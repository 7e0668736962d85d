"""Bulk-encoding throughput on SciFact: the library encoder alone vs the Beam pipeline on the
FnApiRunner (2 worker processes) vs the pipeline on a local Flink cluster (2 TaskManagers, PROCESS
SDK workers). Same documents, model and max length; every setup writes JSONL (no engine) and must
write every document. Writes a Markdown report and a PNG.

    heavy python -m splade_es.benchmarks.runners --docs 5183 --max-length 256

Pipeline times are end to end as a user sees them (submission, worker start, model load per
worker, encode, write); the encoder line is the encode call alone after loading.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from splade_es.models import DEFAULT_MODEL

from . import paths

RESULTS = paths.RESULTS
SCIFACT = paths.SCIFACT


@dataclass(frozen=True)
class Measurement:
    setup: str
    docs: int
    seconds: float
    note: str

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds


def library_encoder(corpus: Path, docs: int, model: str, max_length: int) -> Measurement:
    from splade_es.corpus import read_documents
    from splade_es.encoder import SpladeEncoder

    texts = [d.full_text for d in islice(read_documents(corpus), docs)]
    encoder = SpladeEncoder.load(model, device="cpu", doc_max_length=max_length)
    started = time.perf_counter()
    vectors = encoder.encode_documents(texts, batch_size=32)
    seconds = time.perf_counter() - started
    assert len(vectors) == docs
    return Measurement("library encoder (1 process)", docs, seconds, "encode call, model loaded")


def pipeline(
    setup: str, runner_args: list[str], corpus: Path, docs: int, model: str, max_length: int
) -> Measurement:
    from splade_es.pipelines.index_corpus import run

    with tempfile.TemporaryDirectory() as out:
        summary = run(
            [
                *runner_args,
                "--input",
                str(corpus),
                "--output",
                f"{out}/encoded.jsonl",
                "--model",
                model,
                "--doc_max_length",
                str(max_length),
                "--device",
                "cpu",
            ]
        )
    if summary.written != docs or not summary.adds_up():
        raise SystemExit(f"{setup}: {summary.line()} (expected {docs} written)")
    return Measurement(setup, docs, summary.seconds, "end to end")


def write_report(results: list[Measurement], args: argparse.Namespace, command: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    png = out / "runners.png"
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh([r.setup for r in results][::-1], [r.docs_per_s for r in results][::-1])
    ax.set_xlabel("documents / second (higher is better)")
    ax.set_title(f"SciFact, {results[0].docs} docs, {args.model}, max length {args.max_length}")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    lines = [
        "# Bulk encoding: library vs Beam on the FnApiRunner vs Beam on Flink",
        "",
        f"`{command}`",
        "",
        f"SciFact corpus, first {results[0].docs} documents; model `{args.model}`, max length "
        f"{args.max_length}, CPU (float32); JSONL output, no engine. Machine: "
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        "run once under the shared `heavy` lock (no other heavy job; other agents' light work may run).",
        "",
        "| setup | docs | seconds | docs/s | what is timed |",
        "|---|---:|---:|---:|---|",
        *(
            f"| {r.setup} | {r.docs} | {r.seconds:.1f} | {r.docs_per_s:.1f} | {r.note} |"
            for r in results
        ),
        "",
        "- FnApiRunner: `--direct_num_workers=2 --direct_running_mode=multi_processing`.",
        "- Flink: `splade_es_workshop.runners.flink` session cluster (JobManager + 2 TaskManagers, 1 slot "
        "each, separate JVMs), Beam 2.62 job server, PROCESS SDK workers booted by "
        "`splade_es_workshop.runners.sdk_worker`, parallelism 2; cluster start not timed.",
        "- On 2 cores the pipelines' 2 worker processes and the JVMs compete for the same cores "
        "as the encoder, so this measures overhead, not scaling.",
        "",
        "![throughput](runners.png)",
        "",
    ]
    report = out / "runners.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=5183)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--skip-flink", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the report")
    args = parser.parse_args()

    corpus_path = Path(tempfile.mkdtemp()) / "corpus.jsonl"
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        corpus_path.write_text("".join(islice(handle, args.docs)), encoding="utf-8")
    docs = sum(1 for line in corpus_path.open(encoding="utf-8") if line.strip())

    setups: list[Callable[[], Measurement]] = [
        lambda: library_encoder(corpus_path, docs, args.model, args.max_length),
        lambda: pipeline(
            "Beam FnApiRunner, 2 worker processes",
            [
                "--runner=FnApiRunner",
                "--direct_num_workers=2",
                "--direct_running_mode=multi_processing",
            ],
            corpus_path,
            docs,
            args.model,
            args.max_length,
        ),
    ]
    if not args.skip_flink:
        from splade_es_workshop.runners import flink

        def on_flink() -> Measurement:
            cluster = flink.start()
            try:
                return pipeline(
                    "Beam on Flink, 2 TaskManagers",
                    cluster.pipeline_args(),
                    corpus_path,
                    docs,
                    args.model,
                    args.max_length,
                )
            finally:
                flink.stop()

        setups.append(on_flink)
    results = []
    for setup in setups:
        result = setup()
        print(f"{result.setup}: {result.docs} docs in {result.seconds:.1f}s", flush=True)
        results.append(result)
    command = "python -m splade_es.benchmarks.runners " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "skip_flink"
    )
    print(write_report(results, args, command))


if __name__ == "__main__":
    main()
