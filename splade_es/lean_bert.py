"""BERT's forward pass for one unpadded text, as a flat run of torch calls.

A search request encodes one query, and a query side that should cost under a millisecond on a CPU
cannot spend most of it in Python: HF's `BertModel` walks dozens of modules, builds masks and
checks arguments per call (about 0.7 ms for a one-layer model on this machine, for a few
microseconds of arithmetic). With no padding there is no mask to build, and with no autograd
and no dropout (eval) each layer is three projections, attention, two layer norms and a
feed-forward block. The same modules are called (so an int8-quantized Linear or a bfloat16 model
runs as it would inside HF) and no weight is copied, so a model trained further is read as it is
now. Exact: equal to HF's output up to float rounding (`tests/unit/test_lean_bert.py`).

Only BERT masked-LM models with absolute positions and no forward hooks (a module's or global)
qualify (`lean_forward` says None otherwise); the caller then runs the model as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from weakref import WeakKeyDictionary

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_hooks

Hidden = Callable[[torch.Tensor], torch.Tensor]
"""Token ids `[length]` of one text -> the MLM head's hidden states `[length, hidden]` (the
input of its vocabulary projection)."""


_MODULES: WeakKeyDictionary[nn.Module, tuple[nn.Module, ...]] = WeakKeyDictionary()


def _modules(model: nn.Module) -> tuple[nn.Module, ...]:
    """`model.modules()`, walked once per model: the walk costs 0.15 ms, a seventh of a query's
    budget, every call. Their hooks are read live each call (hooks are what users add later);
    a module put into the tree after the first call is not seen (no library this project
    calls does that to a model in eval mode)."""
    modules = _MODULES.get(model)
    if modules is None:
        modules = _MODULES[model] = tuple(model.modules())
    return modules


def lean_forward(model: nn.Module) -> Hidden | None:
    """The flat forward of `model` when it is a BERT masked LM in eval mode, else None."""
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
        or model.training
        or any(m._forward_hooks or m._forward_pre_hooks for m in _modules(model))
        or module_hooks._global_forward_hooks
        or module_hooks._global_forward_pre_hooks
    ):
        return None  # hooks (a user's, accelerate's offloading) need HF's own calls
    embeddings, layers, transform = bert.embeddings, bert.encoder.layer, predictions.transform
    heads = config.num_attention_heads
    width = config.hidden_size

    scale = (width // heads) ** -0.5

    def norm(x: torch.Tensor, layer_norm: nn.LayerNorm) -> torch.Tensor:
        return F.layer_norm(x, (width,), layer_norm.weight, layer_norm.bias, layer_norm.eps)

    # modules are run by their `forward`: no hooks is checked above, and `__call__`'s dispatch
    # costs more than a 20-token 128-wide Linear; attention is three plain ops, as HF's eager
    # path does it (SDPA's CPU kernel takes 60 us on a 20 x 20 query, these 15)
    def hidden(ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[0]
        x = (
            embeddings.word_embeddings.forward(ids)
            + embeddings.position_embeddings.weight[:length]
            + embeddings.token_type_embeddings.weight[0]
        )
        x = norm(x, embeddings.LayerNorm)
        for layer in layers:
            attention = layer.attention.self
            q, k, v = (
                part.forward(x).view(length, heads, -1).transpose(0, 1)
                for part in (attention.query, attention.key, attention.value)
            )
            weights = torch.softmax((q @ k.transpose(1, 2)) * scale, dim=-1)
            context = (weights @ v).transpose(0, 1).reshape(length, -1)
            output = layer.attention.output
            x = norm(output.dense.forward(context) + x, output.LayerNorm)
            inner = layer.intermediate.intermediate_act_fn(layer.intermediate.dense.forward(x))
            x = norm(layer.output.dense.forward(inner) + x, layer.output.LayerNorm)
        return norm(transform.transform_act_fn(transform.dense.forward(x)), transform.LayerNorm)

    return hidden
