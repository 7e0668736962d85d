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
