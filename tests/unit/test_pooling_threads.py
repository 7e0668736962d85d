"""Pooling with one shared model from several threads at once (Beam runs bundles in threads)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from splade_es.pooling import splade_pool

pytestmark = pytest.mark.slow

THREADS = 4
ROUNDS = 6


def test_concurrent_encoding_equals_single_threaded_encoding(splade_tiny, scifact) -> None:
    """Several threads encode different SciFact documents with the same model object; every
    result must equal the single-threaded one and the model must come out unchanged."""
    from itertools import islice

    from splade_es.corpus import read_documents

    docs = [d.full_text for d in islice(read_documents(scifact / "corpus.jsonl"), THREADS * 8)]
    parts = [docs[i::THREADS] for i in range(THREADS)]
    modules_before = list(splade_tiny.document_side.model.named_modules())
    expected = [splade_tiny.encode_documents(part, batch_size=4) for part in parts]

    start = threading.Barrier(THREADS)

    def encode(part: list[str]) -> list:
        start.wait()
        return [splade_tiny.encode_documents(part, batch_size=4) for _ in range(ROUNDS)]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(encode, parts))

    for got_rounds, want in zip(results, expected, strict=True):
        for got in got_rounds:
            for a, b in zip(got, want, strict=True):
                assert a.as_dict().keys() == b.as_dict().keys()
                for token, weight in b.weights:
                    assert a.as_dict()[token] == pytest.approx(weight, abs=1e-5)
    assert [(n, id(m)) for n, m in splade_tiny.document_side.model.named_modules()] == [
        (n, id(m)) for n, m in modules_before
    ]


def test_pooling_does_not_touch_the_model(splade_tiny) -> None:
    """The model's modules are the same objects before, during (from a forward hook) and after."""
    model = splade_tiny.document_side.model
    projection = model.get_output_embeddings()
    seen: list[object] = []
    handle = model.register_forward_hook(lambda *_: seen.append(model.get_output_embeddings()))
    try:
        batch = splade_tiny.document_side.tokenizer(["vitamin d"], return_tensors="pt")
        with torch.inference_mode():
            splade_pool(model, batch["input_ids"], batch["attention_mask"])
    finally:
        handle.remove()
    assert seen == [projection] and model.get_output_embeddings() is projection
