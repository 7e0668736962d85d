"""What a query costs against what it finds: the efficient-model table of the training report.

The training issue's bar for an efficient model is three numbers at once: at most `MAX_TERMS`
query terms on average, query encoding at most `MAX_MS` per query on this CPU, and nDCG@10 within
`WITHIN` of the full fine-tuned model on every collection. `query_terms` counts the terms on every
collection (ArguAna's queries are whole arguments, SciFact's are claims: one collection's average
says little), and `efficiency_table` puts the three side by side for every run that was timed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from splade_es.encoder import SpladeEncoder
    from splade_es.query import QueryPruning

MAX_TERMS, MAX_MS, WITHIN = 10.0, 1.0, 0.02
REFERENCE = "hybriddistill-720-merge0.5"
"""The full fine-tuned model the efficient ones are held against: the README recipe."""


def query_terms(
    encoder: SpladeEncoder, folders: Sequence[Path], pruning: QueryPruning | None = None
) -> dict[str, float]:
    """Average nonzero terms of each collection's test queries (those with judgements), as the
    encoder gives them to the engine (after `pruning`, when given)."""
    from splade_es.beir_eval import find_collections
    from splade_es.query import QueryPruning

    prune = (pruning or QueryPruning()).apply
    out = {}
    for collection in find_collections(list(folders)):
        queries = collection.queries(collection.qrels())
        vectors = encoder.encode_queries(list(queries.values()))
        out[collection.name] = statistics.fmean(len(prune(v)) for v in vectors)
    return out


def _ndcg(run: Mapping[str, Any], collection: str, mode: str = "splade") -> float:
    return float(run["xeval"]["collections"][collection]["modes"][mode]["ndcg@10"])


def _ratios(
    run: Mapping[str, Any], reference: Mapping[str, Any], mode: str = "splade"
) -> dict[str, float]:
    """`run`'s nDCG@10 over `reference`'s, in `mode`, on each of the reference's collections."""
    collections = reference["xeval"]["collections"]
    return {c: _ndcg(run, c, mode) / _ndcg(reference, c, mode) for c in collections}


def efficiency_table(runs: Mapping[str, Mapping[str, Any]], order: Sequence[str]) -> list[str]:
    """Query ms, query terms and nDCG@10 relative to `REFERENCE`, collection by collection."""
    timed = [n for n in order if "query_ms_p50" in runs[n] and "xeval" in runs[n]]
    if REFERENCE not in runs or "xeval" not in runs[REFERENCE] or not timed:
        return []
    collections = list(runs[REFERENCE]["xeval"]["collections"])
    lines = [
        "",
        "## Query cost (efficient models)",
        "",
        f"Bar (the training issue): ≤ {MAX_TERMS:g} query terms on average, query encoding ≤ "
        f"{MAX_MS:g} ms per query on this CPU, SPLADE nDCG@10 within {WITHIN:.0%} of `{REFERENCE}` "
        "(the README recipe) on every collection. ms: median over SciFact's test queries, each "
        "encoded alone after 20 warm-up ones (`query-speed`); terms: average nonzero entries "
        "of the test queries of each collection (float32); nDCG@10 as a ratio of the "
        "reference's (exact in process, `xeval`); in brackets the base model's ms timed in the "
        "same process, where it was (this shared CPU's speed drifts between sessions). "
        "*Hybrid worst*: the same ratio for the "
        "hybrid (1 × BM25 + 1 × SPLADE) against the reference's hybrid, which an efficient "
        "query side is served as when quality matters (not part of the bar).",
        "",
        "| run | query ms | terms (mean of 6) | "
        + " | ".join(f"{c} terms / nDCG ratio" for c in collections)
        + " | worst ratio | hybrid worst | meets |",
        "|---|---:|---:|" + "---:|" * (len(collections) + 3),
    ]
    reference = runs[REFERENCE]
    for name in timed:
        lines.append(_row(name, runs[name], reference, collections))
        for key, pruned in sorted(runs[name].get("pruned", {}).items(), key=_pruned_order):
            lines.append(_row(f"{name}, `{pruned_label(key)}`", pruned, reference, collections))
    if any(runs[n].get("pruned") for n in timed):
        lines += [
            "",
            "`--top-k K` / `--threshold W` rows (`prune NAME --top-k K`, `--threshold W`): the "
            "same model, each query cut to its K heaviest terms, or to its terms weighing at "
            "least W (the heaviest always stays), as `search` sends it with that option; their "
            "query ms include the cut.",
        ]
    return lines


def pruned_label(key: str) -> str:
    """The `search` option a stored pruned entry was made with: key `K` (top-k) or `wW`."""
    return f"--threshold {key[1:]}" if key.startswith("w") else f"--top-k {key}"


def _pruned_order(item: tuple[str, Any]) -> tuple[bool, float]:
    key = item[0]
    return (key.startswith("w"), float(key.lstrip("w")))


def _row(
    label: str, run: Mapping[str, Any], reference: Mapping[str, Any], collections: list[str]
) -> str:
    """One line of the table: query ms, terms and nDCG@10 ratios, worst ratio, verdict."""
    terms: Mapping[str, float] = run.get("query_terms_by_collection", {})
    ratios = _ratios(run, reference)
    mean_terms = statistics.fmean(terms.values()) if terms else float("nan")
    worst = min(ratios.values())
    hybrid_worst = min(_ratios(run, reference, "hybrid").values())
    meets = mean_terms <= MAX_TERMS and run["query_ms_p50"] <= MAX_MS and worst >= 1 - WITHIN
    cells = [
        f"{terms[c]:.1f} / {ratios[c]:.3f}" if c in terms else f"- / {ratios[c]:.3f}"
        for c in collections
    ]
    ms = f"{run['query_ms_p50']:.2f}"
    if "base_query_ms_p50" in run:
        ms += f" ({run['base_query_ms_p50']:.2f})"
    return (
        f"| {label} | {ms} | {f'{mean_terms:.1f}' if terms else '-'} | "
        + " | ".join(cells)
        + f" | {worst:.3f} | {hybrid_worst:.3f} | {'yes' if meets else 'no'} |"
    )
