"""Packed pooling folds blocks of token rows into per-text maxima: texts that span blocks, texts
with no real token, and blocks that hold several texts all give the naive max."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from splade_es import pooling


@pytest.mark.parametrize("rows_per_block", [1, 3, 7, 1000])
def test_packed_pool_equals_the_masked_max_whatever_the_block_size(
    monkeypatch: pytest.MonkeyPatch, rows_per_block: int
) -> None:
    torch.manual_seed(0)
    vocab, dim = 50, 8
    projection = nn.Linear(dim, vocab)
    lengths = [5, 0, 1, 9, 3]  # a text without real tokens pools to all zeros
    hidden = torch.randn(len(lengths), max(lengths), dim)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.bool)
    for row, length in enumerate(lengths):
        mask[row, :length] = True
    monkeypatch.setattr(pooling, "CHUNK_ELEMENTS", rows_per_block * vocab)
    with torch.no_grad():
        got = pooling._packed_pool(hidden, mask, projection)
        logits = projection(hidden)
        expected = (torch.log1p(torch.relu(logits)) * mask[..., None]).amax(dim=1)
    assert torch.equal(got[1], torch.zeros(vocab))
    torch.testing.assert_close(got, expected)


def test_the_headless_view_is_made_once_and_again_after_the_projection_changes() -> None:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16,
    )  # fmt: skip
    model = BertForMaskedLM(config).eval()
    ids = torch.tensor([[1, 5, 7, 2]])
    first = pooling._headless(model)
    assert pooling._headless(model) is first  # cached
    expected = pooling.naive_splade_pool(model, ids, torch.ones_like(ids))
    model.cls.predictions.decoder = nn.Linear(8, 40)  # swapped, as quantization swaps Linears
    second = pooling._headless(model)
    assert second is not first and second[1] is model.cls.predictions.decoder
    with torch.no_grad():
        got = pooling.splade_pool(model, ids, torch.ones_like(ids))
    torch.testing.assert_close(got, pooling.naive_splade_pool(model, ids, torch.ones_like(ids)))
    assert not torch.allclose(got, expected)


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bfloat16 screen on, whatever this CPU is (bfloat16 products are exact in any case)."""
    monkeypatch.setattr(pooling, "this_cpu_has_fast_bf16", lambda: True)


def test_a_logit_bfloat16_rounds_to_zero_is_still_found(
    screen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 + 2^-9 rounds to 1 in bfloat16, so the rough logit of entry 0 is 0 while the exact one is
    2^-9: only the screen's margin keeps the entry."""
    projection = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.tensor([[1 + 2**-9, -1.0], [-1.0, -1.0], [0.5, 0.25]]))
    hidden = torch.ones(1, 1, 2)
    mask = torch.ones(1, 1, dtype=torch.bool)
    expected = torch.log1p(torch.relu(projection(hidden[0]))).detach()
    with torch.no_grad():
        torch.testing.assert_close(pooling._packed_pool(hidden, mask, projection), expected)
        assert expected[0, 0] > 0
        monkeypatch.setattr(pooling, "SCREEN_MARGIN", 0.0)
        assert pooling._packed_pool(hidden, mask, projection)[0, 0] == 0  # lost without it


def test_the_screened_pooling_equals_float32_pooling_on_real_texts(
    splade_tiny, scifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    from splade_es.training.data import load_beir

    data = load_beir(scifact, "test")
    texts = list(data.queries.values())[:40] + list(data.docs.values())[:24]
    side = splade_tiny.document_side
    batch = side._tokenize(texts, 256, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = pooling._hidden(side.model, batch["input_ids"], batch["attention_mask"])
        projection = pooling._headless(side.model)[1]
        mask = batch["attention_mask"].bool()
        monkeypatch.setattr(pooling, "this_cpu_has_fast_bf16", lambda: False)
        plain = pooling._packed_pool(hidden, mask, projection)
        monkeypatch.setattr(pooling, "this_cpu_has_fast_bf16", lambda: True)
        screened = pooling._packed_pool(hidden, mask, projection)
    assert torch.equal(plain > 0, screened > 0)
    torch.testing.assert_close(screened, plain, atol=1e-5, rtol=1e-5)


def test_the_screen_follows_weights_changed_in_place(screen: None) -> None:
    torch.manual_seed(1)
    projection = nn.Linear(8, 50)
    hidden = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        pooling._packed_pool(hidden, mask, projection)
        projection.weight.mul_(-1)  # as an optimizer step would, in place
        expected = (torch.log1p(torch.relu(projection(hidden)))).amax(dim=1)
        torch.testing.assert_close(pooling._packed_pool(hidden, mask, projection), expected)
