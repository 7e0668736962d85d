"""General-domain pairs for `train --mix`: one title -> lead pair per article, stubs left out, a
seeded draw, and a file the trainer's pairs reader takes as it is."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from splade_es.benchmarks.general_pairs import MIN_WORDS, main, title_lead_pairs
from splade_es.training.data import load_training_data


def passages(path: Path, articles: int) -> Path:
    long_text = " ".join(["word"] * MIN_WORDS)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for page in range(articles):
            for k in range(2):
                text = f"lead of {page} {long_text}" if k == 0 else f"more about {page} {long_text}"
                record = {"_id": f"{page}-{k}", "title": f"Title {page}", "text": text}
                handle.write(json.dumps(record) + "\n")
        stub = {"_id": "99-0", "title": "Stub", "text": "too short"}
        handle.write(json.dumps(stub) + "\n")
    return path


def test_one_pair_per_article_from_its_lead(tmp_path: Path) -> None:
    source = passages(tmp_path / "wiki.jsonl.gz", articles=5)
    pairs = title_lead_pairs(source, n=10)
    assert [p["query"] for p in pairs] == [f"Title {i}" for i in range(5)]  # no stub, no k > 0
    assert all(p["positive"].startswith(f"lead of {p['query'][6:]} ") for p in pairs)
    drawn = title_lead_pairs(source, n=3, seed=1)
    assert len(drawn) == 3 and drawn == title_lead_pairs(source, n=3, seed=1)
    assert drawn != title_lead_pairs(source, n=3, seed=2)


def test_the_file_is_a_pairs_file_the_trainer_reads(tmp_path: Path) -> None:
    source = passages(tmp_path / "wiki.jsonl.gz", articles=4)
    out = tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(main, ["--out", str(out), "--source", str(source), "--pairs", "3"])
    assert result.exit_code == 0, result.output
    data = load_training_data(out)
    assert len(data.queries) == 3 and all(len(docs) == 1 for docs in data.qrels.values())
