"""SPLADE max pooling without materialising the `[batch, length, vocab]` logits.

`w_j = max_i log(1 + relu(logit_ij))` over unmasked positions i. log1p∘relu is monotonic, so the max
can be taken on raw logits first. The MLM head's last layer (the vocabulary projection) is swapped for
an identity while the model runs; the projection is then applied a few positions at a time, keeping
only a running max. Peak memory drops from B·L·V floats to B·chunk·V. The result equals the naive
pooling exactly and stays differentiable, so training uses it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

CHUNK_ELEMENTS = 1 << 24
"""Logit elements computed at once (64 MB in float32)."""


def _vocab_projection(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """Find the Linear that maps hidden states to vocabulary logits, and its parent module."""
    get_output = getattr(model, "get_output_embeddings", None)
    projection = get_output() if callable(get_output) else None
    if not isinstance(projection, nn.Linear):
        raise TypeError(
            f"{type(model).__name__} has no Linear vocabulary projection: not a masked-LM model"
        )
    for parent in model.modules():
        for attr, child in parent.named_children():
            if child is projection:
                return parent, attr, projection
    raise TypeError(f"vocabulary projection of {type(model).__name__} is not a child module")


@contextmanager
def _without_projection(model: nn.Module) -> Iterator[nn.Linear]:
    parent, attr, projection = _vocab_projection(model)
    setattr(parent, attr, nn.Identity())
    try:
        yield projection
    finally:
        setattr(parent, attr, projection)


def splade_pool(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """SPLADE document/query weights `[batch, vocab]` for a masked-LM model."""
    with _without_projection(model) as projection:
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).logits
        batch, length, _ = hidden.shape
        vocab = projection.out_features
        chunk = max(1, CHUNK_ELEMENTS // max(1, batch * vocab))
        mask = attention_mask.bool()
        best: torch.Tensor | None = None
        for start in range(0, length, chunk):
            logits = projection(hidden[:, start : start + chunk])
            keep = mask[:, start : start + chunk, None]
            logits = logits.masked_fill(~keep, float("-inf"))
            part = logits.amax(dim=1)
            best = part if best is None else torch.maximum(best, part)
    assert best is not None, "empty batch"
    return torch.log1p(torch.relu(best.float()))


def naive_splade_pool(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Reference pooling over the full logits tensor (for tests and benchmarks)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    weights = torch.log1p(torch.relu(logits.float())) * attention_mask[..., None]
    return weights.amax(dim=1)
