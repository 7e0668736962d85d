"""Searching an index with BM25, SPLADE or both, one query or many (`_msearch`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError, TransportError

from splade_es.client import EngineError, EngineInfo, describe_error
from splade_es.indices import IndexProfile
from splade_es.models import model_identity
from splade_es.query import Form, Hybrid, QueryEncoder, QueryPruning, QueryRewriter, text_query
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

Mode = Literal["bm25", "splade", "hybrid"]
MODES: tuple[Mode, ...] = ("bm25", "splade", "hybrid")


def form_for_field(field_type: str) -> Form:
    """The query form that scores a sparse field type: rank_feature for rank_features, else sparse_vector."""
    return "rank_feature" if field_type == "rank_features" else "sparse_vector"


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str


@dataclass
class Searcher:
    """Builds and runs BM25 / SPLADE / hybrid queries against one index.

    Build it with `for_index`, which reads the index's recorded profile (field type, quantization,
    model, text fields) so the query side cannot disagree with how the documents were indexed.
    """

    client: OpenSearch
    info: EngineInfo
    index: str
    encoder: QueryEncoder | None
    field: str = "splade"
    field_type: str = "rank_features"
    pruning: QueryPruning = dataclass_field(default_factory=QueryPruning)
    hybrid: Hybrid = dataclass_field(default_factory=Hybrid)
    rescore_window: int | None = None
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
    analyzer: str = "standard"

    @classmethod
    def for_index(
        cls,
        client: OpenSearch,
        info: EngineInfo,
        index: str,
        encoder: QueryEncoder | None,
        field: str = "splade",
        model: str | None = None,
        force_model: bool = False,
        pruning: QueryPruning | None = None,
        hybrid: Hybrid | None = None,
        rescore_window: int | None = None,
    ) -> Searcher:
        """A searcher for `index` as it was indexed; a query model other than the index's
        (`model`, as given on the command line) is refused unless `force_model`."""
        profile = IndexProfile.read(client, index)
        splade = profile.splade_field(field)
        if model and splade.model and not force_model:
            asked = model_identity(model)
            if asked != splade.model:
                raise EngineError(
                    f"index {profile.index!r} field {field!r} was encoded with {splade.model!r}, "
                    f"not {asked!r}: queries must use the same model (force with --force-model)"
                )
        weights = hybrid or Hybrid()
        return cls(
            client,
            info,
            profile.index,
            encoder,
            field,
            splade.field_type,
            pruning or QueryPruning(),
            Hybrid(weights.bm25_weight, weights.splade_weight, profile.text_fields),
            rescore_window,
            splade.quantization,
            profile.analyzer,
        )

    def rewriter(self, mode: Mode) -> QueryRewriter:
        if self.encoder is None:
            raise EngineError(f"{mode} search needs a query encoder (a --model)")
        return QueryRewriter(
            self.encoder,
            engine=self.info.engine,
            form=form_for_field(self.field_type),
            field=self.field,
            pruning=self.pruning,
            rescore_window=self.rescore_window,
            hybrid=self.hybrid if mode == "hybrid" else None,
            quantization=self.quantization,
        )

    def body(self, text: str, mode: Mode, size: int = 10) -> dict[str, Any]:
        """The search body for one query in one mode (an empty query matches nothing)."""
        if mode == "bm25":
            return {
                "size": size,
                "query": text_query(text, self.hybrid.text_fields),
                "_source": {"excludes": [self.field]},
            }
        return self.rewriter(mode).body(text, size=size)

    def _hits(self, response: dict[str, Any]) -> list[Hit]:
        if "error" in response:
            raise EngineError(
                f"search on {self.index!r} failed: {json.dumps(response['error'])[:500]}"
            )
        return [
            Hit(
                str(h["_id"]), float(h["_score"] or 0.0), str(h.get("_source", {}).get("title", ""))
            )
            for h in response["hits"]["hits"]
        ]

    def search(self, text: str, mode: Mode = "splade", size: int = 10) -> list[Hit]:
        """Top `size` hits for one query."""
        try:
            response = self.client.search(index=self.index, body=self.body(text, mode, size))
        except (TransportError, ConnectionError) as exc:
            raise EngineError(describe_error(exc, f"search {self.index!r}")) from exc
        return self._hits(response)

    def search_many(
        self, texts: list[str], mode: Mode, size: int = 100, per_request: int = 32
    ) -> list[list[Hit]]:
        """Hits for many queries, sent `per_request` at a time through `_msearch`."""
        results: list[list[Hit]] = []
        for start in range(0, len(texts), per_request):
            lines = []
            for text in texts[start : start + per_request]:
                lines.append(json.dumps({"index": self.index}))
                lines.append(json.dumps(self.body(text, mode, size)))
            try:
                response = self.client.msearch(body="\n".join(lines) + "\n")
            except (TransportError, ConnectionError) as exc:
                raise EngineError(describe_error(exc, f"msearch {self.index!r}")) from exc
            results.extend(self._hits(r) for r in response["responses"])
        return results
