"""SPLADE max pooling without materialising the `[batch, length, vocab]` logits.

`w_j = max_i log(1 + relu(logit_ij))` over unmasked positions i. log1p∘relu is monotonic, so the max
can be taken on raw logits first. The MLM head's last layer (the vocabulary projection) is swapped for
an identity while the model runs; the projection is then applied to a block of real tokens at a
time, keeping only a running max per text. Peak memory drops from B·L·V floats to one block, padding
costs nothing, and it runs about 2x faster than masking full logits on CPU. The result equals the
naive pooling exactly and stays differentiable, so training uses it too.
"""

from __future__ import annotations

from collections.abc import Iterator
import warnings
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
    """SPLADE document/query weights `[batch, vocab]` for a masked-LM model.

    Only real (unmasked) token positions are projected: they are packed into one `[tokens, hidden]`
    matrix, projected a block of rows at a time, and folded into a per-text running max with
    `index_reduce_` (starting from 0, which also applies the relu). No padding position is ever
    projected and no masked copy of the logits is made.
    """
    with _without_projection(model) as projection:
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).logits
        mask = attention_mask.bool()
        tokens = hidden[mask]
        owner = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
        best = torch.zeros(
            mask.shape[0], projection.out_features, dtype=hidden.dtype, device=hidden.device
        )
        rows = max(1, CHUNK_ELEMENTS // projection.out_features)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
            for start in range(0, tokens.shape[0], rows):
                logits = projection(tokens[start : start + rows])
                best = best.index_reduce(
                    0, owner[start : start + rows], logits, "amax", include_self=True
                )
    return torch.log1p(best.float())


def naive_splade_pool(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Reference pooling over the full logits tensor (for tests and benchmarks)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    weights = torch.log1p(torch.relu(logits.float())) * attention_mask[..., None]
    return weights.amax(dim=1)
