"""What the service answers per text, so that the cluster-side path scores like the external one.

The external path indexes `SparseVector.quantize` (`round(w * factor)` under escaped feature names)
and queries with `w / factor` (`QueryRewriter`). The `sparse_encoding` ingest processor writes the
service's document answer into the `rank_features` field unchanged, and `neural_sparse` with
`query_text` uses the query answer as boosts unchanged, so:

- documents get the quantized integers `index-vectors` would index,
- queries get the weights divided by the factor, capped at the same clause count,

and a document indexed through the pipeline, searched with `query_text`, scores exactly what the
same document indexed from `encode` output scores with the query the rewriter builds.
With `quantization=None` both sides are the raw float weights (as `encode --quantization 0`).
"""

from __future__ import annotations

from splade_es.query import QueryPruning
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR, SparseVector


def document_weights(
    vector: SparseVector, quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
) -> dict[str, float]:
    """`{feature name: weight}` as `encode` writes it for `index-vectors`."""
    return vector.document_features(quantization)


def query_weights(
    vector: SparseVector,
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
    pruning: QueryPruning = QueryPruning(),
) -> dict[str, float]:
    """`{feature name: boost}` as the rewriter puts into `query_tokens` (same pruning, same scale)."""
    return pruning.apply(vector).query_features(quantization)
