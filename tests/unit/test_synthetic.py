"""The synthetic corpus generator: real documents first, spliced ones after, deterministic."""

from __future__ import annotations

from pathlib import Path

from splade_es.benchmarks.synthetic import (
    CorpusShape,
    Recombiner,
    df_correlation,
    load_real,
    main,
)
from splade_es.corpus import read_encoded
from splade_es.records import EncodedRecord, FieldProfile
from splade_es.term_stats import DocumentFrequencies


def real_corpus(count: int = 40) -> list[EncodedRecord]:
    out = []
    for n in range(count):
        features = {f"t{(n * 7 + k) % 97}": float(10 + (n + k) % 50) for k in range(12 + n % 9)}
        text = " ".join(f"Sentence {n}-{s} of doc {n}." for s in range(2 + n % 5))
        out.append(EncodedRecord(f"d{n}", features, f"title {n}", text))
    return out


def test_real_documents_come_first_unchanged_then_spliced_ones() -> None:
    real = real_corpus()
    docs = list(Recombiner(real, seed=3).documents(500))
    assert len(docs) == 500
    assert docs[:40] == real
    assert [d.id for d in docs[40:43]] == ["syn-0", "syn-1", "syn-2"]
    assert len({d.id for d in docs}) == 500
    union = {name for r in real for name in r.features}
    weights = {(name, w) for r in real for name, w in r.features.items()}
    for doc in docs[40:]:
        assert doc.features and set(doc.features) <= union
        assert all((name, w) in weights for name, w in doc.features.items())
        assert doc.text and "Sentence" in doc.text


def test_a_smaller_size_is_a_prefix_of_the_real_corpus() -> None:
    real = real_corpus()
    assert list(Recombiner(real).documents(5)) == real[:5]


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    real = real_corpus()
    first = list(Recombiner(real, seed=1).documents(200))
    assert first == list(Recombiner(real, seed=1).documents(200))
    assert first != list(Recombiner(real, seed=2).documents(200))


def test_spliced_corpus_keeps_the_real_shape() -> None:
    real = real_corpus()
    docs = list(Recombiner(real).documents(4000))
    correlation = df_correlation(
        DocumentFrequencies.count(real), DocumentFrequencies.count(docs[40:])
    )
    assert correlation > 0.8
    real_shape, synthetic_shape = CorpusShape.of(real), CorpusShape.of(docs[40:])
    assert 0.6 < synthetic_shape.terms_per_doc_mean / real_shape.terms_per_doc_mean <= 1.0


def test_main_writes_an_encoded_file_with_its_profile_and_frequencies(tmp_path: Path) -> None:
    from splade_es.corpus import EncodedWriter

    source = tmp_path / "real.jsonl"
    with EncodedWriter(source) as writer:
        for record in real_corpus():
            writer.write(record)
    FieldProfile(model="splade-tiny", quantization=100.0).write(source)
    out = tmp_path / "syn.parquet"
    main(["--encoded", str(source), "--size", "90", "--out", str(out)])
    records = [r for _, r in read_encoded(out)]
    assert len(records) == 90 and all(isinstance(r, EncodedRecord) for r in records)
    assert FieldProfile.read(out) == FieldProfile(model="splade-tiny", quantization=100.0)
    table = DocumentFrequencies.load(DocumentFrequencies.path_for(out))
    assert table == DocumentFrequencies.count(load_real(out))
