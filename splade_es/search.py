"""Searching an index with BM25, SPLADE or both, one query or many (`_msearch`).

Hybrid runs as one `bool` query adding weighted scores (`sum`, every engine), as an OpenSearch
`hybrid` query fused by a search pipeline (`min_max`, `l2`, `z_score`, `rrf` at the engine), or as
two searches (BM25, SPLADE) in one `_msearch`, fused here (`@client`: engines without the plugin, and
any method a user wants as two searches: a node runs the two side by side, so a query costs about
the slower of the two, not their sum, nor a `bool` query scoring both on every match).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from typing import Any, Literal

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError, TransportError

from splade_es.client import EngineError, EngineInfo, describe_error
from splade_es.fusion import Fusion, fuse
from splade_es.indices import IndexProfile, SpladeField
from splade_es.models import model_identity, serves
from splade_es.query import (
    Form,
    Hybrid,
    QueryEncoder,
    QueryPruning,
    QueryRewriter,
    filtered,
    sparse_clause,
    text_query,
)
from splade_es.search_pipelines import TwoPhase, ensure_search_pipeline, fusion_pipeline_body
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

Mode = Literal["bm25", "splade", "hybrid"]
RescoreScope = Literal["shard", "global"]
DFS = "dfs_query_then_fetch"
MODES: tuple[Mode, ...] = ("bm25", "splade", "hybrid")
MSEARCH_TIMEOUT_S = 180


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
    fusion: Fusion = dataclass_field(default_factory=Fusion)
    two_phase: TwoPhase | None = None
    """SPLADE through OpenSearch's two-phase processor (neural_sparse queries)."""
    form: Form | None = None
    """The sparse query form; default: the one for the field type (`neural_sparse` on request)."""
    filter: dict[str, Any] | None = None
    """An engine query (e.g. `{"term": {"lang": "en"}}`) every hit must match, in every mode."""
    minimum_should_match: int | None = None
    """On the scoring clauses under a filter; None: 1 (see `msm`). With 0 every filtered
    document matches; the score-0 ones are dropped here."""
    track_total_hits: bool = False
    """Count all matches; off by default so Lucene can skip documents that cannot be top hits."""
    search_type: str | None = None
    """`dfs_query_then_fetch` (:data:`DFS`) scores BM25 with corpus-wide term statistics instead of
    each shard's own; SPLADE's scores never depend on them."""
    rescore_scope: RescoreScope = "shard"
    """Two-phase (`rescore_window`) per shard (a Lucene `rescore`: each shard re-scores its own
    top window) or global (the top window of all shards, re-scored by a second request)."""
    _pipelines: set[str] = dataclass_field(default_factory=set, repr=False)

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
        fusion: Fusion | None = None,
        two_phase: TwoPhase | None = None,
        form: Form | None = None,
        filter: dict[str, Any] | None = None,
        minimum_should_match: int | None = None,
        track_total_hits: bool = False,
        search_type: str | None = None,
        rescore_scope: RescoreScope = "shard",
    ) -> Searcher:
        """A searcher for `index` as it was indexed; a query model other than the index's
        (`model`, as given on the command line) is refused unless `force_model`.

        Hybrid `sum` weights are on the BM25 scale the index records (`IndexProfile.bm25_scale`),
        corrected for this engine's, so the same weights rank the same on OpenSearch 2.x and 3.x."""
        profile = IndexProfile.read(client, index)
        # BM25 alone (no encoder) works on any index; SPLADE needs the field
        splade = (
            profile.splade_field(field)
            if encoder is not None
            else profile.fields.get(field, SpladeField())
        )
        if model and splade.model and not force_model and not serves(splade.model, model):
            raise EngineError(
                f"index {profile.index!r} field {field!r} was encoded with {splade.model!r}, "
                f"not {model_identity(model)!r}: queries must use the same model (or one trained "
                "with --freeze-documents on it; force with --force-model)"
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
            Hybrid(
                weights.bm25_weight,
                weights.splade_weight,
                profile.text_fields,
                profile.bm25_correction(info),
            ),
            rescore_window,
            splade.quantization,
            profile.analyzer,
            fusion or Fusion(),
            two_phase,
            form,
            filter,
            minimum_should_match,
            track_total_hits,
            search_type,
            rescore_scope,
        )

    def rewriter(self, mode: Mode) -> QueryRewriter:
        if self.encoder is None:
            raise EngineError(f"{mode} search needs a query encoder (a --model)")
        return QueryRewriter(
            self.encoder,
            engine=self.info.engine,
            form=self.sparse_form,
            field=self.field,
            pruning=self.pruning,
            rescore_window=self.rescore_window,
            hybrid=self.hybrid if mode == "hybrid" else None,
            quantization=self.quantization,
            filter=self.filter,
            minimum_should_match=self.msm,
            track_total_hits=self.track_total_hits,
        )

    @property
    def msm(self) -> int:
        """`minimum_should_match` under a filter: as set, else 1 in every mode. On OpenSearch 3.6
        at 1M documents (5,183 SciFact + 666,158 Wikipedia + spliced; a term filter matching
        10%), msm 1 measured 30% faster than 0 for SPLADE (44 vs 62 ms p50) and 36% for the
        hybrid, with identical hits (benchmarks/results/latency_real/opensearch-3.6.0-shapes).
        At 50k spliced documents it was 16-17% slower for those two: msm 0 scores every filtered
        document, a cost that grows with the corpus, so the default follows the large corpus."""
        return 1 if self.minimum_should_match is None else self.minimum_should_match

    @property
    def drops_unmatched(self) -> bool:
        """Whether hits of score 0 (filtered documents the query does not match, which
        `minimum_should_match: 0` lets in) are dropped from the results."""
        return self.filter is not None and self.msm == 0

    @property
    def sparse_form(self) -> Form:
        if self.form is not None:
            return self.form
        return "neural_sparse" if self.two_phase else form_for_field(self.field_type)

    @property
    def weights(self) -> tuple[float, float]:
        return (self.hybrid.bm25_weight, self.hybrid.splade_weight)

    @property
    def fused_weights(self) -> tuple[float, float]:
        """The weights a client-side fusion applies: a `sum` adds raw BM25 scores, so its BM25
        weight carries this engine's BM25 correction as the one-query `sum` does (`bm25_boost`);
        the normalising methods and rrf are blind to a BM25 scale."""
        if self.fusion.method == "sum":
            return (self.hybrid.bm25_boost, self.hybrid.splade_weight)
        return self.weights

    def fused_by_client(self, mode: Mode) -> bool:
        """Whether `mode` runs as two searches fused here: a hybrid whose fusion runs at the
        client (`rrf` on Elasticsearch, any `METHOD@client`, `sum@client` included)."""
        return mode == "hybrid" and self.fusion_at == "client"

    @property
    def fusion_at(self) -> str:
        """Where hybrid fusion runs on this engine (`Fusion.where`); asking the engine for a
        method it lacks is a one-line EngineError naming the `@client` form."""
        try:
            return self.fusion.where(self.info.engine, self.info.version)
        except ValueError as exc:
            raise EngineError(str(exc)) from None

    def body(self, text: str, mode: Mode, size: int = 10) -> dict[str, Any]:
        """The search body for one query in one mode (an empty query matches nothing)."""
        if mode == "bm25":
            return {
                "size": size,
                "query": self._filtered(text_query(text, self.hybrid.text_fields), mode),
                "_source": {"excludes": [self.field]},
                "track_total_hits": self.track_total_hits,
            }
        if self.fused_by_client(mode):
            raise ValueError("client-side fusion runs two queries (`fused_bodies`), not one body")
        if mode == "hybrid" and self.fusion.method != "sum":
            rewriter = self.rewriter("splade")
            pruned = self.pruning.apply(rewriter.weighted_terms(text))
            sparse = sparse_clause(pruned, self.sparse_form, self.field, self.quantization)
            queries = [text_query(text, self.hybrid.text_fields), sparse]
            return {
                "size": size,
                "query": {"hybrid": {"queries": [self._filtered(q, mode) for q in queries]}},
                "_source": {"excludes": [self.field]},
                "track_total_hits": self.track_total_hits,
            }
        return self.rewriter(mode).body(text, size=size)

    def fused_bodies(self, text: str, size: int = 10) -> list[dict[str, Any]]:
        """The BM25 and the SPLADE body of a client-fused hybrid (in `fuse`'s order), each deep
        enough for the fusion (`Fusion.depth`); sent together in one `_msearch`. They ask for
        ids and scores only: fetching the `_source` of both top 100s cost more than the two
        searches (OpenSearch 3.6, SciFact: 20 ms even for titles alone, 10 ms without); the
        titles of the hits kept come from one `mget` (`with_titles`)."""
        depth = max(size, self.fusion.depth)
        return [{**self.body(text, m, depth), "_source": False} for m in ("bm25", "splade")]

    def fused_hits(self, bm25: dict[str, Any], splade: dict[str, Any], size: int) -> list[Hit]:
        """The top `size` of a client-fused hybrid from the responses to its `fused_bodies`
        (without titles: `with_titles`)."""
        drop = self.drops_unmatched
        fused = fuse(
            [(h.id, h.score) for h in self._hits(bm25, drop)],
            [(h.id, h.score) for h in self._hits(splade, drop)],
            self.fusion,
            self.fused_weights,
            size,
        )
        return [Hit(doc, score, "") for doc, score in fused]

    def with_titles(self, ranked: list[list[Hit]]) -> list[list[Hit]]:
        """`ranked` with each hit's title, read by one `mget` of the documents' titles."""
        ids = sorted({h.id for hits in ranked for h in hits})
        if not ids:
            return ranked
        params = {"_source_includes": "title", "request_timeout": MSEARCH_TIMEOUT_S}
        try:
            docs = self.client.mget(index=self.index, body={"ids": ids}, params=params)["docs"]
        except (TransportError, ConnectionError) as exc:
            raise EngineError(describe_error(exc, f"mget {self.index!r}")) from exc
        titles = {str(d["_id"]): str((d.get("_source") or {}).get("title", "")) for d in docs}
        return [[replace(h, title=titles.get(h.id, "")) for h in hits] for hits in ranked]

    def _filtered(self, query: dict[str, Any], mode: Mode) -> dict[str, Any]:
        return filtered(query, self.filter, self.msm)

    def pipeline(self, mode: Mode) -> str | None:
        """The search pipeline a mode runs through (created once), if any."""
        if mode == "hybrid" and self.fusion.method != "sum" and self.fusion_at == "engine":
            name = self.fusion.pipeline_name(self.weights)
            body = fusion_pipeline_body(self.fusion, self.weights)
        elif mode in ("splade", "hybrid") and self.two_phase is not None:
            # a sum-fused hybrid is one bool query: the processor prunes its neural_sparse clause
            name, body = self.two_phase.name, self.two_phase.body()
        else:
            return None
        if name not in self._pipelines:
            ensure_search_pipeline(self.client, name, body)
            self._pipelines.add(name)
        return name

    def _hits(self, response: dict[str, Any], drop_unmatched: bool = False) -> list[Hit]:
        if "error" in response:
            raise EngineError(
                f"search on {self.index!r} failed: {json.dumps(response['error'])[:500]}"
            )
        hits = [
            Hit(
                str(h["_id"]), float(h["_score"] or 0.0), str(h.get("_source", {}).get("title", ""))
            )
            for h in response["hits"]["hits"]
        ]
        return [h for h in hits if h.score > 0] if drop_unmatched else hits

    def search(self, text: str, mode: Mode = "splade", size: int = 10) -> list[Hit]:
        """Top `size` hits for one query."""
        return self.search_many([text], mode, size)[0]

    def search_many(
        self, texts: list[str], mode: Mode, size: int = 100, per_request: int = 32
    ) -> list[list[Hit]]:
        """Hits for many queries, sent `per_request` at a time through `_msearch`."""
        if self.fused_by_client(mode):  # each query's two searches side by side in one request
            out: list[list[Hit]] = []
            for start in range(0, len(texts), per_request):
                chunk = texts[start : start + per_request]
                bodies = [body for text in chunk for body in self.fused_bodies(text, size)]
                pairs = self._responses(bodies, len(bodies))
                fused = [
                    self.fused_hits(b, s, size)
                    for b, s in zip(pairs[::2], pairs[1::2], strict=True)
                ]
                out += self.with_titles(fused)
            return out
        if self.rescore_window is not None and self.rescore_scope == "global" and mode != "bm25":
            return self._global_two_phase(texts, mode, size, per_request)
        bodies = [self.body(t, mode, size) for t in texts]
        pipeline = self.pipeline(mode)
        if pipeline is None:
            return self._msearch(bodies, per_request)
        # `_msearch` takes no search pipeline (neither as parameter nor in its headers on 2.19)
        return [self._search(body, {"search_pipeline": pipeline}, mode) for body in bodies]

    def _global_two_phase(
        self, texts: list[str], mode: Mode, size: int, per_request: int
    ) -> list[list[Hit]]:
        """The pruned query finds the top window over all shards, the unpruned one re-scores just
        those documents: unlike a per-shard `rescore`, the window does not shrink per shard."""
        assert self.rescore_window is not None
        rewriter = replace(self.rewriter(mode), rescore_window=None)
        window = max(self.rescore_window, size)
        bodies = [{**rewriter.body(t, size=window), "_source": False} for t in texts]
        first = self._msearch(bodies, per_request)
        second = [
            rewriter.restricted_body(t, [h.id for h in hits], size)
            for t, hits in zip(texts, first, strict=True)
        ]
        return self._msearch(second, per_request)

    def _search(self, body: dict[str, Any], params: dict[str, Any], mode: Mode) -> list[Hit]:
        if self.search_type is not None:
            params = {**params, "search_type": self.search_type}
        try:
            response = self.client.search(index=self.index, body=body, params=params)
        except (TransportError, ConnectionError) as exc:
            raise EngineError(describe_error(exc, f"search {self.index!r}")) from exc
        return self._hits(response, self.drops_unmatched)

    def _msearch(self, bodies: list[dict[str, Any]], per_request: int) -> list[list[Hit]]:
        drop = self.drops_unmatched
        return [self._hits(r, drop) for r in self._responses(bodies, per_request)]

    def _responses(self, bodies: list[dict[str, Any]], per_request: int) -> list[dict[str, Any]]:
        """The engine's response to each body, `per_request` bodies per `_msearch`."""
        results: list[dict[str, Any]] = []
        header = {"index": self.index}
        if self.search_type is not None:
            header["search_type"] = self.search_type
        # a batch of queries can take long on a loaded machine: a generous timeout, and the
        # transport retries a timed-out request (ConnectionSettings.max_retries)
        params: dict[str, Any] = {"request_timeout": MSEARCH_TIMEOUT_S}
        for start in range(0, len(bodies), per_request):
            lines = []
            for body in bodies[start : start + per_request]:
                lines.append(json.dumps(header))
                lines.append(json.dumps(body))
            try:
                response = self.client.msearch(body="\n".join(lines) + "\n", params=params)
            except (TransportError, ConnectionError) as exc:
                raise EngineError(describe_error(exc, f"msearch {self.index!r}")) from exc
            results.extend(response["responses"])
        return results
