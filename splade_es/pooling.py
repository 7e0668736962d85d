"""SPLADE max pooling without materialising the `[batch, length, vocab]` logits.

`w_j = max_i log(1 + relu(logit_ij))` over unmasked positions i. log1p∘relu is monotonic, so the max
can be taken on raw logits first. The model runs as a *headless view* whose vocabulary projection (the
MLM head's last Linear) is an identity; the projection is then applied to a block of real tokens at a
time, keeping only a running max per text. Peak memory drops from B·L·V floats to one block, padding
costs nothing, and it runs about 2x faster than masking full logits on CPU. Under autograd
(training) an arg-max variant keeps the backward pass small. Both equal the naive pooling exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from itertools import accumulate
from weakref import WeakKeyDictionary

import torch
import torch.nn.functional as F
from torch import nn

from splade_es.cpu import this_cpu_has_fast_bf16
from splade_es.lean_bert import lean_forward

CHUNK_ELEMENTS = 1 << 24
"""Logit elements computed at once (64 MB in float32)."""


def _vocab_projection(model: nn.Module) -> tuple[str, nn.Linear]:
    """The Linear that maps hidden states to vocabulary logits, and its dotted path in `model`."""
    get_output = getattr(model, "get_output_embeddings", None)
    projection = get_output() if callable(get_output) else None
    if not isinstance(projection, nn.Linear):
        raise TypeError(
            f"{type(model).__name__} has no Linear vocabulary projection: not a masked-LM model"
        )
    for path, module in model.named_modules():
        if module is projection and path:
            return path, projection
    raise TypeError(f"vocabulary projection of {type(model).__name__} is not a child module")


def _shallow_copy(module: nn.Module) -> nn.Module:
    """A new module object sharing everything with `module` except its table of children."""
    clone = copy.copy(module)
    clone.__dict__["_modules"] = dict(module._modules)
    return clone


def _build_headless(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """A view of `model` that outputs hidden states where it would output vocabulary logits.

    Only the modules on the path from the root to the projection are copied (shallowly, each with
    its own children table); parameters, buffers, hooks and every other module are shared. The
    model itself is never changed, so any number of threads may pool with it at once.
    """
    path, projection = _vocab_projection(model)
    *parents, leaf = path.split(".")
    view = node = _shallow_copy(model)
    for name in parents:
        child = _shallow_copy(node._modules[name])  # type: ignore[arg-type]
        node._modules[name] = child
        node = child
    node._modules[leaf] = nn.Identity()
    return view, projection


_VIEWS: WeakKeyDictionary[nn.Module, tuple[nn.Module, nn.Linear]] = WeakKeyDictionary()


def _headless(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """`_build_headless`, made once per model (a tenth of a millisecond: a query's budget is
    one); made again if the model's projection was swapped (e.g. quantized) since."""
    view = _VIEWS.get(model)
    get_output = getattr(model, "get_output_embeddings", None)
    if view is None or not callable(get_output) or get_output() is not view[1]:
        view = _VIEWS[model] = _build_headless(model)
    return view


def _hidden(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The headless model's output `[batch, length, hidden]`. One text without padding and without
    autograd (a search request's query) runs BERT's flat forward (`lean_bert`: 0.35 ms instead
    of 0.7 for a one-layer query model); a batch without padding gets no mask to build."""
    full = bool(attention_mask.all())
    if full and input_ids.shape[0] == 1 and not torch.is_grad_enabled():
        lean = lean_forward(model)
        if lean is not None:
            return lean(input_ids[0])[None]
    headless, _ = _headless(model)
    return headless(input_ids=input_ids, attention_mask=None if full else attention_mask).logits


def splade_pool(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """SPLADE document/query weights `[batch, vocab]` for a masked-LM model.

    Exact in both modes: without autograd (encoding) the packed-token path; with autograd
    (training) the arg-max path, whose backward pass touches only the winning positions.
    """
    hidden = _hidden(model, input_ids, attention_mask)
    projection = _headless(model)[1]
    mask = attention_mask.bool()
    if torch.is_grad_enabled() and hidden.requires_grad:
        return _argmax_pool(hidden, mask, projection)
    return _packed_pool(hidden, mask, projection)


def own_token_pool(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """SPLADE weights `[batch, vocab]` kept to each text's own tokens (no expansion terms).

    Equal to `splade_pool` masked to the vocabulary entries a text contains (the max still runs
    over every position), but only those entries are projected: U·H per position for the U
    distinct ids of the batch instead of V·H. For a query of 15 tokens that is the whole cost of
    the vocabulary head gone, which is what a query side under a millisecond needs on a CPU; the
    query has at most as many terms as it has distinct tokens. Differentiable (training).
    """
    projection = _headless(model)[1]
    if input_ids.shape[0] == 1 and bool(attention_mask.all()):  # one query: all its ids present
        ids, weights = own_token_terms(model, input_ids[0])
        out = torch.zeros(1, projection.out_features, device=weights.device)
        return out.index_copy(1, ids, weights[None])
    hidden = _hidden(model, input_ids, attention_mask)
    ids, inverse = torch.unique(input_ids, return_inverse=True)
    logits = _own_logits(hidden, ids, projection)  # [B, L, U]
    out = torch.zeros(input_ids.shape[0], projection.out_features, device=hidden.device)
    weights = torch.log1p(torch.relu(logits.float())) * attention_mask[..., None]
    present = torch.zeros(weights.shape[0], ids.shape[0], device=weights.device)
    present = present.scatter_reduce(1, inverse, attention_mask.float(), reduce="amax")
    return out.index_copy(1, ids, weights.amax(dim=1) * present)


def own_token_terms(model: nn.Module, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One unpadded text's distinct token ids `[U]` (ascending) and their `own_token_pool`
    weights `[U]` (zeros included), with no `[vocab]` row built: a query's vector is read off
    these directly (a dense row and its `nonzero` cost a tenth of a millisecond)."""
    hidden = _hidden(model, input_ids[None], torch.ones_like(input_ids[None]))[0]
    ids = torch.unique(input_ids)
    logits = _own_logits(hidden, ids, _headless(model)[1])  # [L, U]
    return ids, torch.log1p(torch.relu(logits.amax(0).float()))


def _own_logits(hidden: torch.Tensor, ids: torch.Tensor, projection: nn.Linear) -> torch.Tensor:
    """The vocabulary projection of `hidden` `[..., H]` onto the entries `ids` only: `[..., U]`."""
    logits = hidden @ projection.weight[ids].T.to(hidden.dtype)
    if projection.bias is not None:
        logits = logits + projection.bias[ids].to(hidden.dtype)
    return logits


def pool_for(expand: bool) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The pooling a side runs: `splade_pool` (expansion terms), or `own_token_pool` (each text
    its own tokens only: a pair model's cheap query side). Encoder and training both ask here."""
    return splade_pool if expand else own_token_pool


def _packed_pool(hidden: torch.Tensor, mask: torch.Tensor, projection: nn.Linear) -> torch.Tensor:
    """Project only real (unmasked) tokens, a block of rows at a time, folding each text's rows of
    the block into its running max. A text's rows are contiguous, so each fold is one `amax` over
    a slice; no padding position is projected and no masked copy of the logits is made. On a CPU
    with native bfloat16 a float32 projection is screened first (`_screened`)."""
    tokens = hidden[mask]
    offsets = [0, *accumulate(mask.sum(dim=1).tolist())]
    screen = _screen_of(projection, tokens)
    if screen is not None:
        return _screened(tokens, offsets, projection, *screen)
    vocab = projection.out_features
    best = _running_max(tokens, offsets, projection, vocab, floor=0.0)  # floor 0: the relu
    return torch.log1p(best.float())


def _running_max(
    tokens: torch.Tensor,
    offsets: list[int],
    project: Callable[[torch.Tensor], torch.Tensor],
    vocab: int,
    floor: float,
) -> torch.Tensor:
    """Per text (rows `offsets[t]:offsets[t+1]` of `tokens`) the max over its rows of
    `project(rows)` (`vocab` columns), never below `floor`; `CHUNK_ELEMENTS` logits at a time."""
    texts = len(offsets) - 1
    best = torch.full((texts, vocab), floor, dtype=tokens.dtype, device=tokens.device)
    rows = max(1, CHUNK_ELEMENTS // vocab)
    text = 0
    for start in range(0, tokens.shape[0], rows):
        end = min(start + rows, tokens.shape[0])
        logits = project(tokens[start:end])
        while text < texts and offsets[text] < end:
            first, last = max(offsets[text], start), min(offsets[text + 1], end)
            if last > first:
                torch.maximum(
                    best[text], logits[first - start : last - start].amax(0), out=best[text]
                )
            if offsets[text + 1] > end:
                break  # this text continues in the next block
            text += 1
    return best


SCREEN_MARGIN = 2.0**-5
"""How far below zero a bfloat16 logit may sit and still be positive in float32, as a share of
|hidden| * |vocabulary row| (see `_screened`)."""

_SCREENS: WeakKeyDictionary[nn.Linear, tuple[tuple[int, int], torch.Tensor, torch.Tensor]] = (
    WeakKeyDictionary()
)


def _screen_of(
    projection: nn.Linear, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The projection's weights in bfloat16 and their row norms, for float32 tokens on a CPU with
    native bfloat16 (else None); made once per projection and again when its weights change."""
    weight = projection.weight
    if tokens.dtype != torch.float32 or weight.dtype != torch.float32:
        return None
    if tokens.device.type != "cpu" or not this_cpu_has_fast_bf16():
        return None
    stamp = (weight.data_ptr(), weight._version)
    cached = _SCREENS.get(projection)
    if cached is None or cached[0] != stamp:
        with torch.no_grad():
            cached = (stamp, weight.detach().bfloat16(), weight.detach().norm(dim=1))
        _SCREENS[projection] = cached
    return cached[1], cached[2]


def _screened(
    tokens: torch.Tensor,
    offsets: list[int],
    projection: nn.Linear,
    rough_weight: torch.Tensor,
    row_norms: torch.Tensor,
) -> torch.Tensor:
    """Exact float32 pooling at about bfloat16's cost: a bfloat16 pass finds, per text, the
    vocabulary entries that can be positive; only those are projected again in float32.

    Rounding both operands to bfloat16 (unit roundoff u = 2^-8) moves a product by at most 2u+u²
    of its size, the float32 sum adds far less and the bfloat16 output one more u of the result:
    |rough - exact| <= (3u + u²)·Σ|h_k||w_k| <= 2^-5·|h|·|w| (Cauchy-Schwarz). So an entry whose
    exact max logit is positive has `rough + bias + 2^-5·max|h|·|w| > 0`: keeping those entries
    and recomputing them loses nothing (`tests/unit/test_pooling_blocks.py` has a logit that
    bfloat16 rounds from positive to zero). About 30 entries per query, 500 per document.
    """
    bias = projection.bias
    rough = _running_max(
        tokens.bfloat16(),
        offsets,
        lambda rows: F.linear(rows, rough_weight),
        rough_weight.shape[0],
        floor=float("-inf"),
    )
    out = torch.zeros(rough.shape, dtype=torch.float32, device=tokens.device)
    for text in range(rough.shape[0]):
        rows = tokens[offsets[text] : offsets[text + 1]]
        if rows.shape[0] == 0:
            continue
        bound = rough[text].float() + SCREEN_MARGIN * rows.norm(dim=1).max() * row_norms
        if bias is not None:
            bound += bias
        columns = torch.nonzero(bound > 0).ravel()
        logits = F.linear(rows, projection.weight[columns], None if bias is None else bias[columns])
        out[text, columns] = torch.log1p(logits.amax(0).clamp_min(0))
    return out


def _argmax_pool(hidden: torch.Tensor, mask: torch.Tensor, projection: nn.Linear) -> torch.Tensor:
    """Differentiable pooling with a cheap backward pass (same values and gradients).

    The max passes gradient only to its arg-max position, so the full projection runs once without
    autograd to find each entry's arg-max; only those hidden states, for vocabulary entries positive
    in some row, are projected again with autograd. Backward cost drops from B·L·V·H to B·V'·H.
    """
    batch, length, dim = hidden.shape
    vocab = projection.out_features
    chunk = max(1, CHUNK_ELEMENTS // max(1, batch * vocab))
    with torch.no_grad():
        best = torch.full((batch, vocab), float("-inf"), device=hidden.device)
        where = torch.zeros((batch, vocab), dtype=torch.long, device=hidden.device)
        for start in range(0, length, chunk):
            logits = projection(hidden[:, start : start + chunk].detach()).float()
            logits = logits.masked_fill(~mask[:, start : start + chunk, None], float("-inf"))
            part, arg = logits.max(dim=1)
            better = part > best
            best = torch.where(better, part, best)
            where = torch.where(better, arg + start, where)
        columns = torch.nonzero((best > 0).any(dim=0)).ravel()
    out = torch.zeros((batch, vocab), device=hidden.device, dtype=torch.float32)
    if columns.numel() == 0:
        return out + 0.0 * hidden.sum()  # keep the graph connected
    positions = where[:, columns]  # [B, V']
    selected = torch.gather(hidden, 1, positions.reshape(batch, -1, 1).expand(-1, -1, dim))
    logits = torch.einsum("bvh,vh->bv", selected, projection.weight[columns])
    if projection.bias is not None:
        logits = logits + projection.bias[columns]
    return out.index_copy(1, columns, torch.log1p(torch.relu(logits.float())))


def naive_splade_pool(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Reference pooling over the full logits tensor (for tests and benchmarks)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    weights = torch.log1p(torch.relu(logits.float())) * attention_mask[..., None]
    return weights.amax(dim=1)
