"""SparseVector: validation, pruning, quantization, feature names."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from splade_es.sparse import SparseVector, SparseVectorError, feature_name, token_from_feature_name

tokens = st.text(alphabet="abc.#xyz", min_size=1, max_size=6)
weights = st.floats(min_value=1e-3, max_value=50.0, allow_nan=False)
vectors = st.dictionaries(tokens, weights, min_size=1, max_size=40).map(SparseVector.from_mapping)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0])
def test_rejects_weights_engines_refuse(bad: float) -> None:
    with pytest.raises(SparseVectorError, match="'tok'"):
        SparseVector.from_mapping({"ok": 1.0, "tok": bad})


@given(vectors)
def test_order_is_descending(vector: SparseVector) -> None:
    values = [w for _, w in vector.weights]
    assert values == sorted(values, reverse=True)


@given(vectors, st.integers(min_value=1, max_value=50))
def test_top_k_keeps_the_heaviest(vector: SparseVector, k: int) -> None:
    pruned = vector.prune(top_k=k)
    assert len(pruned) == min(k, len(vector))
    dropped = set(vector.as_dict()) - set(pruned.as_dict())
    if dropped:
        assert min(pruned.as_dict().values()) >= max(vector.as_dict()[t] for t in dropped)


@given(vectors, st.floats(min_value=0.0, max_value=1.0))
def test_max_ratio(vector: SparseVector, ratio: float) -> None:
    top = vector.weights[0][1]
    kept = vector.prune(max_ratio=ratio).as_dict()
    assert kept == {t: w for t, w in vector.as_dict().items() if w >= ratio * top}


@given(vectors, st.floats(min_value=0.01, max_value=1.0))
def test_alpha_mass_is_the_smallest_prefix_reaching_the_mass(
    vector: SparseVector, alpha: float
) -> None:
    kept = vector.prune(alpha_mass=alpha)
    total = sum(w for _, w in vector.weights)
    mass = sum(w for _, w in kept.weights)
    assert mass >= alpha * total * (1 - 1e-9)
    assert mass - kept.weights[-1][1] < alpha * total
    assert kept.weights == vector.weights[: len(kept)]


@given(vectors, st.floats(min_value=0.0, max_value=60.0))
def test_threshold(vector: SparseVector, threshold: float) -> None:
    kept = vector.prune(threshold=threshold).weights
    passing = tuple(kv for kv in vector.weights if kv[1] >= threshold)
    # as every other criterion, it keeps the heaviest term: no query or document becomes empty
    assert kept == (passing or vector.weights[:1])


@given(vectors, st.sampled_from([10.0, 100.0, 1000.0]))
def test_quantization_error_is_bounded_and_weights_positive(
    vector: SparseVector, factor: float
) -> None:
    quantized = vector.quantize(factor)
    assert all(isinstance(q, int) and q > 0 for q in quantized.values())
    for token, weight in vector.weights:
        name = feature_name(token)
        if name in quantized:
            assert abs(quantized[name] / factor - weight) <= 0.5 / factor + 1e-9
        else:
            assert weight * factor < 0.5 + 1e-9


@given(vectors)
def test_feature_names_have_no_dots_and_round_trip(vector: SparseVector) -> None:
    features = vector.quantize(1000.0)
    assert not any("." in name for name in features)
    restored = SparseVector.from_features(features, 1000.0)
    for token, weight in restored.weights:
        assert math.isclose(weight, vector.as_dict()[token], abs_tol=0.0005 + 1e-9)


def test_feature_name_is_one_to_one_on_the_bert_vocabulary() -> None:
    from transformers import AutoTokenizer

    from splade_es.models import bundled_model_path

    vocab = AutoTokenizer.from_pretrained(str(bundled_model_path())).get_vocab()
    names = {feature_name(t) for t in vocab}
    assert len(names) == len(vocab)
    assert all("." not in n for n in names)
    assert all(token_from_feature_name(feature_name(t)) == t for t in vocab)


@given(vectors, vectors)
def test_dot_matches_dense(a: SparseVector, b: SparseVector) -> None:
    da, db = a.as_dict(), b.as_dict()
    dense = sum(w * db.get(t, 0.0) for t, w in da.items())
    assert math.isclose(a.dot(b), dense, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(a.dot(b), b.dot(a), rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("kwargs", [{"top_k": 0}, {"max_ratio": 1.5}, {"alpha_mass": 0.0}])
def test_bad_pruning_options(kwargs: dict[str, float]) -> None:
    with pytest.raises(SparseVectorError):
        SparseVector.from_mapping({"a": 1.0}).prune(**kwargs)  # type: ignore[arg-type]


def test_colliding_names_keep_the_larger_weight_on_both_sides() -> None:
    vector = SparseVector.from_mapping({".": 1.0, "__": 2.0, "a": 0.5})
    assert vector.quantize(10.0) == {"__": 20, "a": 5}
    assert vector.to_features(None) == {"__": 2.0, "a": 0.5}
