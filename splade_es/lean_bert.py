"""BERT's forward pass for one unpadded text, as a flat run of torch calls.

A search request encodes one query, and a query side that should cost under a millisecond on a CPU
cannot spend most of it in Python: HF's `BertModel` walks dozens of modules, builds masks and
checks arguments per call (about 0.7 ms for a one-layer model on this machine, for a few
microseconds of arithmetic). With no padding there is no mask to build, and with no autograd
and no dropout (eval) each layer is three projections, attention, two layer norms and a
feed-forward block. The same modules are called (so an int8-quantized Linear or a bfloat16 model
runs as it would inside HF) and no weight is copied, so a model trained further in place (an
optimizer step, `.to()`, `load_state_dict`) is read as it is now; a module or parameter *replaced*
after the first call is not seen (no library this project calls does that to a model in eval mode).
Exact: equal to HF's output up to float rounding (`tests/unit/test_lean_bert.py`).

Only BERT masked-LM models with absolute positions and no forward hooks (a module's or global)
qualify (`lean_forward` says None otherwise); the caller then runs the model as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_hooks

Hidden = Callable[[torch.Tensor], torch.Tensor]
"""Token ids `[length]` of one text -> the MLM head's hidden states `[length, hidden]` (the
input of its vocabulary projection)."""


_PLANS: WeakKeyDictionary[nn.Module, tuple[tuple[nn.Module, ...], Hidden | None]] = (
    WeakKeyDictionary()
)
"""Per model, made on its first call: `model.modules()` (the walk costs 0.15 ms, a seventh of a
query's budget) and its flat forward (`_plan`; None when it is not a BERT masked LM)."""


def lean_forward(model: nn.Module) -> Hidden | None:
    """The flat forward of `model` when it is a BERT masked LM in eval mode without forward hooks,
    else None. The modules and what the forward calls are resolved once per model; eval mode and
    hooks are read live on every call (hooks are what users add later, a caller may switch modes)."""
    entry = _PLANS.get(model)
    if entry is None:
        entry = _PLANS[model] = (tuple(model.modules()), _plan(model))
    modules, plan = entry
    if (
        model.training
        or module_hooks._global_forward_hooks
        or module_hooks._global_forward_pre_hooks
        or any(m._forward_hooks or m._forward_pre_hooks for m in modules)
    ):
        return None  # hooks (a user's, accelerate's offloading) need HF's own calls
    return plan


def _linear(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`module`'s forward as one call: a plain Linear straight to `F.linear` on its own
    parameters (their storage is updated in place by training and `.to()`, so they stay live),
    anything else (an int8-quantized Linear) by its own `forward`."""
    if type(module) is nn.Linear:
        weight, bias = module.weight, module.bias
        return lambda x: F.linear(x, weight, bias)
    return module.forward


def _plan(model: nn.Module) -> Hidden | None:
    """The flat forward of a BERT masked LM with absolute positions, every module and parameter
    it touches looked up here once: attribute walks through `nn.Module.__getattr__` cost a
    fifth of the forward (0.62 -> 0.50 ms for a 2-layer 128-wide query model)."""
    config = getattr(model, "config", None)
    bert = getattr(model, "bert", None)
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    if (
        config is None
        or bert is None
        or predictions is None
        or getattr(config, "model_type", None) != "bert"
        or getattr(config, "position_embedding_type", "absolute") != "absolute"
        or getattr(config, "is_decoder", False)
    ):
        return None
    heads = config.num_attention_heads
    width = config.hidden_size
    scale = (width // heads) ** -0.5

    def norm_of(layer_norm: nn.Module) -> tuple[Any, ...]:
        return (width,), layer_norm.weight, layer_norm.bias, layer_norm.eps

    embeddings, transform = bert.embeddings, predictions.transform
    words = embeddings.word_embeddings.weight
    positions = embeddings.position_embeddings.weight
    token_type = embeddings.token_type_embeddings.weight[0]
    embedding_norm = norm_of(embeddings.LayerNorm)
    layers = [
        (
            _linear(layer.attention.self.query),
            _linear(layer.attention.self.key),
            _linear(layer.attention.self.value),
            _linear(layer.attention.output.dense),
            norm_of(layer.attention.output.LayerNorm),
            _linear(layer.intermediate.dense),
            layer.intermediate.intermediate_act_fn,
            _linear(layer.output.dense),
            norm_of(layer.output.LayerNorm),
        )
        for layer in bert.encoder.layer
    ]
    head_dense, head_act = _linear(transform.dense), transform.transform_act_fn
    head_norm = norm_of(transform.LayerNorm)
    layer_norm, softmax = F.layer_norm, torch.softmax

    # attention is three plain ops, as HF's eager path does it (SDPA's CPU kernel takes 60 us
    # on a 20 x 20 query, these 15)
    def hidden(ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[0]
        # token_type_embeddings.weight[0] is a view: it follows the table's storage
        x = layer_norm(F.embedding(ids, words) + positions[:n] + token_type, *embedding_norm)
        for query, key, value, out, out_norm, inner, act, down, down_norm in layers:
            q = query(x).view(n, heads, -1).transpose(0, 1)
            k = key(x).view(n, heads, -1).transpose(0, 1)
            v = value(x).view(n, heads, -1).transpose(0, 1)
            attended = softmax((q @ k.transpose(1, 2)) * scale, dim=-1) @ v
            x = layer_norm(out(attended.transpose(0, 1).reshape(n, -1)) + x, *out_norm)
            x = layer_norm(down(act(inner(x))) + x, *down_norm)
        return layer_norm(head_act(head_dense(x)), *head_norm)

    return hidden
