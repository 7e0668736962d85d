"""OpenSearch search pipelines the project creates: hybrid normalisation / RRF and SPLADE two-phase.

Each pipeline is named after its settings (`Fusion.name`, `TwoPhase.name`), so creating it is
idempotent and two settings never overwrite each other. All need the neural-search plugin; without
it the error says so in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError, TransportError

from splade_es.client import EngineError, describe_error
from splade_es.fusion import Fusion

NEURAL_SEARCH = "opensearch-neural-search"


@dataclass(frozen=True)
class TwoPhase:
    """`neural_sparse_two_phase_processor`: high-weight tokens retrieve, the rest re-score."""

    prune_ratio: float = 0.4
    expansion_rate: float = 5.0
    max_window_size: int = 10000

    @property
    def name(self) -> str:
        return f"splade-es-two-phase-{self.prune_ratio:g}-{self.expansion_rate:g}"

    def body(self) -> dict[str, Any]:
        return {
            "description": "splade-es: neural_sparse two-phase search",
            "request_processors": [
                {
                    "neural_sparse_two_phase_processor": {
                        "enabled": True,
                        "two_phase_parameter": {
                            "prune_ratio": self.prune_ratio,
                            "expansion_rate": self.expansion_rate,
                            "max_window_size": self.max_window_size,
                        },
                    }
                }
            ],
        }


def unit_weights(weights: tuple[float, float]) -> tuple[float, float]:
    """The weights scaled to sum to 1, as OpenSearch's arithmetic mean requires."""
    total = weights[0] + weights[1]
    if total <= 0:
        raise ValueError("hybrid weights must not both be 0")
    return (weights[0] / total, weights[1] / total)


def fusion_pipeline_body(fusion: Fusion, weights: tuple[float, float]) -> dict[str, Any]:
    """The search pipeline that fuses a `hybrid` query's two sub-queries (BM25 first)."""
    if fusion.method == "rrf":
        processor: dict[str, Any] = {
            "score-ranker-processor": {
                "combination": {
                    "technique": "rrf",
                    "rank_constant": fusion.rank_constant,
                }
            }
        }
    elif fusion.method == "sum":
        raise ValueError("'sum' hybrid runs as one bool query; it needs no search pipeline")
    else:
        processor = {
            "normalization-processor": {
                "normalization": {"technique": fusion.method},
                "combination": {
                    "technique": "arithmetic_mean",
                    "parameters": {"weights": list(unit_weights(weights))},
                },
            }
        }
    return {
        "description": f"splade-es: hybrid BM25 + SPLADE, {fusion.method}",
        "phase_results_processors": [processor],
    }


def ensure_search_pipeline(client: OpenSearch, name: str, body: dict[str, Any]) -> str:
    """Create (or overwrite with the same settings) the search pipeline `name`; returns the name."""
    from splade_es.plugins import require_plugin

    require_plugin(
        client,
        NEURAL_SEARCH,
        "hybrid fusion in the engine and two-phase search",
        "install OpenSearch's neural-search plugin, or fuse in the client (`--fusion METHOD@client`)",
    )
    try:
        client.transport.perform_request("PUT", f"/_search/pipeline/{name}", body=body)
    except (TransportError, ConnectionError) as exc:
        raise EngineError(describe_error(exc, f"search pipeline {name!r}")) from exc
    return name
