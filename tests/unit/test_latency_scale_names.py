"""The scale benchmark reuses an index whose count is right, so the index name must say which
model filled it: another model's run never reads the default model's index."""

from __future__ import annotations

from pathlib import Path

import pytest

from splade_es.benchmarks.latency_scale import (
    VARIANTS,
    chosen_variants,
    documents_model,
    index_prefix,
    main_index,
)
from splade_es.models import DEFAULT_MODEL, ModelSettings, model_identity, write_settings
from splade_es.records import FieldProfile


def test_the_default_model_keeps_the_committed_names() -> None:
    assert main_index(5183, index_prefix(True, DEFAULT_MODEL)) == "wiki-5183"
    assert main_index(100, index_prefix(False, DEFAULT_MODEL)) == "scale-100"


def test_another_model_gets_its_own_index() -> None:
    name = main_index(5183, index_prefix(True, "benchmarks/runs/Pair Q1+noexp-0.5/"))
    assert name == "wiki-pair-q1-noexp-0.5-5183"
    assert main_index(5183, index_prefix(True, "/x/other")) != name


def test_a_query_encoder_on_another_models_documents_reuses_their_indexes(tmp_path: Path) -> None:
    """A pair trained with --freeze-documents on the recipe queries the recipe's 1M-document
    indexes (named after the model in the corpus's profile), not a second load of its own."""
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    encoded = tmp_path / "scifact.parquet"
    FieldProfile(model=model_identity(str(recipe))).write(encoded)
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    write_settings(
        frozen,
        ModelSettings("pair", str(recipe), str(tmp_path / "q"), documents_of=str(recipe)),
    )
    made = documents_model(encoded, str(frozen))
    assert main_index(5183, index_prefix(True, made)) == "wiki-recipe-5183"
    assert documents_model(encoded, str(recipe)) == made
    # no profile: the indexes are the query model's own
    assert documents_model(tmp_path / "bare.parquet", "splade-tiny") == "splade-tiny"


def test_a_query_encoder_that_never_saw_the_documents_is_refused(tmp_path: Path) -> None:
    encoded = tmp_path / "scifact.parquet"
    FieldProfile(model="splade-tiny").write(encoded)
    other = tmp_path / "other"
    other.mkdir()
    write_settings(
        other, ModelSettings("pair", str(other), str(tmp_path / "q"), documents_of="splade-v3")
    )
    with pytest.raises(SystemExit, match=r"which --model .* cannot query"):
        documents_model(encoded, str(other))


def test_skipping_variants_keeps_the_two_every_ratio_needs() -> None:
    kept = chosen_variants(["doc top-64", "query top-10"])
    assert [v.name for v in kept] == [
        v.name for v in VARIANTS if v.name not in ("doc top-64", "query top-10")
    ]
    with pytest.raises(ValueError, match="always run"):
        chosen_variants(["BM25"])
    with pytest.raises(ValueError, match="no such variant"):
        chosen_variants(["doc top 64"])
