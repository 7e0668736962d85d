"""Sparse term-weight vectors: validation, pruning, quantization and feature names.

Indexing and querying both go through this module so that the names and weights written to the
engine are exactly the names and weights the query asks for; a mismatch silently ruins relevance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_QUANTIZATION_FACTOR = 100.0
"""Anserini's factor: weights * 100, rounded; Lucene keeps 9 significant bits, so ints < 512 are exact."""

_DOT_ESCAPE = "__"


class SparseVectorError(ValueError):
    """A weight the engines would reject (NaN, infinite, zero or negative) or a bad pruning option."""


def feature_name(token: str) -> str:
    """Map a vocabulary token to an engine feature name (`.` is illegal in `rank_features` names).

    `.` becomes `__`, as Elastic's ELSER does. On BERT WordPiece vocabularies this is one-to-one
    (checked by the tests); where two tokens of some other vocabulary meet in one name, indexing and
    querying both keep the larger weight, so the two sides still agree.
    """
    return token.replace(".", _DOT_ESCAPE)


def token_from_feature_name(name: str) -> str:
    """Inverse of `feature_name` for names it produced."""
    return name.replace(_DOT_ESCAPE, ".")


def _check_weight(key: str, weight: float) -> float:
    value = float(weight)
    if not math.isfinite(value) or value <= 0.0:
        raise SparseVectorError(
            f"weight for {key!r} is {weight!r}: engines accept only finite weights > 0"
        )
    return value


@dataclass(frozen=True)
class SparseVector:
    """`{token: weight}` with every weight finite and > 0, kept in descending weight order."""

    weights: tuple[tuple[str, float], ...]

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, float]) -> SparseVector:
        """Validate and order a token->weight mapping; zero weights are an error, not dropped."""
        items = [(str(k), _check_weight(str(k), w)) for k, w in mapping.items()]
        items.sort(key=lambda kv: (-kv[1], kv[0]))
        return cls(tuple(items))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, float]]) -> SparseVector:
        """Build from (token, weight) pairs, keeping the largest weight of a repeated token."""
        merged: dict[str, float] = {}
        for token, weight in pairs:
            merged[token] = max(merged.get(token, 0.0), _check_weight(token, weight))
        return cls.from_mapping(merged)

    def __len__(self) -> int:
        return len(self.weights)

    def as_dict(self) -> dict[str, float]:
        """Plain `{token: weight}` in descending weight order."""
        return dict(self.weights)

    def dot(self, other: SparseVector) -> float:
        """Exact dot product, the score `rank_feature` linear clauses compute."""
        small, large = sorted((self.as_dict(), other.as_dict()), key=len)
        return sum(w * large[t] for t, w in small.items() if t in large)

    def prune(
        self,
        top_k: int | None = None,
        max_ratio: float | None = None,
        alpha_mass: float | None = None,
        threshold: float | None = None,
    ) -> SparseVector:
        """Drop low-weight terms; each given criterion applies in turn (all keep the heaviest term).

        - top_k: keep the k heaviest terms.
        - max_ratio: keep terms with weight >= max_ratio * the largest weight.
        - alpha_mass: keep the fewest heaviest terms whose weights sum to >= alpha_mass of the total.
        - threshold: keep terms with weight >= threshold.
        """
        items = list(self.weights)
        if top_k is not None:
            if top_k < 1:
                raise SparseVectorError(f"top_k must be >= 1, got {top_k}")
            items = items[:top_k]
        if max_ratio is not None and items:
            if not 0.0 <= max_ratio <= 1.0:
                raise SparseVectorError(f"max_ratio must be in [0, 1], got {max_ratio}")
            cutoff = max_ratio * items[0][1]
            items = [kv for kv in items if kv[1] >= cutoff]
        if alpha_mass is not None and items:
            if not 0.0 < alpha_mass <= 1.0:
                raise SparseVectorError(f"alpha_mass must be in (0, 1], got {alpha_mass}")
            target = alpha_mass * sum(w for _, w in items)
            kept, mass = [], 0.0
            for kv in items:
                kept.append(kv)
                mass += kv[1]
                if mass >= target * (1 - 1e-12):
                    break
            items = kept
        if threshold is not None:  # a query (or document) below it keeps its heaviest term
            items = [kv for kv in items if kv[1] >= threshold] or items[:1]
        return SparseVector(tuple(items))

    def quantize(self, factor: float = DEFAULT_QUANTIZATION_FACTOR) -> dict[str, int]:
        """`{feature name: round(weight * factor)}`, dropping terms that round to 0 (engines need > 0)."""
        if not math.isfinite(factor) or factor <= 0:
            raise SparseVectorError(f"quantization factor must be > 0, got {factor}")
        out: dict[str, int] = {}
        for token, weight in self.weights:
            name = feature_name(token)
            q = round(weight * factor)
            if q > 0 and name not in out:  # weights are descending: the first one is the max
                out[name] = q
        return out

    def to_features(
        self, quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
    ) -> dict[str, float]:
        """Engine-ready `{feature name: weight}`: quantized ints, or floats when quantization is None."""
        if quantization is None:
            out: dict[str, float] = {}
            for token, weight in self.weights:
                out.setdefault(feature_name(token), weight)
            return out
        return {k: float(v) for k, v in self.quantize(quantization).items()}

    def document_features(
        self, quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
    ) -> dict[str, float]:
        """What a document's field stores: `round(w * factor)` integers, or the float weights
        when `quantization` is None. Every path that fills a field (`encode`, Beam, `serve`)
        calls this, and `query_features` is its other half."""
        if quantization:
            return dict(self.quantize(quantization))
        return self.to_features(None)

    def query_features(
        self, quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
    ) -> dict[str, float]:
        """A query's boosts for documents stored by `document_features(quantization)`: `w /
        factor`, so the engine's sum of boost × stored value is the float dot product."""
        scale = 1.0 / quantization if quantization else 1.0
        return {name: weight * scale for name, weight in self.to_features(None).items()}

    @classmethod
    def from_features(
        cls, features: Mapping[str, float], factor: float = DEFAULT_QUANTIZATION_FACTOR
    ) -> SparseVector:
        """De-quantize engine features back to token weights (`q / factor`)."""
        return cls.from_mapping(
            {token_from_feature_name(k): float(v) / factor for k, v in features.items()}
        )
