"""Hybrid BM25 + SPLADE: the ways to combine two result lists, in the engine or in the client.

- `sum`: one `bool.should` query adding the weighted raw scores (every engine).
- `min_max`, `l2`, `z_score` + weighted arithmetic mean, and `rrf`: each list normalised (or
  ranked) first, as OpenSearch's `normalization-processor` / `score-ranker-processor` search
  pipelines do. `at="engine"` runs them in OpenSearch (neural-search plugin, `hybrid` query);
  `at="client"` runs the same arithmetic here over one `_msearch`, for engines without it; with
  no `at`, `fused_in_engine` picks the engine where it can and the client elsewhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Method = Literal["sum", "min_max", "l2", "z_score", "rrf"]
METHODS: tuple[Method, ...] = ("sum", "min_max", "l2", "z_score", "rrf")
Where = Literal["engine", "client"]


@dataclass(frozen=True)
class Fusion:
    """How hybrid search combines BM25 and SPLADE (the weights are `query.Hybrid`'s)."""

    method: Method = "sum"
    at: Where | None = None
    """Where to fuse; None: in the engine when `fused_in_engine` says it can, else here."""
    rank_constant: int = 60
    depth: int = 100
    """Hits taken from each list before fusing (client side)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"fusion method must be one of {', '.join(METHODS)}, not {self.method!r}"
            )
        if self.at not in ("engine", "client", None):
            raise ValueError(f"fusion runs at 'engine' or 'client', not {self.at!r}")

    def pipeline_name(self, weights: tuple[float, float]) -> str:
        """A stable name for this setting: the OpenSearch search pipeline's name."""
        if self.method == "rrf":
            return f"splade-es-hybrid-rrf-k{self.rank_constant}"
        total = (weights[0] + weights[1]) or 1.0
        return f"splade-es-hybrid-{self.method}-{weights[0] / total:.3g}-{weights[1] / total:.3g}"

    @classmethod
    def parse(cls, spec: str) -> Fusion:
        """`sum`, `min_max`, `rrf@client`, ... (a method, optionally `@engine` or `@client`)."""
        method, _, at = spec.partition("@")
        return cls(method, at or None)  # type: ignore[arg-type]

    def where(self, engine: str, version: str) -> Where:
        """Where this fusion runs on this engine: as asked, or (no `at`) where the engine can.
        Asking the engine for what it cannot do is a ValueError that names the `@client` form."""
        can = fused_in_engine(self.method, engine, version)
        if self.at is None:
            return "engine" if can else "client"
        if self.at == "engine" and not can:
            raise ValueError(
                f"{engine} {version} cannot fuse {self.method} in the engine: use "
                f"--fusion {self.method}@client (the same arithmetic, in the client) or "
                f"--fusion {self.method} (wherever it runs)"
            )
        return self.at


OPENSEARCH_FUSION_SINCE: dict[Method, tuple[int, int]] = {
    "min_max": (2, 10),  # the `hybrid` query and the normalization-processor
    "l2": (2, 10),
    "rrf": (2, 19),  # the score-ranker-processor (checked on 2.19.6: equal to `fuse`)
    "z_score": (3, 0),  # 2.19.6 refuses it: "provided normalization technique is not supported"
}
"""The first OpenSearch version (neural-search plugin) whose search pipelines run each method."""


def fused_in_engine(method: Method, engine: str, version: str) -> bool:
    """Whether this engine can fuse with `method` itself: `sum` everywhere (one bool query), the
    others in OpenSearch's search pipelines from the version `OPENSEARCH_FUSION_SINCE` names.
    The one place that decides it: search, eval and the reports all ask here."""
    if method == "sum":
        return True
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]] + [0, 0]
    return engine == "opensearch" and tuple(numbers[:2]) >= OPENSEARCH_FUSION_SINCE[method]


MIN_MAX_FLOOR = 0.001
"""OpenSearch's min-max normalizer lifts a 0 to this, so the lowest hit still counts."""

Z_SCORE_FLOOR = 0.001
"""OpenSearch's z-score normalizer lifts a score at or below the mean to this."""

Ranked = Sequence[tuple[str, float]]
"""One result list: (document id, score), best first."""


def _normalised(hits: Ranked, method: Method) -> dict[str, float]:
    scores = [s for _, s in hits]
    if not scores:
        return {}
    if method == "min_max":
        low, high = min(scores), max(scores)
        span = high - low
        # as OpenSearch's normalizer: a one-score list gives 1, the minimum 0.001 (not 0)
        return {d: max((s - low) / span, MIN_MAX_FLOOR) if span else 1.0 for d, s in hits}
    if method == "l2":
        norm = math.sqrt(sum(s * s for s in scores))
        return {d: s / norm if norm else 0.0 for d, s in hits}
    if method == "z_score":
        return {d: _z_score(s, scores) for d, s in hits}
    raise ValueError(f"{method} is not a normalisation")


def _z_score(score: float, scores: Sequence[float]) -> float:
    """As OpenSearch's `z_score` normalizer (neural-search, 3.0+): the sample standard deviation
    (n - 1), a score at or below the mean lifted to 0.001, a score equal to the mean (one hit)
    the list's maximum, and a list without spread its minimum."""
    mean = sum(scores) / len(scores)
    if score == mean:
        return max(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1))
    if std == 0:
        return min(scores)
    z = (score - mean) / std
    return z if z > 0 else Z_SCORE_FLOOR


def fuse(
    bm25: Ranked, splade: Ranked, fusion: Fusion, weights: tuple[float, float], size: int
) -> list[tuple[str, float]]:
    """Combine two result lists client-side; the top `size` (id, fused score)."""
    combined: dict[str, float] = {}
    if fusion.method == "rrf":
        for hits, weight in zip((bm25, splade), weights, strict=True):
            for rank, (doc, _) in enumerate(hits, start=1):
                combined[doc] = combined.get(doc, 0.0) + weight / (fusion.rank_constant + rank)
    elif fusion.method == "sum":
        for hits, weight in zip((bm25, splade), weights, strict=True):
            for doc, score in hits:
                combined[doc] = combined.get(doc, 0.0) + weight * score
    else:
        total = sum(weights)
        for hits, weight in zip((bm25, splade), weights, strict=True):
            for doc, score in _normalised(hits, fusion.method).items():
                combined[doc] = combined.get(doc, 0.0) + weight * score / total
    ordered = sorted(combined.items(), key=lambda kv: (-kv[1], kv[0]))
    return ordered[:size]
