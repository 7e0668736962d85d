"""The Markdown side of `splade-es bench gpu`'s report: one section per phase, its rows as a table,
its other results as a list, and what was skipped or failed with the reason."""

from __future__ import annotations

from typing import Any

TARGETS = """\
Targets (issue #22): BERT-base SPLADE at 256 tokens, bf16, on one H100 >= 5,000 docs/s; splade-tiny
on the GPU >= 10x the best CPU path (benchmarks/results/encoder_speed.md); the out-of-memory path
loses no document; the Beam run >= 90% of the encoder alone."""

SHARE_NOTE = (
    "FLOPs per document are estimated from the model config: 2 x transformer Linear parameters x "
    "tokens + attention (4 x tokens² x hidden per layer) + the MLM head (h x h transform and "
    "h x vocab projection per real token); the share is against the card's dense bf16 peak "
    "(H100 / H200: 989 TFLOP/s, else --peak-tflops), also for float32 and float16 rows."
)


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return lines


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    lines = [
        f"# GPU run: {meta.get('device_name')}",
        "",
        f"Device: {meta.get('device_name')} ({meta.get('device')}"
        + (f", {meta['device_memory_gib']} GiB, CUDA {meta.get('cuda')}" if "cuda" in meta else "")
        + f"); Python {meta.get('python')}, {meta.get('cpu_count')} CPUs; {versions}.",
        "",
        f"Command: `{meta.get('command')}`; whole run {meta.get('total_seconds')} s.",
        "",
        TARGETS,
        "",
        *(f"- `{name}`: {note}" for name, note in meta.get("models", {}).items()),
        "",
    ]
    if not str(meta.get("device", "")).startswith("cuda"):
        lines += [
            "**CPU run**: no CUDA here; the numbers below are a dry run, not GPU results.",
            "",
        ]
    for name, phase in data["phases"].items():
        status = phase["status"]
        lines += [f"## {name}: {status} ({phase.get('seconds', 0)} s of {phase['budget_s']} s)", ""]
        if status != "ok":
            lines += [f"Reason: {phase.get('reason')}", ""]
            continue
        results = dict(phase["results"])
        rows = results.pop("rows", [])
        not_run = results.pop("not_run", [])
        lines += [f"- {k}: {cell(v)}" for k, v in results.items()]
        lines += [f"- not run: {item}" for item in not_run]
        lines += ["", *table(rows), ""]
        if name == "encoder":
            lines += [SHARE_NOTE, ""]
    return "\n".join(lines)
