"""Index size vs quality: BM25-only vs BM25 + SPLADE field, with and without document pruning.

Reads what `splade-es encode` wrote (float weights are not needed: pruning on the quantized
integers keeps the same order), indexes each variant into the same engine, and reports the primary
store size after a flush + force-merge to one segment, average terms per document, and SciFact
test nDCG@10 for SPLADE alone through the engine.

    python -m splade_es.benchmarks.index_size --encoded out.jsonl --url http://127.0.0.1:9200
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from splade_es.batch_encode import DocumentPruning
from splade_es.client import ConnectionSettings, open_cluster
from splade_es.corpus import EncodedWriter, read_encoded, read_qrels, read_queries
from splade_es.encoder import SpladeEncoder
from splade_es.evaluation import evaluate
from splade_es.indexing import FileIndexer
from splade_es.indices import ensure_index, index_size_bytes
from splade_es.models import DEFAULT_MODEL
from splade_es.records import EncodedRecord
from splade_es.search import Searcher
from splade_es.sparse import SparseVector

from . import paths

VARIANTS: dict[str, DocumentPruning | None] = {
    "bm25 only (no SPLADE terms)": None,
    "splade, unpruned": DocumentPruning(),
    "splade, top-k 64": DocumentPruning(top_k=64),
    "splade, top-k 32": DocumentPruning(top_k=32),
    "splade, alpha-mass 0.8": DocumentPruning(alpha_mass=0.8),
}


def write_pruned(source: Path, pruning: DocumentPruning | None, out: Path) -> list[int]:
    """Re-prune the encoded records of `source` into `out`; returns the term count per record."""
    terms = []
    with EncodedWriter(out) as writer:
        for _, record in read_encoded(source):
            if not isinstance(record, EncodedRecord):
                continue
            features: dict[str, float] = {}
            if pruning is not None and record.features:
                vector = SparseVector.from_features(record.features, 1.0).prune(
                    pruning.top_k, pruning.max_ratio, pruning.alpha_mass, pruning.threshold
                )
                features = {k: float(int(v)) for k, v in vector.to_features(None).items()}
            terms.append(len(features))
            writer.write(EncodedRecord(record.id, features, record.title, record.text))
    return terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoded", type=Path, required=True)
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--beir-dir", type=Path, default=paths.SCIFACT)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=paths.RESULTS / "index_size.md")
    args = parser.parse_args()

    client, info = open_cluster(ConnectionSettings(url=args.url))
    encoder = SpladeEncoder.load(args.model)
    qrels = read_qrels(args.beir_dir / "qrels" / "test.tsv")
    queries = {q: t for q, t in read_queries(args.beir_dir / "queries.jsonl").items() if q in qrels}
    qids = list(queries)
    rows = []
    for number, (name, pruning) in enumerate(VARIANTS.items()):
        index = f"size-bench-{number}"
        client.indices.delete(index=index, ignore_unavailable=True)
        profile = ensure_index(client, info, index)
        with tempfile.TemporaryDirectory() as tmp:
            pruned = Path(tmp) / "pruned.jsonl"
            terms = write_pruned(args.encoded, pruning, pruned)
            FileIndexer(client, profile, show_progress=False).run(pruned, Path(tmp) / "dead.jsonl")
        size = index_size_bytes(client, index, force_merge_first=True)
        ndcg = float("nan")
        if pruning is not None:
            searcher = Searcher.for_index(client, info, index, encoder)
            hits = searcher.search_many([queries[q] for q in qids], "splade", size=100)
            ndcg = evaluate(
                {q: {h.id: h.score for h in hs} for q, hs in zip(qids, hits, strict=True)}, qrels
            )["ndcg@10"]
        rows.append((name, size, sum(terms) / max(1, len(terms)), ndcg))
        print(rows[-1], flush=True)
        client.indices.delete(index=index)

    base = rows[0][1]
    lines = [
        f"# Index size: SciFact ({len(terms)} docs), {info.engine} {info.version}, model `{args.model}`",
        "",
        "Primary store after force-merge to one segment. Every index also holds the BM25 `content`,",
        "`title` and `text` fields (same for all rows), so the difference to the first row is the SPLADE field.",
        "",
        "| variant | store MB | × BM25-only | avg terms/doc | SPLADE nDCG@10 (test) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, size, avg_terms, ndcg in rows:
        lines.append(
            f"| {name} | {size / 1e6:.2f} | {size / base:.2f} | {avg_terms:.1f} | {ndcg:.4f} |"
        )
    lines += [
        "",
        f"Command: `python -m splade_es.benchmarks.index_size --encoded {args.encoded} --url {args.url}`",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
