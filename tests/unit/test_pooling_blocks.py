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
