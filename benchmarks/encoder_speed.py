"""CPU encoder speed and quality: splade-es float32 / bfloat16 / int8 vs sentence-transformers.

Every variant encodes the same texts with the same model at the same max length in one process.
Two phases:

- throughput: the first `--docs` SciFact documents, `--repeats` interleaved rounds, best round
  kept; largest weight difference against splade-es float32 on those documents. Also run on a
  BERT-base-sized masked LM (random weights, saved to a temporary folder) with `--base-docs`
  documents, the size users run; its vectors are meaningless, so it has no quality column.
- quality: the whole corpus and the test queries, scored exactly in process (scipy sparse dot
  product) and evaluated with ir-measures: SciFact test nDCG@10 per variant.

Rows are kept in `encoder_speed.json` next to the report, keyed by (model, phase, variant), so a
run limited with `--phases` / `--variants` (to keep each run short) updates its rows and the
report is rebuilt from all of them. Writes `encoder_speed.md` and `encoder_speed.png`.

    python -m splade_es.benchmarks.encoder_speed --phases throughput
    python -m splade_es.benchmarks.encoder_speed --phases quality --variants float32,bfloat16
    python -m splade_es.benchmarks.encoder_speed --phases ''   # rebuild the report only
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from splade_es.corpus import read_documents, read_qrels, read_queries
from splade_es.cpu import CPU_BF16_FLAGS, bf16_time_ratio, cpu_has_fast_bf16, this_cpu_has_fast_bf16
from splade_es.encoder import SpladeEncoder
from splade_es.evaluation import ExactSparseIndex, evaluate
from splade_es.models import DEFAULT_MODEL, resolve
from splade_es.sparse import SparseVector

from . import paths

RESULTS = paths.RESULTS
SCIFACT = paths.SCIFACT
ST = "sentence-transformers"
VARIANTS = ("float32", "bfloat16", "int8", ST)
"""splade-es dtypes, then sentence-transformers' SparseEncoder (float32), the speed reference."""
PHASES = ("throughput", "quality")
BASE_MODEL = "bert-base (random)"

Weights = dict[str, float]


@dataclass(frozen=True)
class Row:
    """One measured variant."""

    model: str
    phase: str
    variant: str
    docs: int
    seconds: float
    max_diff: float | None = None
    """Largest weight difference against splade-es float32 on the same documents."""
    ndcg10: float | None = None
    queries: int = 0

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.phase, self.variant)


@dataclass
class Contender:
    """A variant ready to encode documents and queries into {token: weight} maps."""

    name: str
    documents: Callable[[list[str]], list[Weights]]
    queries: Callable[[list[str]], list[Weights]]


def splade_es(model: str, dtype: str, max_length: int, batch_size: int) -> Contender:
    encoder = SpladeEncoder.load(model, device="cpu", dtype=dtype, doc_max_length=max_length)

    def as_dicts(vectors: list[SparseVector]) -> list[Weights]:
        return [v.as_dict() for v in vectors]

    return Contender(
        dtype,
        lambda texts: as_dicts(encoder.encode_documents(texts, batch_size=batch_size)),
        lambda texts: as_dicts(encoder.encode_queries(texts, batch_size=batch_size)),
    )


def sentence_transformers(folder: str, max_length: int, batch_size: int) -> Contender:
    """sentence-transformers' SparseEncoder (MLMTransformer + SpladePooling) on the same weights."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    mlm = Transformer(folder, transformer_task="fill-mask", max_seq_length=max_length)
    model = SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu")
    vocab = [
        str(t) for t in model.tokenizer.convert_ids_to_tokens(list(range(len(model.tokenizer))))
    ]
    special = set(model.tokenizer.all_special_tokens)

    def to_dicts(rows: Any) -> list[Weights]:
        out = []
        for row in rows:
            dense = row.to_dense()
            idx = dense.nonzero().flatten().tolist()
            out.append({vocab[i]: float(dense[i]) for i in idx if vocab[i] not in special})
        return out

    return Contender(
        ST,
        lambda texts: to_dicts(
            model.encode_document(texts, batch_size=batch_size, convert_to_tensor=True)
        ),
        lambda texts: to_dicts(
            model.encode_query(texts, batch_size=batch_size, convert_to_tensor=True)
        ),
    )


def contender(variant: str, model: str, max_length: int, batch_size: int) -> Contender:
    if variant == ST:
        return sentence_transformers(resolve(model), max_length, batch_size)
    return splade_es(model, variant, max_length, batch_size)


def max_diff(reference: Sequence[Weights], other: Sequence[Weights]) -> float:
    """Largest absolute weight difference between two encodings of the same texts."""
    worst = 0.0
    for x, y in zip(reference, other, strict=True):
        for key in set(x) | set(y):
            worst = max(worst, abs(x.get(key, 0.0) - y.get(key, 0.0)))
    return worst


def throughput(
    model_label: str,
    contenders: list[Contender],
    texts: list[str],
    repeats: int,
) -> list[Row]:
    """Best of `repeats` interleaved rounds per contender, and weight differences vs float32."""
    best: dict[str, float] = {}
    encoded: dict[str, list[Weights]] = {}
    for c in contenders:
        c.documents(texts[:16])  # warm-up: lazy initialisation, oneDNN kernels
    for _ in range(repeats):
        for c in contenders:
            start = time.perf_counter()
            encoded[c.name] = c.documents(texts)
            seconds = time.perf_counter() - start
            best[c.name] = min(best.get(c.name, seconds), seconds)
            print(f"  {model_label} {c.name}: {len(texts) / seconds:.1f} docs/s", flush=True)
    reference = encoded.get("float32")
    return [
        Row(
            model_label,
            "throughput",
            c.name,
            len(texts),
            best[c.name],
            max_diff(reference, encoded[c.name]) if reference is not None else None,
        )
        for c in contenders
    ]


def quality(
    model_label: str,
    contenders: list[Contender],
    ids: list[str],
    texts: list[str],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
) -> list[Row]:
    """Full-corpus encode, exact retrieval and nDCG@10 per contender."""
    rows = []
    for c in contenders:
        c.documents(texts[:16])
        start = time.perf_counter()
        docs = c.documents(texts)
        seconds = time.perf_counter() - start
        query_vectors = c.queries(list(queries.values()))
        index = ExactSparseIndex(ids, [SparseVector.from_mapping(d) for d in docs])
        run = index.search(
            {q: SparseVector.from_mapping(v) for q, v in zip(queries, query_vectors, strict=True)}
        )
        ndcg = evaluate(run, {q: qrels[q] for q in queries})["ndcg@10"]
        print(f"  {c.name}: {len(texts) / seconds:.1f} docs/s, nDCG@10 {ndcg:.4f}", flush=True)
        rows.append(
            Row(model_label, "quality", c.name, len(texts), seconds, None, ndcg, len(queries))
        )
    return rows


def random_bert_base(folder: Path, tokenizer_source: str, config: Any = None) -> str:
    """A BERT-base-sized masked LM with random weights (the size users run) and a BERT tokenizer.

    `config` (a `BertConfig`) swaps the size, e.g. for a smoke test of a benchmark on CPU."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    BertForMaskedLM(config or BertConfig()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(folder)
    return str(folder)


def machine() -> str:
    """CPU model, its bfloat16/int8 matrix flags, threads and library versions."""
    import sentence_transformers
    import transformers

    cpu, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = (*CPU_BF16_FLAGS, "amx_tile", "amx_int8", "avx512f", "avx512_vnni", "avx_vnni")
    present = [f for f in wanted if f in flags]
    absent = [f for f in wanted if f not in flags]
    return (
        f"{cpu}; flags present: {', '.join(present) or 'none'}; absent: {', '.join(absent) or 'none'}; "
        f"bfloat16 flags: {cpu_has_fast_bf16()}, bfloat16/float32 time of a projection "
        f"{bf16_time_ratio():.2f} (fast path: {this_cpu_has_fast_bf16()}); {torch.get_num_threads()} torch "
        f"threads; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}, Python {platform.python_version()}"
    )


NOTES = """\
Where the time goes: after length-sorted batching, a small model like `splade-tiny` (2 layers,
hidden 128) spends almost all of its time in the vocabulary projection (30,522 x hidden per real
token) and the max over tokens, not in the transformer layers. bfloat16 weights run every matrix
product on the CPU's bfloat16 units (AVX-512 BF16 here, AMX on newer Xeons), hence most of the
gain. `int8` quantizes the transformer's Linear layers dynamically; the vocabulary projection stays
float32 (the pooling projects token blocks through it as a float Linear), so int8 helps a
BERT-base-sized model, whose layers dominate, far more than `splade-tiny`, and it moves weights the
most. `auto` stays float32 on CPU: bfloat16 vectors move by a few hundredths with the texts that
share a batch (measured 0.039 on 64 SciFact documents at batch size 32 vs 5; float32: 5e-6), so
float32 stays the reproducible default and `--dtype bfloat16` the fast path, which `auto` logs as
a hint on CPUs whose flags show `amx_bf16` or `avx512_bf16`. No ONNX Runtime backend: in an
exploratory float32 run, splade-tiny's layers alone ran at ~450 docs/s against ~32 for the whole
encode, so a faster runtime for the layers cannot move it; the projection is what bfloat16 fixes."""


def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def ndcg(row: Row, exact: Row | None) -> str:
    if row.ndcg10 is None:
        return "–"
    if exact is None or exact.ndcg10 is None or exact is row:
        return f"{row.ndcg10:.4f}"
    return f"{row.ndcg10:.4f} ({row.ndcg10 - exact.ndcg10:+.4f})"


def report(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        "# CPU encoder speed: splade-es float32 / bfloat16 / int8 vs sentence-transformers",
        "",
        f"Machine: {meta['machine']}.",
        "",
        f"Settings: SciFact, max length {meta['max_length']}, batch size {meta['batch_size']}. "
        "Throughput tables: all variants side by side in one process on the same texts, rounds "
        "interleaved. Full-corpus tables: one variant after another, from the runs listed under "
        "Commands (a quality run of every variant at once takes longer than a CPU slot here).",
        "Speed-up is against sentence-transformers' `SparseEncoder` (float32) in the same table.",
        "",
    ]
    titles = {
        "throughput": "Throughput (best of {repeats} interleaved rounds)",
        "quality": "Full corpus: one encode of every document, then SciFact test nDCG@10 "
        "(exact in-process scoring, ir-measures)",
    }
    for (model, phase), group in _groups(rows).items():
        reference = next((r for r in group if r.variant == ST), None)
        exact = next((r for r in group if r.variant == "float32"), None)
        lines += [f"## `{model}`: {titles[phase].format(**meta)}", ""]
        lines += [
            "| variant | docs | seconds | docs/s | speed-up vs SparseEncoder | max weight diff vs "
            "float32 | nDCG@10 (vs float32) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in group:
            speedup = r.docs_per_s / reference.docs_per_s if reference else None
            label = (
                f"splade-es {r.variant}"
                if r.variant != ST
                else "sentence-transformers SparseEncoder float32"
            )
            lines.append(
                f"| {label} | {r.docs} | {r.seconds:.1f} | {r.docs_per_s:.1f} | "
                f"{fmt(speedup, '.2f')}x | {fmt(r.max_diff, '.2e')} | {ndcg(r, exact)} |"
            )
        if model == BASE_MODEL:
            lines += [
                "",
                "Random weights: vectors and nDCG are meaningless here, only speed counts.",
            ]
        lines.append("")
    lines += [NOTES, "", "Commands (each updates its rows of `encoder_speed.json`):", ""]
    lines += [f"    {command}" for command in meta["commands"]]
    lines.append("")
    return "\n".join(lines)


def _groups(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    order = {v: i for i, v in enumerate(VARIANTS)}
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in sorted(
        rows, key=lambda r: (r.model == BASE_MODEL, PHASES.index(r.phase), order.get(r.variant, 9))
    ):
        groups.setdefault((r.model, r.phase), []).append(r)
    return groups


def chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {k: g for k, g in _groups(rows).items() if k[1] == "throughput"}
    if not groups:
        return
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, ((model, _), group) in zip(axes[0], groups.items(), strict=True):
        names = [r.variant if r.variant != ST else "ST SparseEncoder" for r in group]
        bars = ax.bar(names, [r.docs_per_s for r in group], color="tab:blue")
        ax.bar_label(bars, fmt="%.1f")
        ax.set_title(f"{model}: docs/s (CPU)")
        ax.set_ylabel("documents per second")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--beir-dir", type=Path, default=SCIFACT)
    parser.add_argument("--split", default="test")
    parser.add_argument("--docs", type=int, default=512, help="throughput sample")
    parser.add_argument("--quality-docs", type=int, default=0, help="0: the whole corpus")
    parser.add_argument("--queries", type=int, default=0, help="0: every judged query")
    parser.add_argument("--base-docs", type=int, default=64, help="BERT-base sample; 0 skips")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the report")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    for name, given, allowed in (
        ("variants", args.variants, VARIANTS),
        ("phases", args.phases, PHASES),
    ):
        bad = [v for v in given if v not in allowed]
        if bad:
            parser.error(f"--{name}: unknown {bad}; choose from {list(allowed)}")
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    store = args.out / "encoder_speed.json"
    saved = json.loads(store.read_text()) if store.exists() else {"rows": [], "commands": []}
    rows = {Row(**r).key: Row(**r) for r in saved["rows"]}

    documents = list(
        islice(read_documents(args.beir_dir / "corpus.jsonl"), args.quality_docs or None)
    )
    texts = [d.full_text for d in documents]
    new: list[Row] = []
    if "throughput" in args.phases:
        contenders = [
            contender(v, args.model, args.max_length, args.batch_size) for v in args.variants
        ]
        new += throughput(args.model, contenders, texts[: args.docs], args.repeats)
        del contenders
        if args.base_docs:
            with tempfile.TemporaryDirectory() as folder:
                base = random_bert_base(Path(folder), resolve(args.model))
                contenders = [
                    contender(v, base, args.max_length, args.batch_size) for v in args.variants
                ]
                new += throughput(BASE_MODEL, contenders, texts[: args.base_docs], args.repeats)
                del contenders
    if "quality" in args.phases:
        qrels = read_qrels(args.beir_dir / "qrels" / f"{args.split}.tsv")
        queries = {
            q: t for q, t in read_queries(args.beir_dir / "queries.jsonl").items() if q in qrels
        }
        queries = dict(islice(queries.items(), args.queries or None))
        if not queries:
            raise SystemExit(f"{args.beir_dir}: no {args.split} query has judgements")
        for variant in args.variants:  # one model loaded at a time: the full corpus is long
            c = contender(variant, args.model, args.max_length, args.batch_size)
            new += quality(args.model, [c], [d.id for d in documents], texts, queries, qrels)
    rows.update({r.key: r for r in new})

    command = "python -m splade_es.benchmarks.encoder_speed " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    commands = [c for c in saved["commands"] if c != command.strip()]
    commands += [command.strip()] if new else []  # `--phases ''` only rebuilds the report
    meta = {
        "machine": machine(),
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "commands": commands,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    ordered = list(rows.values())
    store.write_text(
        json.dumps({"rows": [asdict(r) for r in ordered], "commands": commands}, indent=1) + "\n"
    )
    path = args.out / "encoder_speed.md"
    path.write_text(report(ordered, meta))
    chart(ordered, args.out / "encoder_speed.png")
    print(path.read_text())
    return path


if __name__ == "__main__":
    main()
