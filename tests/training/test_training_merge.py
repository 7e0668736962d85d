"""Weight merging (WiSE-FT): the merged folder holds alpha * tuned + (1 - alpha) * base, loads in
the encoder, and ends of the range give back the two models' own vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from splade_es.encoder import SpladeEncoder
from splade_es.models import IDF_FILE, ModelSettings, read_settings, write_settings
from splade_es.sparse import SparseVector
from splade_es.training.model import interpolate_weights
from tests.conftest import build_tiny_mlm

WEIGHTS_FILE = "model.safetensors"
TEXTS = ["vitamin d deficiency and cancer risk", "heart disease"]


@pytest.fixture(scope="module")
def base_and_tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("merge")
    return build_tiny_mlm(root / "base", seed=11), build_tiny_mlm(root / "tuned", seed=12)


def vectors(folder: Path) -> list[SparseVector]:
    return SpladeEncoder.load(str(folder), device="cpu").encode_documents(TEXTS)


def test_the_merged_weights_are_the_weighted_mean(
    base_and_tuned: tuple[Path, Path], tmp_path: Path
) -> None:
    base, tuned = base_and_tuned
    out = interpolate_weights(str(base), tuned, 0.25, tmp_path / "merged")
    start, end = load_file(str(base / WEIGHTS_FILE)), load_file(str(tuned / WEIGHTS_FILE))
    merged = load_file(str(out / WEIGHTS_FILE))
    assert merged.keys() == end.keys()
    for key, value in merged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.25 * end[key] + 0.75 * start[key])
    assert (out / "tokenizer.json").is_file()
    assert load_file(str(tuned / WEIGHTS_FILE)).keys() == end.keys()  # the source is untouched


def test_a_folder_exported_merged_is_reweighted_from_its_own_share(
    base_and_tuned: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run exported at merge weight 0.5 holds 0.5 T + 0.5 B; asked for 0.75 of T, the merge
    goes past the folder along the line from B, to what merging the unmerged T would give."""
    base, tuned = base_and_tuned
    exported = interpolate_weights(str(base), tuned, 0.5, tmp_path / "exported")
    out = interpolate_weights(str(base), exported, 0.75, tmp_path / "again", exported=0.5)
    start, end = load_file(str(base / WEIGHTS_FILE)), load_file(str(tuned / WEIGHTS_FILE))
    for key, value in load_file(str(out / WEIGHTS_FILE)).items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.75 * end[key] + 0.25 * start[key])
    same = interpolate_weights(str(base), exported, 0.5, tmp_path / "same", exported=0.5)
    assert vectors(same) == vectors(exported)
    with pytest.raises(ValueError, match="exported merge weight"):
        interpolate_weights(str(base), exported, 0.5, tmp_path / "z", exported=0.0)


def test_the_ends_of_the_range_are_the_two_models(
    base_and_tuned: tuple[Path, Path], tmp_path: Path
) -> None:
    base, tuned = base_and_tuned
    own = vectors(tuned)
    assert vectors(interpolate_weights(str(base), tuned, 1.0, tmp_path / "one")) == own
    start = vectors(interpolate_weights(str(base), tuned, 0.0, tmp_path / "zero"))
    assert start == vectors(base) and start != own
    half = vectors(interpolate_weights(str(base), tuned, 0.5, tmp_path / "half"))
    assert half not in (own, start)


def test_a_folder_merged_in_place(base_and_tuned: tuple[Path, Path], tmp_path: Path) -> None:
    base, tuned = base_and_tuned
    copy = tmp_path / "copy"
    shutil.copytree(tuned, copy)
    assert interpolate_weights(str(base), copy, 0.0, copy) == copy
    assert vectors(copy) == vectors(base)


def test_what_cannot_be_merged_is_one_clear_error(
    base_and_tuned: tuple[Path, Path], tmp_path: Path
) -> None:
    base, tuned = base_and_tuned
    wider = build_tiny_mlm(tmp_path / "wider", seed=13, hidden=48)
    with pytest.raises(ValueError, match="not the architecture"):
        interpolate_weights(str(wider), tuned, 0.5, tmp_path / "x")
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        interpolate_weights(str(base), tuned, 1.5, tmp_path / "y")


def test_an_inference_free_folder_merges_its_document_side_and_keeps_its_table(
    base_and_tuned: tuple[Path, Path], tmp_path: Path
) -> None:
    base, tuned = base_and_tuned
    free = tmp_path / "free"
    shutil.copytree(tuned, free)
    table = {"vitamin": 3.5, "d": 1.25}
    (free / IDF_FILE).write_text(json.dumps(table))
    out = interpolate_weights(str(base), free, 0.0, tmp_path / "out")
    assert read_settings(str(out)).shape == "inference-free"
    assert json.loads((out / IDF_FILE).read_text()) == table
    encoder = SpladeEncoder.load(str(out), device="cpu")
    assert encoder.encode_documents(TEXTS) == vectors(base)


def test_a_pair_folder_merges_its_document_side_and_keeps_its_query_side(
    base_and_tuned: tuple[Path, Path], tmp_path: Path
) -> None:
    base, tuned = base_and_tuned
    pair = tmp_path / "pair"
    shutil.copytree(tuned, pair / "document")
    build_tiny_mlm(pair / "query", seed=14)
    write_settings(pair, ModelSettings("pair", str(pair / "document"), str(pair / "query")))
    query_before = load_file(str(pair / "query" / WEIGHTS_FILE))
    out = interpolate_weights(str(base), pair, 0.0, tmp_path / "out")
    assert read_settings(str(out)).shape == "pair"
    assert not (out / WEIGHTS_FILE).exists()  # the document side is written where it was read
    query_after = load_file(str(out / "query" / WEIGHTS_FILE))
    for key, value in query_before.items():
        torch.testing.assert_close(query_after[key], value)
    encoder = SpladeEncoder.load(str(out), device="cpu")
    assert encoder.encode_documents(TEXTS) == vectors(base)
    assert encoder.encode_queries(TEXTS) == vectors(pair / "query")
