"""Fine-tune splade-tiny on SciFact with `splade-es train` and score each model on SciFact test.

Every model (the base one included) is scored the way production loads it: `SpladeEncoder.load` on
the exported folder, documents truncated to 256 tokens, exact in-process sparse scoring over the
full corpus (`splade_es.evaluation.ExactSparseIndex`); `engine NAME` scores it again through a live
node (see `score_on_engine`). In-process hybrid BM25 + SPLADE adds the
in-process BM25 score (k1=0.9, b=0.4) times a weight chosen on the dev queries (the held-out 10% of
the training queries that training also uses for model selection), never on test.

Results accumulate in `benchmarks/results/training/results.json`; every invocation rewrites
`README.md` and `ndcg_vs_doc_terms.png` from all results so far, so runs can be added one at a time:

    python -m splade_es.benchmarks.training_sweep pooling
    python -m splade_es.benchmarks.training_sweep base
    python -m splade_es.benchmarks.training_sweep run NAME -- [splade-es train options]
    python -m splade_es.benchmarks.training_sweep engine NAME --url URL   # through a live node
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import paths
from .query_cost import efficiency_table, pruned_label, query_terms

if TYPE_CHECKING:
    from splade_es.encoder import SpladeEncoder
    from splade_es.query import QueryPruning

RESULTS = paths.RESULTS / "training"
DEFAULT_BEIR = paths.SCIFACT
HYBRID_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0)
DEV_FRACTION, DEV_MAX_QUERIES, DEV_SEED = 0.1, 100, 0  # TrainConfig's defaults


def run_model(name: str) -> str:
    """The model a stored result was scored with: the base alias or the run's exported folder."""
    return "splade-tiny" if name == "base" else str(RESULTS / "runs" / name)


def load_results() -> dict[str, dict[str, Any]]:
    path = RESULTS / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def store_result(name: str, result: dict[str, Any]) -> None:
    results = load_results()
    results[name] = result
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")


# Scoring ---------------------------------------------------------------------------------------


def _dense_scores(queries: dict[str, Any], ids: list[str], vectors: list[Any]) -> Any:
    """`[len(queries), len(ids)]` exact SPLADE dot products."""
    import numpy as np
    from scipy import sparse as sp

    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for row, vector in enumerate(vectors):
        for token, weight in vector.weights:
            rows.append(row)
            cols.append(vocab.setdefault(token, len(vocab)))
            vals.append(weight)
    docs = sp.csr_matrix((vals, (rows, cols)), shape=(len(ids), max(1, len(vocab))))
    rows, cols, vals = [], [], []
    for row, vector in enumerate(queries.values()):
        for token, weight in vector.weights:
            if token in vocab:
                rows.append(row)
                cols.append(vocab[token])
                vals.append(weight)
    q = sp.csr_matrix((vals, (rows, cols)), shape=(len(queries), docs.shape[1]))
    return np.asarray((q @ docs.T).todense(), dtype=np.float64)


def _run(qids: list[str], ids: list[str], scores: Any, k: int = 100) -> dict[str, dict[str, float]]:
    import numpy as np

    run = {}
    for row, qid in enumerate(qids):
        top = np.argsort(-scores[row])[:k]
        run[qid] = {ids[i]: float(scores[row, i]) for i in top if scores[row, i] > 0}
    return run


def score_model(model: str, beir_dir: Path, cache_name: str | None = None) -> dict[str, Any]:
    """Test metrics of SPLADE alone and of hybrid BM25 + SPLADE (weight picked on dev).

    Encoded documents are cached as `cache/<cache_name>.jsonl` (`run` clears its own first).
    """
    from splade_es.bm25 import BM25
    from splade_es.encoder import SpladeEncoder
    from splade_es.evaluation import evaluate
    from splade_es.training.data import load_beir, split_dev
    from splade_es.training.evaluate import load_vectors, save_vectors

    test = load_beir(beir_dir, "test")
    train = load_beir(beir_dir, "train")
    _, dev_qids = split_dev(sorted(train.qrels), DEV_FRACTION, DEV_MAX_QUERIES, DEV_SEED)
    encoder = SpladeEncoder.load(model, device="cpu", doc_max_length=256)
    started = time.time()
    cache = RESULTS / "cache" / f"{cache_name}.jsonl" if cache_name else None
    if cache is not None and cache.is_file():
        ids, vectors = load_vectors(cache)
    else:
        ids = list(test.docs)
        texts = [test.docs[d] for d in ids]
        vectors = encoder.encode_documents(texts, batch_size=32, progress=True)
        if cache is not None:
            save_vectors(cache, ids, vectors)
    encode_seconds = time.time() - started
    bm25 = BM25(ids, [test.docs[d] for d in ids])
    out: dict[str, Any] = {"encode_seconds": encode_seconds}

    def split_scores(data: Any, qids: list[str]) -> tuple[Any, Any, list[Any]]:
        queries = encoder.encode_queries([data.queries[q] for q in qids])
        splade = _dense_scores(dict(zip(qids, queries, strict=True)), ids, vectors)
        return splade, bm25.scores([data.queries[q] for q in qids]), queries

    dev_splade, dev_bm25, _ = split_scores(train, dev_qids)
    dev_qrels = {q: train.qrels[q] for q in dev_qids}
    dev_ndcg = {
        w: evaluate(_run(dev_qids, ids, dev_splade + w * dev_bm25), dev_qrels)["ndcg@10"]
        for w in HYBRID_GRID
    }
    weight = max(HYBRID_GRID, key=lambda w: (dev_ndcg[w], -w))
    test_qids = sorted(test.qrels)
    splade, bm25_scores, queries = split_scores(test, test_qids)
    out.update(evaluate(_run(test_qids, ids, splade), test.qrels))
    hybrid = evaluate(_run(test_qids, ids, splade + weight * bm25_scores), test.qrels)
    out.update({f"hybrid_{k}": v for k, v in hybrid.items()})
    out["hybrid_bm25_weight"] = weight
    out["hybrid_grid_max"] = max(HYBRID_GRID)
    out["dev_ndcg@10"] = dev_ndcg[0.0]
    out["doc_terms"] = sum(len(v) for v in vectors) / len(vectors)
    out["query_terms"] = sum(len(v) for v in queries) / len(queries)
    return out


def score_bm25(beir_dir: Path) -> dict[str, Any]:
    from splade_es.bm25 import BM25, tokenize
    from splade_es.evaluation import evaluate
    from splade_es.training.data import load_beir

    test = load_beir(beir_dir, "test")
    ids = list(test.docs)
    bm25 = BM25(ids, [test.docs[d] for d in ids])
    qids = sorted(test.qrels)
    metrics = evaluate(_run(qids, ids, bm25.scores([test.queries[q] for q in qids])), test.qrels)
    metrics["doc_terms"] = sum(len(set(tokenize(test.docs[d]))) for d in ids) / len(ids)
    metrics["query_terms"] = sum(len(set(tokenize(test.queries[q]))) for q in qids) / len(qids)
    return metrics


# Through the engine ----------------------------------------------------------------------------

SUM_GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
"""BM25 weights beside SPLADE's 1 for `sum` fusion (raw scores, whose scales differ by model)."""
SHARE_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""BM25's share of the weights for the normalised fusions (OpenSearch's RRF takes no weights)."""


def fusion_candidates() -> list[tuple[Any, tuple[float, float]]]:
    """Every (fusion, (bm25 weight, splade weight)) the dev queries choose among."""
    from splade_es.fusion import Fusion

    candidates: list[tuple[Any, tuple[float, float]]] = [
        (Fusion("sum"), (w, 1.0)) for w in SUM_GRID
    ]
    for method in ("min_max", "z_score"):
        candidates += [(Fusion(method), (s, round(1.0 - s, 3))) for s in SHARE_GRID]
    return [*candidates, (Fusion("rrf"), (1.0, 1.0))]


def score_on_engine(model: str, beir_dir: Path, name: str, url: str) -> dict[str, Any]:
    """BM25, SPLADE and hybrid through a live node, the way a user runs them: `splade-es encode`
    and `index-vectors` into `training-sweep-NAME` (BM25 on the analyzer the node offers, english
    with analysis-common), then `_msearch`. The hybrid fusion and weights are picked on the dev
    queries (client-side arithmetic over the engine's two top-100 lists, as OpenSearch's
    pipelines compute it) and the chosen one runs in the engine on the test queries."""
    from dataclasses import replace

    from splade_es.batch_encode import encode_file
    from splade_es.client import open_cluster
    from splade_es.encoder import SpladeEncoder
    from splade_es.evaluation import evaluate
    from splade_es.fusion import Fusion, Where, fuse, fused_in_engine
    from splade_es.indexing import index_file
    from splade_es.options import connection_settings
    from splade_es.query import Hybrid
    from splade_es.search import Searcher
    from splade_es.training.data import load_beir, split_dev

    index = f"training-sweep-{name}"
    encoded = RESULTS / "cache" / f"{name}.engine.jsonl"
    encoded.parent.mkdir(parents=True, exist_ok=True)
    encoder = SpladeEncoder.load(model, device="cpu", dtype="float32", doc_max_length=256)
    if not encoded.is_file():
        encode_file(encoder, model, beir_dir / "corpus.jsonl", encoded)
    client, info = open_cluster(connection_settings({"url": url}))
    client.indices.delete(index=index, ignore_unavailable=True)
    summary = index_file(client, info, encoded, index, resume=False, show_progress=False)
    if not summary.adds_up():
        raise RuntimeError(f"indexing {encoded} into {index!r} did not add up: {summary.line()}")
    client.indices.refresh(index=index)
    searcher = Searcher.for_index(client, info, index, encoder)
    test, train = load_beir(beir_dir, "test"), load_beir(beir_dir, "train")
    _, dev_qids = split_dev(sorted(train.qrels), DEV_FRACTION, DEV_MAX_QUERIES, DEV_SEED)
    splits = {"dev": (train, dev_qids), "test": (test, sorted(test.qrels))}

    def ranked(variant: Searcher, split: str, mode: str) -> dict[str, list[tuple[str, float]]]:
        data, qids = splits[split]
        hits = variant.search_many([data.queries[q] for q in qids], mode, size=100)  # type: ignore[arg-type]
        return {q: [(h.id, h.score) for h in hs] for q, hs in zip(qids, hits, strict=True)}

    def metrics(run: dict[str, list[tuple[str, float]]], split: str) -> dict[str, float]:
        data, qids = splits[split]
        return evaluate(
            {q: dict(hits) for q, hits in run.items()}, {q: data.qrels[q] for q in qids}
        )

    dev = {mode: ranked(searcher, "dev", mode) for mode in ("bm25", "splade")}

    def dev_ndcg(candidate: tuple[Any, tuple[float, float]]) -> float:
        fusion, weights = candidate
        client_side = replace(fusion, at="client")
        run = {
            q: fuse(dev["bm25"][q], dev["splade"][q], client_side, weights, 100) for q in dev_qids
        }
        return metrics(run, "dev")["ndcg@10"]

    candidates = fusion_candidates()
    scores = [dev_ndcg(c) for c in candidates]
    fusion, weights = candidates[scores.index(max(scores))]
    at: Where = "engine" if fused_in_engine(fusion.method, info.engine, info.version) else "client"
    hybrid = replace(
        searcher,
        fusion=Fusion(fusion.method, at),
        hybrid=Hybrid(weights[0], weights[1], searcher.hybrid.text_fields),
    )
    out: dict[str, Any] = {
        "engine": f"{info.engine} {info.version}",
        "engine_analyzer": searcher.analyzer,
        "engine_fusion": f"{fusion.method}@{at} {weights[0]:g}/{weights[1]:g}",
        "engine_fusion_dev_ndcg@10": max(scores),
    }
    for key, variant, mode in (
        ("engine_bm25", searcher, "bm25"),
        ("engine", searcher, "splade"),
        ("engine_hybrid", hybrid, "hybrid"),
    ):
        out.update(
            {f"{key}_{k}": v for k, v in metrics(ranked(variant, "test", mode), "test").items()}
        )
    client.indices.delete(index=index, ignore_unavailable=True)
    return out


# Pooling ---------------------------------------------------------------------------------------


def measure_pooling(repeats: int = 5) -> dict[str, Any]:
    """Seconds for the forward and the backward pass of one training batch (48 documents at 128
    tokens: 16 queries' positives and 2 negatives each) and for encoding 64 documents, with the
    project's pooling and with the library's `SpladePooling`, interleaved."""
    import torch

    from splade_es.training.data import load_beir
    from splade_es.training.model import build_model

    data = load_beir(DEFAULT_BEIR, "train")
    docs = list(data.docs.values())
    models = {p: build_model("shared", "splade-tiny", pooling=p) for p in ("fast", "library")}
    timings: dict[str, list[float]] = {
        f"{p}-{k}": [] for p in models for k in ("forward", "backward", "encode")
    }
    for _ in range(repeats):
        for pooling, model in models.items():
            model.train()
            features = model.preprocess(docs[:48], task="document")
            started = time.perf_counter()
            weights = model(dict(features))["sentence_embedding"]
            middle = time.perf_counter()
            (weights.sum(dim=0) ** 2).sum().backward()  # a FLOPS-like objective
            timings[f"{pooling}-forward"].append(middle - started)
            timings[f"{pooling}-backward"].append(time.perf_counter() - middle)
            model.zero_grad()
            model.eval()
            started = time.perf_counter()
            with torch.inference_mode():
                model.encode_document(docs[:64], batch_size=32)
            timings[f"{pooling}-encode"].append(time.perf_counter() - started)
    out: dict[str, Any] = {k: statistics.median(v) for k, v in timings.items()}
    for pooling in models:
        out[f"{pooling}-train"] = out[f"{pooling}-forward"] + out[f"{pooling}-backward"]
    out["repeats"] = repeats
    return out


# Report ----------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def write_report() -> None:
    """README.md tables and the nDCG@10 vs doc-terms plot, from results.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = load_results()
    runs = {n: r for n, r in results.items() if n not in ("pooling", "bm25")}
    lines = [
        "# SPLADE fine-tuning on SciFact (splade-tiny, 2-core CPU, no GPU)",
        "",
        "Generated by `python -m splade_es.benchmarks.training_sweep ...` (commands below) from",
        "`results.json`. Test split: 300 queries, full corpus (5183 docs), documents truncated to",
        "256 tokens, exact in-process sparse scoring; each model loaded from its exported folder",
        "with `SpladeEncoder.load`. Hybrid = SPLADE score + w x BM25 score (in-process BM25,",
        "k1=0.9 b=0.4), w chosen on the dev queries (10% of the training queries, held out from",
        "training), never on test. Terms = average nonzero entries per document / query vector",
        "(the FLOPS cost). Query ms = median time to encode one test query alone on this CPU",
        "(`query-speed`, after 20 warm-up queries; an inference-free model only tokenizes).",
        "`-mergeA` rows (`merge`) are a trained run's weights averaged with its base model's,",
        "A x trained + (1 - A) x base (WiSE-FT; no training: `--merge-weight A` does it at export).",
        "",
        "| run | nDCG@10 | R@100 | MRR@10 | doc terms | query terms | hybrid nDCG@10 | hybrid R@100"
        " | hybrid w | dev nDCG@10 | query ms | train wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    bm25 = results.get("bm25")
    if bm25:
        lines.append(
            f"| BM25 (in-process) | {_fmt(bm25['ndcg@10'])} | {_fmt(bm25['recall@100'])} "
            f"| {_fmt(bm25['mrr@10'])} | {bm25['doc_terms']:.1f} (unique words) "
            f"| {bm25['query_terms']:.1f} | - | - | - | - | - | - |"
        )
    order = sorted(runs, key=lambda n: (n != "base", runs[n].get("order", 0), n))
    for name in order:
        r = runs[name]
        wall = f"{r['train_seconds'] / 60:.1f} min" if r.get("train_seconds") else "-"
        lines.append(
            f"| {name} | {_fmt(r['ndcg@10'])} | {_fmt(r['recall@100'])} | {_fmt(r['mrr@10'])} "
            f"| {r['doc_terms']:.1f} | {r['query_terms']:.1f} | {_fmt(r['hybrid_ndcg@10'])} "
            f"| {_fmt(r['hybrid_recall@100'])} | {r['hybrid_bm25_weight']:g} "
            f"| {_fmt(r.get('dev_ndcg@10'))} | {_fmt(r.get('query_ms_p50'), 2)} | {wall} |"
        )
    at_edge = [
        n for n in order if runs[n]["hybrid_bm25_weight"] >= runs[n].get("hybrid_grid_max", 3)
    ]
    if at_edge:
        lines += [
            "",
            f"Hybrid weight at the top of its grid for {', '.join(f'`{n}`' for n in at_edge)} "
            f"(grid then 0..{min(runs[n].get('hybrid_grid_max', 3) for n in at_edge):g}): a larger "
            "BM25 weight might score higher there; that hybrid figure is a lower bound.",
        ]
    lines += engine_table(runs, order)
    lines += domain_table(runs, order)
    lines += efficiency_table(runs, order)
    base = runs.get("base")
    lines += [
        "",
        "Targets (issue #8): fine-tuned SPLADE alone >= 0.70, hybrid >= 0.73, without buying",
    ]
    lines += ["quality with more terms than the base model:", ""]
    for name in order:
        r = runs[name]
        if name == "base" or base is None:
            continue
        where = "engine_" if "engine_ndcg@10" in r else ""
        splade, hybrid = r[f"{where}ndcg@10"], r[f"{where}hybrid_ndcg@10"]
        terms = r["doc_terms"] / base["doc_terms"]
        lines.append(
            f"- `{name}` ({'through the engine' if where else 'in-process'}): SPLADE "
            f"{'meets' if splade >= 0.70 else 'misses'} 0.70 ({splade:.4f}), hybrid "
            f"{'meets' if hybrid >= 0.73 else 'misses'} 0.73 ({hybrid:.4f}), at {terms:.2f}x the "
            f"base model's document terms and {r['query_terms'] / base['query_terms']:.2f}x its "
            "query terms."
        )
    lines += seed_spread(runs, order)
    lines += [
        "",
        "The previous hand-written loop reached nDCG@10 0.686 (178 doc terms, 36.7 query terms) with",
        "240 steps of InfoNCE + FLOPS (lambda_d 1e-3) on all 809 training queries and no dev split;",
        "the runs here hold 10% of the training queries out for dev (checkpoint selection and the",
        "hybrid weight), so they train on 729.",
        "",
        "The 240-step runs (`contrastive`, `distill-kl+infonce`) come from a session whose CPU",
        "was shared with other jobs and capped training at 240 steps; their wall times are upper",
        "bounds and their exported models are gone, so they have no engine row. Later runs had",
        "the 2 cores to themselves (beside an idle engine node).",
        "",
        "Distillation needs no hub model: `--teacher ensemble` scores every (query, candidate) pair",
        "with in-process BM25 and the base SPLADE model, standardises both per query, mixes them",
        "50/50 and maps the result onto SPLADE's score scale (`training/teacher.py`); the scores are",
        "written to `runs/<run>/teacher_scores.tsv` (the `--teacher-scores` format).",
        "",
        "No GPU was lent to these tasks: every number here is CPU-only (bf16/fp16 mixed precision",
        "and multi-GPU runs through the Hugging Face Trainer are untested here).",
        "",
        "## Commands (repository root, `PYTHONPATH=$PWD .venv/bin/python`)",
        "",
    ]
    for name in ["bm25", "pooling", *order]:
        if name in results and results[name].get("command"):
            lines.append(f"- `{name}`: `{results[name]['command']}`")
        if name in results and results[name].get("engine_command"):
            lines.append(f"- `{name}` through the engine: `{results[name]['engine_command']}`")
    lines.append("")
    for name in order:
        if runs[name].get("settings"):
            lines.append(f"- `{name}` settings: {runs[name]['settings']}")
    pooling = results.get("pooling")
    if pooling:
        lines += [
            "",
            "## Pooling: the project's `splade_pool` vs the library's `SpladePooling`",
            "",
            "splade-tiny, median of {repeats} interleaved repeats on this CPU: forward and"
            " backward pass of 48 documents at 128 tokens in training mode (one batch of 16"
            " positives and 32 negatives), and encoding 64 documents.".format(**pooling),
            "",
            "| pooling | forward (s) | backward (s) | train total (s) | encode 64 docs (s) |",
            "|---|---|---|---|---|",
            *(
                f"| {label} | {pooling[p + '-forward']:.2f} | {pooling[p + '-backward']:.2f} "
                f"| {pooling[p + '-train']:.2f} | {pooling[p + '-encode']:.2f} |"
                for p, label in (
                    ("fast", "fast (`splade_es.pooling`)"),
                    ("library", "library (`SpladePooling`)"),
                )
            ),
            "",
            f"fast is {pooling['library-train'] / pooling['fast-train']:.2f}x the library's speed"
            f" per training step and {pooling['library-encode'] / pooling['fast-encode']:.2f}x"
            " when encoding; `--pooling fast` is the default.",
        ]
    lines += ["", "![nDCG@10 vs average active document terms](ndcg_vs_doc_terms.png)", ""]
    (RESULTS / "README.md").write_text("\n".join(lines))

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in order:
        r = runs[name]
        color = "gray" if name == "base" else "C0"
        ax.scatter(r["doc_terms"], r["ndcg@10"], color=color)
        ax.scatter(r["doc_terms"], r["hybrid_ndcg@10"], color=color, marker="^")
        ax.annotate(
            name,
            (r["doc_terms"], r["ndcg@10"]),
            fontsize=7,
            xytext=(4, -8),
            textcoords="offset points",
        )
    if bm25:
        ax.axhline(bm25["ndcg@10"], color="C3", linestyle="--", linewidth=1, label="BM25")
    ax.axhline(0.70, color="C2", linestyle=":", linewidth=1, label="target SPLADE 0.70")
    ax.axhline(0.73, color="C1", linestyle=":", linewidth=1, label="target hybrid 0.73")
    ax.set_xlabel("average active terms per document")
    ax.set_ylabel("nDCG@10 (SciFact test); triangles: hybrid")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "ndcg_vs_doc_terms.png", dpi=120)
    plt.close(fig)


IN_DOMAIN = ("scifact", "nfcorpus")
OUT_OF_DOMAIN = ("arguana", "cisi", "medline", "npl")
"""Training uses SciFact and NFCorpus only; the other four are never trained or tuned on."""


def cross_collections(model: str, pruning: QueryPruning | None = None) -> dict[str, Any]:
    """The model on all six judged collections, exact and in process (`splade-es eval
    --in-process`: bfloat16, 256 document tokens, ArguAna's self hits dropped), as the
    cross-collection table of the base model was made; encoded corpora are cached. With
    `pruning`, each query keeps what `search --top-k` would send."""
    from splade_es.beir_eval import cross_table, find_collections
    from splade_es.encoder import SpladeEncoder
    from splade_es.exact_eval import ExactRuns, cache_dir_from_env

    encoder = SpladeEncoder.load(model, dtype="bfloat16", doc_max_length=256)
    folders = [paths.DATASETS / name for name in (*IN_DOMAIN, *OUT_OF_DOMAIN)]
    collections = find_collections(folders, drop_self_hits=["arguana"])
    runs = ExactRuns(encoder, cache_dir_from_env(), model_name=model, pruning=pruning)
    return cross_table(collections, runs, progress=print).to_json()


def domain_means(xeval: dict[str, Any], mode: str) -> tuple[float, float]:
    """Mean nDCG@10 of `mode` over the in-domain and over the out-of-domain collections."""
    rows = xeval["collections"]

    def mean(names: tuple[str, ...]) -> float:
        return statistics.fmean(rows[n]["modes"][mode]["ndcg@10"] for n in names)

    return mean(IN_DOMAIN), mean(OUT_OF_DOMAIN)


def domain_table(runs: dict[str, dict[str, Any]], order: list[str]) -> list[str]:
    """In-domain vs out-of-domain nDCG@10 of every run that has a cross-collection result,
    against the base model (the first question of a fine-tuning recipe: what did it cost
    elsewhere?)."""
    scored = [n for n in order if "xeval" in runs[n]]
    if not scored or "base" not in scored:
        return []
    base = {mode: domain_means(runs["base"]["xeval"], mode) for mode in ("splade", "hybrid")}
    lines = [
        "",
        "## In domain and out of domain (six collections, exact in process)",
        "",
        f"In domain: {', '.join(IN_DOMAIN)} (training data); out of domain: "
        f"{', '.join(OUT_OF_DOMAIN)} (never trained or tuned on). Mean nDCG@10 over each group "
        "(BEIR-style, unweighted); hybrid = 1 x BM25 + 1 x SPLADE over every document; Δ "
        "against the base model. Per collection: `results.json` (`xeval`).",
        "",
        "| run | SPLADE in | Δ | SPLADE out | Δ | hybrid in | Δ | hybrid out | Δ | "
        + " | ".join(OUT_OF_DOMAIN)
        + " |",
        "|---|" + "---:|" * (8 + len(OUT_OF_DOMAIN)),
    ]
    for name in scored:
        xeval = runs[name]["xeval"]
        cells = []
        for mode in ("splade", "hybrid"):
            inside, outside = domain_means(xeval, mode)
            cells += [
                f"{inside:.4f}",
                f"{inside - base[mode][0]:+.4f}",
                f"{outside:.4f}",
                f"{outside - base[mode][1]:+.4f}",
            ]
        per = [
            f"{xeval['collections'][n]['modes']['splade']['ndcg@10']:.4f}" for n in OUT_OF_DOMAIN
        ]
        lines.append(f"| {name} | " + " | ".join(cells + per) + " |")
    return lines


def seed_spread(runs: dict[str, dict[str, Any]], order: list[str]) -> list[str]:
    """Runs with the same settings (they differ only in `--seed`): mean and range, as report lines."""
    groups: dict[str, list[str]] = {}
    for name in order:
        if runs[name].get("settings"):
            groups.setdefault(runs[name]["settings"], []).append(name)
    lines = []
    for names in (g for g in groups.values() if len(g) > 1):
        where = "engine_" if all("engine_ndcg@10" in runs[n] for n in names) else ""
        parts = []
        for label, key in (("SPLADE", f"{where}ndcg@10"), ("hybrid", f"{where}hybrid_ndcg@10")):
            values = [runs[n][key] for n in names]
            parts.append(
                f"{label} mean {statistics.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"
            )
        lines.append(
            f"- Same settings, {len(names)} seeds ({', '.join(f'`{n}`' for n in names)}"
            f"{', through the engine' if where else ''}): {'; '.join(parts)}."
        )
    return lines


def engine_table(runs: dict[str, dict[str, Any]], order: list[str]) -> list[str]:
    """The runs scored through a live node (`engine NAME`), as report lines."""
    scored = [n for n in order if "engine_ndcg@10" in runs[n]]
    if not scored:
        return []
    first = runs[scored[0]]
    lines = [
        "",
        f"### Through the engine ({first['engine']}, BM25 on the {first['engine_analyzer']} "
        "analyzer)",
        "",
        "`splade-es encode` (256 tokens) + `index-vectors`, queries through `_msearch`. Hybrid: "
        "the fusion and weights (BM25/SPLADE) with the best dev nDCG@10 among sum, min_max, "
        "z_score and RRF, then run in the engine on the test queries.",
        "",
        "| run | BM25 nDCG@10 | SPLADE nDCG@10 | SPLADE R@100 | hybrid nDCG@10 | hybrid R@100 "
        "| fusion (dev-chosen) | dev nDCG@10 of that fusion |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in scored:
        r = runs[name]
        lines.append(
            f"| {name} | {_fmt(r['engine_bm25_ndcg@10'])} | {_fmt(r['engine_ndcg@10'])} "
            f"| {_fmt(r['engine_recall@100'])} | {_fmt(r['engine_hybrid_ndcg@10'])} "
            f"| {_fmt(r['engine_hybrid_recall@100'])} | {r['engine_fusion']} "
            f"| {_fmt(r['engine_fusion_dev_ndcg@10'])} |"
        )
    return lines


# Commands --------------------------------------------------------------------------------------


def _command() -> str:
    return "python -m splade_es.benchmarks.training_sweep " + shlex.join(sys.argv[1:])


@click.group()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Folder for results, runs and the report [default: {RESULTS}].",
)
def main(out: Path | None) -> None:
    """Training benchmarks on SciFact; each command stores its result and rewrites the report."""
    global RESULTS
    if out is not None:
        RESULTS = out


@main.command()
@click.option("--repeats", type=int, default=5, show_default=True)
def pooling(repeats: int) -> None:
    """Time the project's pooling against the library's."""
    result = measure_pooling(repeats)
    result["command"] = _command()
    store_result("pooling", result)
    print(result, flush=True)
    write_report()


@main.command()
@click.option("--beir-dir", type=click.Path(path_type=Path), default=DEFAULT_BEIR)
def base(beir_dir: Path) -> None:
    """Score BM25 and the untrained splade-tiny."""
    bm25 = score_bm25(beir_dir)
    bm25["command"] = _command()
    store_result("bm25", bm25)
    result = score_model("splade-tiny", beir_dir, "base")
    result["command"] = _command()
    store_result("base", result)
    print(result, flush=True)
    write_report()


SETTINGS = (
    "loss",
    "negatives",
    "negative_source",
    "teacher",
    "lr",
    "max_steps",
    "batch_size",
    "lambda_d",
    "lambda_q",
    "eval_every",
)
"""Always named in a run's settings (the first runs recorded only these)."""
NOT_SETTINGS = frozenset(
    {"beir_dir", "out", "seed", "progress", "resume", "report_to", "log_every", "save_every"}
    | {"save_total_limit", "stop_at_step"}
)
"""What does not change the model a run trains (seeds differ by design)."""


def settings_of(config: dict[str, Any]) -> str:
    """What a run was trained with, for grouping runs that differ only in their seed: the
    SETTINGS, then every other option that is not at its default (`--anchor-weight`,
    `--teacher-bm25-weight`, ...), so two recipes never pass for two seeds of one."""
    from splade_es.training.trainer import TrainConfig

    defaults = dataclasses.asdict(TrainConfig())  # default factories too (`mix`)
    named = [f"{k}={config[k]}" for k in SETTINGS]
    named += [
        f"{k}={v}"
        for k, v in config.items()
        if k not in SETTINGS
        and k not in NOT_SETTINGS
        and k in defaults
        and v != defaults[k]
        and k != "merge_weight"
    ]
    if "merge_weight" in config:  # runs from before the option exported the trained model as is
        weight = config["merge_weight"]  # None: the first default, 0.5 (pair 1)
        if weight is None:
            weight = 1.0 if config.get("shape") == "pair" else 0.5
        named.append(f"merge_weight={weight}")
    return ", ".join(named)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--beir-dir", type=click.Path(path_type=Path), default=DEFAULT_BEIR)
@click.option("--order", type=int, default=0, help="Row position in the report.")
@click.option(
    "--xeval/--no-xeval",
    default=True,
    show_default=True,
    help="Also score the model on all six collections (in domain vs out of domain).",
)
def run(name: str, train_args: tuple[str, ...], beir_dir: Path, order: int, xeval: bool) -> None:
    """Train with `splade-es train TRAIN_ARGS` into runs/NAME, then score the exported model."""
    import shutil

    from splade_es.training.cli import train as train_command

    out = RESULTS / "runs" / name
    args = ["--beir-dir", str(beir_dir), "--out", str(out), "--no-progress", *train_args]
    started = time.time()
    train_command.main(args=args, standalone_mode=False)
    train_seconds = time.time() - started
    config = json.loads((out / "train_config.json").read_text())
    (RESULTS / "cache" / f"{name}.jsonl").unlink(missing_ok=True)
    result = score_model(str(out), beir_dir, name)
    result.update(
        train_seconds=train_seconds, command=_command(), order=order, settings=settings_of(config)
    )
    if xeval:
        result["xeval"] = cross_collections(str(out))
    store_result(name, result)
    print(name, result, flush=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # keep the exported model and logs
    write_report()


@main.command()
@click.argument("name")
@click.option("--from", "source", required=True, help="The stored run whose model is merged.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1),
    required=True,
    help="The trained weights' share in the result (a run exported merged is re-weighted).",
)
@click.option("--beir-dir", type=click.Path(path_type=Path), default=DEFAULT_BEIR)
@click.option("--order", type=int, default=0, help="Row position in the report.")
def merge(name: str, source: str, alpha: float, beir_dir: Path, order: int) -> None:
    """runs/NAME = ALPHA x the weights SOURCE trained + (1 - ALPHA) x its base model
    (`interpolate_weights`; a SOURCE exported already merged, `--merge-weight` m, is re-weighted
    from m to ALPHA), scored as `run` scores a trained model (SciFact, then all six collections)."""
    from splade_es.training.model import interpolate_weights

    config = json.loads((RESULTS / "runs" / source / "train_config.json").read_text())
    exported = float(config.get("merge_weight", 1.0))
    out = interpolate_weights(config["base_model"], RESULTS / "runs" / source, alpha,
                              RESULTS / "runs" / name, exported)  # fmt: skip
    (RESULTS / "cache" / f"{name}.jsonl").unlink(missing_ok=True)
    result = score_model(str(out), beir_dir, name)
    settings = load_results()[source].get("settings") or settings_of(config)
    kept = [part for part in settings.split(", ") if not part.startswith("merge_weight=")]
    settings = ", ".join([*kept, f"merge_weight={alpha}"])
    result.update(command=_command(), order=order, settings=settings)
    result["xeval"] = cross_collections(str(out))
    store_result(name, result)
    print(name, {k: v for k, v in result.items() if k != "xeval"}, flush=True)
    write_report()


def query_speed(
    encoder: SpladeEncoder,
    beir_dir: Path,
    warmup: int = 20,
    limit: int | None = None,
    pruning: QueryPruning | None = None,
) -> dict[str, float]:
    """Query-side cost on this CPU: each test query (the first `limit`) encoded alone, as a search
    request does (and pruned, with `pruning`), after `warmup` untimed ones; median milliseconds
    and the average query terms."""
    from splade_es.query import QueryPruning
    from splade_es.training.data import load_beir

    prune = (pruning or QueryPruning()).apply
    test = load_beir(beir_dir, "test")
    texts = [test.queries[q] for q in sorted(test.qrels)][:limit]
    for text in texts[:warmup]:
        prune(encoder.encode_query(text))
    times, terms = [], []
    for text in texts:
        started = time.perf_counter()
        vector = prune(encoder.encode_query(text))
        times.append((time.perf_counter() - started) * 1000)
        terms.append(len(vector))
    return {"query_ms_p50": statistics.median(times), "query_terms_one": statistics.mean(terms)}


def base_query_ms(beir_dir: Path) -> float:
    """The base model's `query_speed` median, for a run timed in the same process to stand
    beside (this shared CPU's speed drifts between sessions)."""
    from splade_es.encoder import SpladeEncoder

    base = SpladeEncoder.load(run_model("base"), device="cpu")
    return query_speed(base, beir_dir)["query_ms_p50"]


@main.command("query-speed")
@click.argument("names", nargs=-1, required=True)
@click.option("--beir-dir", type=click.Path(path_type=Path), default=DEFAULT_BEIR)
def query_speed_command(names: tuple[str, ...], beir_dir: Path) -> None:
    """Time query encoding (one query at a time) for stored runs (or `base`), and count their
    query terms on all six collections; nothing else runs. The base model is timed in the same
    process too (stored beside each run's time), since a shared CPU's speed drifts between
    sessions."""
    from splade_es.encoder import SpladeEncoder

    results = load_results()
    folders = [paths.DATASETS / name for name in (*IN_DOMAIN, *OUT_OF_DOMAIN)]
    if unknown := [name for name in names if name not in results]:
        raise click.BadParameter(f"{unknown[0]!r} has no stored result", param_hint="NAMES")
    base_ms = base_query_ms(beir_dir)
    for name in names:
        encoder = SpladeEncoder.load(run_model(name), device="cpu")
        speed: dict[str, Any] = dict(query_speed(encoder, beir_dir))
        if name != "base":
            speed["base_query_ms_p50"] = base_ms
        speed["query_terms_by_collection"] = query_terms(encoder, folders)
        store_result(name, {**results[name], **speed})
        print(f"{name}: {speed['query_ms_p50']:.2f} ms p50, {speed['query_terms_one']:.1f} terms")
    write_report()


@main.command()
@click.argument("name")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Query terms kept.")
@click.option(
    "--threshold", type=click.FloatRange(min=0.0), default=None, help="Lowest query weight kept."
)
@click.option("--beir-dir", type=click.Path(path_type=Path), default=DEFAULT_BEIR)
def prune(name: str, top_k: int | None, threshold: float | None, beir_dir: Path) -> None:
    """A stored run's queries cut as `search --top-k K` or `--threshold W` cuts them (one of
    the two): all six collections, query terms and query ms (the base model timed in the same
    process, since a shared CPU's speed drifts between sessions), stored under the run's
    `pruned` (keyed `K`, or `wW`)."""
    from splade_es.encoder import SpladeEncoder
    from splade_es.query import QueryPruning

    results = load_results()
    if name not in results:
        raise click.BadParameter(f"{name!r} has no stored result", param_hint="NAME")
    if (top_k is None) == (threshold is None):
        raise click.UsageError("give one of --top-k and --threshold")
    pruning = QueryPruning(top_k=top_k, threshold=threshold)
    encoder = SpladeEncoder.load(run_model(name), device="cpu")
    entry: dict[str, Any] = dict(query_speed(encoder, beir_dir, pruning=pruning))
    entry["base_query_ms_p50"] = base_query_ms(beir_dir)
    folders = [paths.DATASETS / n for n in (*IN_DOMAIN, *OUT_OF_DOMAIN)]
    entry["query_terms_by_collection"] = query_terms(encoder, folders, pruning)
    entry["xeval"] = cross_collections(run_model(name), pruning)
    entry["command"] = _command()
    key = str(top_k) if top_k is not None else f"w{threshold:g}"
    stored = load_results()[name]
    stored.setdefault("pruned", {})[key] = entry
    store_result(name, stored)
    print(f"{name} {pruned_label(key)}: {entry['query_ms_p50']:.2f} ms p50", flush=True)
    write_report()


@main.command("xeval")
@click.argument("name")
def xeval_command(name: str) -> None:
    """Score a trained run (or `base`) on all six collections: in domain vs out of domain."""
    updated = dict(load_results().get(name, {}))
    updated["xeval"] = cross_collections(run_model(name))
    store_result(name, updated)
    write_report()


@main.command()
@click.argument("name")
@click.option("--beir-dir", type=click.Path(path_type=Path), default=DEFAULT_BEIR)
def rescore(name: str, beir_dir: Path) -> None:
    """Score an already trained run (or `base`) again, e.g. after a scoring change."""
    results = load_results()
    model = run_model(name)
    updated = dict(results[name])
    updated.update(score_model(model, beir_dir, name))
    store_result(name, updated)
    print(name, updated, flush=True)
    write_report()


@main.command("engine")
@click.argument("name")
@click.option("--url", default="http://127.0.0.1:9200", show_default=True, help="A live node.")
@click.option("--beir-dir", type=click.Path(path_type=Path), default=DEFAULT_BEIR)
def engine_command(name: str, url: str, beir_dir: Path) -> None:
    """Score a trained run (or `base`) through a live engine node: BM25, SPLADE and hybrid."""
    results = load_results()
    model = run_model(name)
    updated = dict(results.get(name, {}))
    updated.update(score_on_engine(model, beir_dir, name, url))
    updated["engine_command"] = _command()
    store_result(name, updated)
    print(name, updated, flush=True)
    write_report()


@main.command()
def report() -> None:
    """Rewrite README.md and the plot from results.json."""
    write_report()


if __name__ == "__main__":
    main()
