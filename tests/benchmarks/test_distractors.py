"""The real-distractor corpus: resumable encoding of a gzip corpus in parts, and the mixed corpus
(judged documents, then passages, then spliced documents) the scale benchmark reads."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from splade_es.benchmarks.distractors import MixedCorpus, encoded_parts, main, part_path
from splade_es.records import EncodedRecord, FieldProfile

PASSAGES = [
    {"_id": f"{page}-{k}", "title": f"Page {page}", "text": f"passage {k} about vitamin d {page}"}
    for page in (10, 11)
    for k in range(3)
]  # 6 passages


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six passages encoded for real (splade-tiny) in parts of 4: two parts."""
    folder = tmp_path_factory.mktemp("distractors")
    source = folder / "corpus.jsonl.gz"
    with gzip.open(source, "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(p) + "\n" for p in PASSAGES)
    args = ["--cache", str(folder), "--source", str(source), "--part-size", "4", "--collections"]
    assert main([*args, "--dtype", "float32"]) == 0
    return folder


def progress(cache: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (cache / "progress.jsonl").read_text().splitlines()]


def test_parts_are_encoded_once_and_a_killed_part_is_redone(cache: Path) -> None:
    assert [p.name for p in encoded_parts(cache)] == [
        "wikipedia-000.parquet",
        "wikipedia-001.parquet",
    ]
    assert [line["docs"] for line in progress(cache)] == [4, 2]
    source = ["--source", str(cache / "corpus.jsonl.gz"), "--part-size", "4", "--collections"]
    assert main(["--cache", str(cache), *source]) == 0
    assert len(progress(cache)) == 2, "finished parts must not be encoded again"
    # a run killed after writing part 1's vectors but before its profile: part 1 is redone
    FieldProfile.path_for(part_path(cache, 1)).unlink()
    assert [p.name for p in encoded_parts(cache)] == ["wikipedia-000.parquet"]
    assert main(["--cache", str(cache), *source, "--dtype", "float32"]) == 0
    assert [line["part"] for line in progress(cache)][-1] == "wikipedia-001"
    assert len(encoded_parts(cache)) == 2


def test_the_mixed_corpus_is_judged_then_passages_then_spliced(cache: Path) -> None:
    judged = [
        EncodedRecord(f"j{i}", {"vitamin": 100 + i, "d": 50}, "T", f"Sentence {i}. Another one.")
        for i in range(3)
    ]
    corpus = MixedCorpus(judged, encoded_parts(cache))
    ids = [r.id for r in corpus.documents(3 + 6 + 2)]
    assert ids[:3] == ["j0", "j1", "j2"]
    assert ids[3:9] == [p["_id"] for p in PASSAGES]
    assert ids[9:] == ["syn-0", "syn-1"] and len(set(ids)) == len(ids)
    assert all(r.features for r in corpus.documents(9))
    assert corpus.makeup(11) == {"judged": 3, "wikipedia": 6, "spliced": 2}
    assert corpus.makeup(5) == {"judged": 3, "wikipedia": 2, "spliced": 0}
    assert [r.id for r in corpus.documents(5)] == ["j0", "j1", "j2", "10-0", "10-1"]


def test_passages_of_another_model_never_join_the_collection(cache: Path, tmp_path: Path) -> None:
    """A collection encoded by another model is spliced past its judged documents instead."""
    import shutil

    collection = tmp_path / "judged.parquet"
    shutil.copy(part_path(cache, 1), collection)
    made = FieldProfile.read(part_path(cache, 0))
    assert made is not None and made.model == "splade-tiny"
    made.write(collection)
    assert MixedCorpus.load(collection, cache).parts == encoded_parts(cache)
    FieldProfile("runs/pair", None, made.quantization).write(collection)
    other = MixedCorpus.load(collection, cache)
    assert other.parts == [] and other.makeup(4) == {"judged": 2, "wikipedia": 0, "spliced": 2}


def test_a_cache_of_another_model_is_not_continued(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ["--source", str(cache / "corpus.jsonl.gz"), "--part-size", "4", "--collections"]
    assert main(["--cache", str(cache), *source, "--model", "runs/other"]) == 2
    assert (
        "holds passages of splade-tiny: give runs/other its own --cache" in capsys.readouterr().err
    )
