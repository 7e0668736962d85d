"""Query rewriting: user text -> weighted terms -> an engine query body.

Three query forms score the same dot product on Lucene `FeatureField` postings:
- `rank_feature`: `bool.should` of `rank_feature` clauses with the `linear` function and
  `boost` = query weight (ES and OpenSearch core). The default `saturation` function is NOT a dot
  product, so it is never used here.
- `neural_sparse` with `query_tokens` (OpenSearch neural-search plugin, 2.14+).
- `sparse_vector` with `query_vector` (Elasticsearch 8.15+).

Query weights are divided by the document quantization factor, so engine scores come out as the
float dot product (up to Lucene's 9-bit weight precision); that keeps hybrid BM25 weights meaningful.

Bodies keep Lucene's dynamic pruning (WAND / MaxScore skip documents that cannot reach the top
hits): `track_total_hits: false` unless totals are asked for (counting every match defeats the
skipping), and with a filter the scoring clauses carry `minimum_should_match: 1` (otherwise every
filtered document matches with score 0 and must be visited).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from splade_es.mappings import TEXT_FIELD, Engine
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR, SparseVector, feature_name
from splade_es.term_stats import DocumentFrequencies

Form = Literal["rank_feature", "neural_sparse", "sparse_vector"]
FORMS: tuple[Form, ...] = ("rank_feature", "neural_sparse", "sparse_vector")
FORMS_BY_ENGINE: dict[str, tuple[Form, ...]] = {
    "opensearch": ("rank_feature", "neural_sparse"),
    "elasticsearch": ("rank_feature", "sparse_vector"),
}
DEFAULT_MAX_CLAUSES = 1024
"""Lucene's classic `max_clause_count` default (OpenSearch's `indices.query.bool.max_clause_count`)."""


class QueryEncoder(Protocol):
    """What the rewriter needs from an encoder."""

    def encode_query(self, text: str) -> SparseVector: ...


def check_form(engine: Engine, form: Form) -> None:
    """Reject a query form the engine has no parser for."""
    if form not in FORMS_BY_ENGINE[engine]:
        raise ValueError(
            f"{form} queries are not available on {engine}; use one of {FORMS_BY_ENGINE[engine]}"
        )


@dataclass(frozen=True)
class QueryPruning:
    """Query-side pruning; `max_clauses` always caps the term count (engines refuse more)."""

    top_k: int | None = None
    threshold: float | None = None
    max_clauses: int = DEFAULT_MAX_CLAUSES
    max_df_ratio: float | None = None
    """Drop terms held by more than this share of the corpus (needs `frequencies`)."""
    frequencies: DocumentFrequencies | None = None

    def cap(self, vector: SparseVector) -> SparseVector:
        """The `max_clauses` heaviest terms: the one bound every query sent obeys (the engine
        refuses more clauses), the full rescoring query of two-phase search included."""
        return vector.prune(top_k=self.max_clauses)

    def apply(self, vector: SparseVector) -> SparseVector:
        """The heaviest terms that pass `threshold` and `max_df_ratio`, at most `top_k` of them,
        within `cap`; the heaviest term always stays."""
        pruned = self.cap(vector).prune(top_k=self.top_k, threshold=self.threshold)
        if self.max_df_ratio is None or not pruned.weights:
            return pruned
        if self.frequencies is None:
            raise ValueError("max_df_ratio needs a document-frequency table")
        ratio, table = self.max_df_ratio, self.frequencies
        kept = [kv for kv in pruned.weights if table.ratio(feature_name(kv[0])) <= ratio]
        return SparseVector(tuple(kept) or pruned.weights[:1])


@dataclass(frozen=True)
class Hybrid:
    """BM25 + SPLADE: the two scores are added with these weights; BM25 runs on `text_fields`."""

    bm25_weight: float = 1.0
    splade_weight: float = 1.0
    text_fields: tuple[str, ...] = (TEXT_FIELD,)
    bm25_correction: float = 1.0
    """Multiplies the BM25 boost so this engine's BM25 scores are on the scale the weights
    assume (`IndexProfile.bm25_correction`: 1/2.2 on a legacy-BM25 engine, else 1)."""

    @property
    def bm25_boost(self) -> float:
        return self.bm25_weight * self.bm25_correction


def text_query(text: str, fields: tuple[str, ...], boost: float = 1.0) -> dict[str, Any]:
    """BM25 over one text field (`match`) or several (`multi_match`); empty text matches nothing."""
    if not text.strip():
        return {"match_none": {}}
    if len(fields) == 1:
        return {"match": {fields[0]: {"query": text, "boost": boost}}}
    return {"multi_match": {"query": text, "fields": list(fields), "boost": boost}}


def sparse_clause(
    vector: SparseVector,
    form: Form,
    field: str,
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
) -> dict[str, Any]:
    """The sparse part of a query in one form; scores equal the float dot product."""
    return tokens_clause(vector.query_features(quantization), form, field)


def tokens_clause(tokens: dict[str, float], form: Form, field: str) -> dict[str, Any]:
    """`sparse_clause` for query tokens already weighted (and quantized)."""
    if not tokens:
        return {"match_none": {}}
    if form == "rank_feature":
        return {"bool": {"should": feature_clauses(tokens, form, field)}}
    if form == "neural_sparse":
        return {"neural_sparse": {field: {"query_tokens": tokens}}}
    if form == "sparse_vector":  # Elasticsearch prunes query tokens unless told not to
        return {"sparse_vector": {"field": field, "query_vector": tokens, "prune": False}}
    raise ValueError(f"unknown query form {form!r}; choose from {FORMS}")


def feature_clauses(
    tokens: dict[str, float], form: Form, field: str, scale: float = 1.0
) -> list[dict[str, Any]]:
    """One `should` clause per query token scoring `scale * weight * stored value`: a
    `rank_feature` (linear) clause, or on an Elasticsearch `sparse_vector` field a boosted `term`
    (the field's term query is the same Lucene `FeatureField` linear query that `sparse_vector`
    builds, so the scores are equal)."""
    if form == "rank_feature":
        return [
            {"rank_feature": {"field": f"{field}.{name}", "linear": {}, "boost": w * scale}}
            for name, w in tokens.items()
        ]
    if form == "sparse_vector":
        return [
            {"term": {field: {"value": name, "boost": w * scale}}} for name, w in tokens.items()
        ]
    raise ValueError(f"{form} queries have no per-token clauses")


def filtered(
    query: dict[str, Any], filter_: dict[str, Any] | None, minimum_should_match: int = 1
) -> dict[str, Any]:
    """`query` restricted to documents matching `filter_` (no score), or `query` itself.

    With `minimum_should_match: 1` only documents the query matches are hits (the scores and top
    hits are the same as with 0 whenever the query matches at least `size` filtered documents),
    and Lucene can skip filtered documents that cannot reach the top; with 0, every filtered
    document matches, the rest with score 0. A `bool` of `should` clauses (SPLADE's
    `rank_feature` terms, the `sum` hybrid) takes the filter itself: one flat disjunction under a
    filter, which Lucene 10 prunes, rather than a disjunction nested in a conjunction."""
    if filter_ is None:
        return query
    inner = query.get("bool")
    if isinstance(inner, dict) and set(inner) <= {"should", "boost"} and inner.get("should"):
        merged = {**inner, "filter": [filter_], "minimum_should_match": minimum_should_match}
        return {"bool": merged}
    return {
        "bool": {
            "should": [query],
            "filter": [filter_],
            "minimum_should_match": minimum_should_match,
        }
    }


def hybrid_clause(
    vector: SparseVector,
    form: Form,
    field: str,
    text: str,
    hybrid: Hybrid,
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
) -> dict[str, Any]:
    """BM25 `match` and the SPLADE tokens in one flat `bool.should`, SPLADE's weight folded into
    each token's boost.

    Flat on purpose: Lucene inlines a nested pure disjunction only when it is a plain
    `BooleanQuery` without a boost, and MaxScore can skip weak clauses only among the clauses it
    sees. A nested, boosted `bool`, or Elasticsearch's `sparse_vector` query (a wrapper Lucene
    cannot inline), leaves the whole SPLADE part one clause that is scored on every document any
    token matches: Elasticsearch 9.2's hybrid took 9x BM25's time that way. `neural_sparse` is a
    plugin query with no per-token form: it stays one boosted clause."""
    bm25 = text_query(text, hybrid.text_fields, hybrid.bm25_boost)
    tokens = vector.query_features(quantization)
    if not tokens:
        return {"bool": {"should": [bm25]}}
    if form == "neural_sparse":
        sparse = tokens_clause(tokens, form, field)
        return {
            "bool": {
                "should": [bm25, {"bool": {"should": [sparse], "boost": hybrid.splade_weight}}]
            }
        }
    return {"bool": {"should": [bm25, *feature_clauses(tokens, form, field, hybrid.splade_weight)]}}


@dataclass(frozen=True)
class QueryRewriter:
    """Turns query text into a search body for one engine, form and SPLADE field."""

    encoder: QueryEncoder
    engine: Engine = "opensearch"
    form: Form = "rank_feature"
    field: str = "splade"
    pruning: QueryPruning = QueryPruning()
    rescore_window: int | None = None
    """Two-phase search: the pruned query retrieves, the unpruned one re-ranks this many hits."""
    hybrid: Hybrid | None = None
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
    filter: dict[str, Any] | None = None
    """An engine query every hit must match (filter context: it does not score)."""
    minimum_should_match: int = 1
    """On the scoring clauses when there is a filter (0: every filtered document matches)."""
    track_total_hits: bool = False
    """Count every match (slower: no dynamic pruning); the project shows no totals by default."""

    def __post_init__(self) -> None:
        check_form(self.engine, self.form)
        if self.rescore_window is not None and self.rescore_window < 1:
            raise ValueError("rescore_window must be >= 1")

    def weighted_terms(self, text: str) -> SparseVector:
        """The encoder's query vector, capped at `max_clauses` (pruning is applied in `body`).

        Empty or blank text has no terms: it must match nothing, not whatever the model expands
        an empty input into."""
        if not text.strip():
            return SparseVector(())
        return self.pruning.cap(self.encoder.encode_query(text))

    def _query(self, vector: SparseVector, text: str) -> dict[str, Any]:
        if self.hybrid:
            return hybrid_clause(
                vector, self.form, self.field, text, self.hybrid, self.quantization
            )
        return sparse_clause(vector, self.form, self.field, self.quantization)

    def body(self, text: str, size: int = 10) -> dict[str, Any]:
        """The full search body: query (+ rescore for two-phase), `size` hits, no `_source` bloat."""
        full = self.weighted_terms(text)
        pruned = self.pruning.apply(full)
        body: dict[str, Any] = {
            "size": size,
            "query": filtered(self._query(pruned, text), self.filter, self.minimum_should_match),
            "_source": {"excludes": [self.field]},
            "track_total_hits": self.track_total_hits,
        }
        if self.rescore_window is not None:
            body["rescore"] = {
                "window_size": max(self.rescore_window, size),
                "query": {
                    "rescore_query": self._query(full, text),
                    "query_weight": 0.0,
                    "rescore_query_weight": 1.0,
                },
            }
        return body

    def restricted_body(self, text: str, ids: list[str], size: int) -> dict[str, Any]:
        """The unpruned query scoring only the documents `ids`: the second phase of a global
        two-phase search, which re-scores the first phase's top window across all shards."""
        if not ids:
            return {"size": size, "query": {"match_none": {}}, "_source": False}
        return {
            "size": size,
            "query": {
                "bool": {
                    "must": [self._query(self.weighted_terms(text), text)],
                    "filter": [{"ids": {"values": ids}}],
                }
            },
            "_source": {"excludes": [self.field]},
        }
