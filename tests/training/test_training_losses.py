"""Every term of the training objective, checked against its formula on a real (tiny) model's
embeddings: a term that is dropped, swapped or weighted wrongly fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from sentence_transformers.base.modules import Transformer
from sentence_transformers.sparse_encoder import SparseEncoder
from sentence_transformers.sparse_encoder.modules import SpladePooling

from splade_es.training.losses import Objective, build_loss
from splade_es.training.model import build_model

QUERIES = ["vitamin d deficiency", "cells divide quickly", "heart disease risk"]
POSITIVES = ["vitamin d and bone health", "mitosis in human cells", "cardiac risk factors"]
NEGATIVES = ["the cat sat on the mat", "stock markets fell", "a recipe for bread"]


def features(model: SparseEncoder, columns: list[list[str]]) -> list[dict[str, object]]:
    tasks = ["query"] + ["document"] * (len(columns) - 1)
    return [
        dict(model.preprocess(texts, task=task)) | {"task": task}
        for texts, task in zip(columns, tasks, strict=True)
    ]


def embed(model: SparseEncoder, batch: list[dict[str, object]]) -> list[torch.Tensor]:
    return [model(dict(f))["sentence_embedding"] for f in batch]


def projection(model: SparseEncoder) -> Any:
    """The MLM's vocabulary projection (its bias gets every pooled weight's gradient)."""
    mlm: Any = model[0]
    return mlm.model.get_output_embeddings()


def flops(x: torch.Tensor) -> torch.Tensor:
    return (x.mean(dim=0) ** 2).sum()


@pytest.fixture(scope="module")
def model(tiny_mlm: Path) -> SparseEncoder:
    encoder = build_model("shared", str(tiny_mlm), document_length=32, query_length=16)
    return encoder.eval()  # no dropout: the loss and the hand computation see the same network


def test_infonce_with_both_flops_regularizers(model: SparseEncoder) -> None:
    loss = build_loss(model, Objective("infonce", lambda_d=0.3, lambda_q=0.7))
    batch = features(model, [QUERIES, POSITIVES, NEGATIVES])
    parts = loss(batch, None)
    assert set(parts) == {"base_loss", "document_regularizer_loss", "query_regularizer_loss"}
    q, pos, neg = embed(model, batch)
    docs = torch.cat([pos, neg])
    expected_rank = torch.nn.functional.cross_entropy(q @ docs.T, torch.arange(3))
    torch.testing.assert_close(parts["base_loss"], expected_rank, rtol=1e-4, atol=1e-4)
    # documents: positives and negatives together; queries on their own, each with its lambda
    torch.testing.assert_close(
        parts["document_regularizer_loss"], 0.3 * flops(docs), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(
        parts["query_regularizer_loss"], 0.7 * flops(q), rtol=1e-4, atol=1e-5
    )
    assert parts["query_regularizer_loss"] > 0  # a real pull, not a zero placeholder


def test_query_regularizer_gradient_reaches_the_query_encoder(model: SparseEncoder) -> None:
    """Issue #13 item 8: dropping the query regularizer must change the training signal."""
    batch = features(model, [QUERIES, POSITIVES])

    def grad_of(lambda_q: float) -> torch.Tensor:
        model.zero_grad()
        parts = build_loss(model, Objective("infonce", lambda_d=0.0, lambda_q=lambda_q))(
            batch, None
        )
        sum(parts.values()).backward()
        return projection(model).bias.grad.clone()

    with_reg, without = grad_of(1.0), grad_of(0.0)
    model.zero_grad()
    q = embed(model, batch)[0]
    flops(q).backward()
    only_reg = projection(model).bias.grad.clone()
    model.zero_grad()
    torch.testing.assert_close(with_reg - without, only_reg, rtol=1e-3, atol=1e-6)
    assert only_reg.abs().sum() > 0


def test_l1_query_regularizer(model: SparseEncoder) -> None:
    loss = build_loss(
        model, Objective("infonce", lambda_d=0.1, lambda_q=0.2, query_regularizer="l1")
    )
    batch = features(model, [QUERIES, POSITIVES])
    parts = loss(batch, None)
    q = embed(model, batch)[0]
    expected = 0.2 * q.abs().sum(dim=-1).mean()
    torch.testing.assert_close(parts["query_regularizer_loss"], expected, rtol=1e-4, atol=1e-5)


def test_margin_mse_uses_teacher_margins(model: SparseEncoder) -> None:
    loss = build_loss(model, Objective("margin-mse", lambda_d=0.0, lambda_q=0.0))
    batch = features(model, [QUERIES, POSITIVES, NEGATIVES])
    teacher = torch.tensor([[12.0, 3.0], [8.0, 7.5], [5.0, 9.0]])
    parts = loss(batch, teacher)
    q, pos, neg = embed(model, batch)
    student = (q * pos).sum(-1) - (q * neg).sum(-1)
    expected = torch.nn.functional.mse_loss(student, teacher[:, 0] - teacher[:, 1])
    torch.testing.assert_close(parts["base_loss"], expected, rtol=1e-4, atol=1e-4)


def test_kl_with_contrastive_term(model: SparseEncoder) -> None:
    objective = Objective("kl", lambda_d=0.0, lambda_q=0.0, contrastive_weight=0.25)
    loss = build_loss(model, objective)
    batch = features(model, [QUERIES, POSITIVES, NEGATIVES])
    teacher = torch.tensor([[2.0, 0.0], [0.5, 0.4], [-1.0, 1.0]])
    parts = loss(batch, teacher)
    assert set(parts) >= {"kl", "infonce"}
    q, pos, neg = embed(model, batch)
    student = torch.stack([(q * pos).sum(-1), (q * neg).sum(-1)], dim=1)
    p = torch.softmax(teacher, dim=1)
    kl = (p * (p.log() - torch.log_softmax(student, dim=1))).sum(dim=1).mean()
    torch.testing.assert_close(parts["kl"], kl, rtol=1e-3, atol=1e-4)
    docs = torch.cat([pos, neg])
    infonce = torch.nn.functional.cross_entropy(q @ docs.T, torch.arange(3))
    torch.testing.assert_close(parts["infonce"], 0.25 * infonce, rtol=1e-4, atol=1e-4)


def test_fast_pooling_equals_library_pooling(tiny_mlm: Path) -> None:
    """The project's pooling gives the library's SpladePooling values and gradients (special
    tokens aside, which the project zeroes as the encoder does)."""
    fast = build_model("shared", str(tiny_mlm), document_length=48)
    library = SparseEncoder(
        modules=[Transformer(str(tiny_mlm), transformer_task="fill-mask"), SpladePooling("max")]
    )
    for model in (fast, library):  # training mode (the differentiable paths), without dropout
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    texts = ["vitamin d and cancer", "cells divide " * 20]
    batch = fast.preprocess(texts, task="document")
    a = fast(dict(batch))["sentence_embedding"]
    b = library(dict(batch))["sentence_embedding"]
    keep = fast[0].keep
    torch.testing.assert_close(a, b * keep, rtol=1e-5, atol=1e-5)
    target = torch.randn_like(a)
    (a * target).sum().backward()
    (b * keep * target).sum().backward()
    ga = projection(fast).weight.grad
    gb = projection(library).weight.grad
    torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-4)


def test_the_anchor_pulls_toward_the_starting_weights(tiny_mlm: Path) -> None:
    """Zero at the start, `weight * sum((w - w0)^2)` after a step, and its gradient points back
    toward w0 (a fresh model: the step below must not leak into the shared fixture)."""
    model = build_model("shared", str(tiny_mlm), document_length=32, query_length=16).eval()
    loss = build_loss(model, Objective("infonce", anchor_weight=0.5))
    batch = features(model, [QUERIES, POSITIVES, NEGATIVES])
    assert set(loss(batch, None)) >= {"base_loss", "anchor_loss"}
    assert float(loss(batch, None)["anchor_loss"]) == 0.0
    weight = projection(model).weight
    start = weight.detach().clone()
    with torch.no_grad():
        weight.add_(0.01)
    anchor = loss(batch, None)["anchor_loss"]
    torch.testing.assert_close(anchor, 0.5 * ((weight - start) ** 2).sum(), rtol=1e-4, atol=1e-6)
    model.zero_grad()
    anchor.backward()
    assert weight.grad is not None and bool((weight.grad > 0).all())  # descent moves w back down
    assert "anchor_loss" not in build_loss(model, Objective("infonce"))(batch, None)
