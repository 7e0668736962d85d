"""Losses, regularizers, warm-up, and the training-time pooling."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from splade_es.pooling import naive_splade_pool, splade_pool
from training import losses
from training.model import SpladeModel, tokenize


def test_flops_and_l1() -> None:
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert losses.flops(w).item() == pytest.approx(2.0**2 + 0 + 1.0**2)
    assert losses.l1(w).item() == pytest.approx(3.0)


def test_quadratic_warmup() -> None:
    assert losses.warmup_lambda(0.1, 0, 100) == 0.0
    assert losses.warmup_lambda(0.1, 50, 100) == pytest.approx(0.025)
    assert losses.warmup_lambda(0.1, 100, 100) == pytest.approx(0.1)
    assert losses.warmup_lambda(0.1, 500, 100) == pytest.approx(0.1)
    assert losses.warmup_lambda(0.1, 3, 0) == 0.1


def test_info_nce_uses_in_batch_and_hard_negatives() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    docs = torch.tensor(
        [[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]
    )  # 2 positives, 2 negatives
    logits = q @ docs.T
    expected = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 1]) / 2
    assert losses.info_nce(q, docs).item() == pytest.approx(expected.item())
    own = losses.own_scores(q, docs, n_negatives=1)
    assert own.tolist() == [[2.0, 1.0], [2.0, 0.0]]


def test_distillation_losses() -> None:
    student = torch.tensor([[5.0, 2.0, 1.0]])
    assert losses.margin_mse(student, student + 10.0).item() == pytest.approx(0.0)
    assert losses.margin_mse(student, torch.tensor([[4.0, 2.0, 1.0]])).item() == pytest.approx(1.0)
    assert losses.kl_distillation(student, student + 3.0).item() == pytest.approx(0.0, abs=1e-6)
    teacher = torch.tensor([[0.0, 0.0, 0.0]])
    p = torch.softmax(teacher, -1)
    expected = (p * (p.log() - torch.log_softmax(student, -1))).sum()
    assert losses.kl_distillation(student, teacher).item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_training_pool_matches_naive_pool(tiny_mlm: Path) -> None:
    model = SpladeModel.from_base("shared", str(tiny_mlm))
    model.eval()  # no dropout: both passes see the same network
    batch = tokenize(model.tokenizer, ["vitamin d and cancer", "cells divide " * 20], 48)
    ref = naive_splade_pool(model.document, batch["input_ids"], batch["attention_mask"])
    target = torch.randn_like(ref)
    (ref * target).sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    got = splade_pool(model.document, batch["input_ids"], batch["attention_mask"])
    (got * target).sum().backward()
    assert torch.allclose(got, ref, atol=1e-5)
    for name, grad in ref_grads.items():
        other = dict(model.named_parameters())[name].grad
        assert other is not None
        scale = max(
            grad.norm().item(), 1e-3
        )  # attention key biases get ~0 gradient (softmax shift)
        assert (grad - other).norm().item() / scale < 1e-3, name


def test_inference_free_query_side_weights_query_tokens(tiny_mlm: Path) -> None:
    model = SpladeModel.from_base(
        "inference-free", str(tiny_mlm), idf_texts=["vitamin d", "cancer"]
    )
    batch = tokenize(model.tokenizer, ["vitamin cancer vitamin"], 16)
    reps = model.encode_queries(batch["input_ids"], batch["attention_mask"])
    ids = [model.tokenizer.convert_tokens_to_ids(t) for t in ("vitamin", "cancer", "[CLS]")]
    assert all(isinstance(i, int) for i in ids)
    assert model.query_weights is not None
    idf = torch.relu(model.query_weights)
    assert reps[0, ids[0]].item() == pytest.approx(idf[ids[0]].item())
    assert reps[0, ids[1]].item() == pytest.approx(idf[ids[1]].item())
    assert reps[0, ids[2]].item() == 0.0  # special tokens never weigh
    assert int((reps[0] > 0).sum()) == 2
    assert idf[ids[1]].item() == pytest.approx(math.log(1 + 1.5 / 1.5))  # BM25 idf, df 1 of N 2
    assert idf[ids[0]].item() == pytest.approx(math.log(1 + 1.5 / 1.5))
