"""SPLADE training losses: contrastive ranking, distillation, and sparsity regularizers.

Scores are plain dot products of SPLADE vectors (no temperature), as in naver/splade.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scores_all(queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
    """`[B, D]` dot products of every query with every document in the batch."""
    return queries @ docs.T


def own_scores(queries: torch.Tensor, docs: torch.Tensor, n_negatives: int) -> torch.Tensor:
    """`[B, 1+n]`: each query against its own positive, then its own n negatives.

    `docs` holds B positives then B*n negatives, query-major.
    """
    batch = queries.shape[0]
    positives = (queries * docs[:batch]).sum(-1, keepdim=True)
    if n_negatives == 0:
        return positives
    negatives = docs[batch:].view(batch, n_negatives, -1)
    return torch.cat([positives, torch.einsum("bv,bnv->bn", queries, negatives)], dim=1)


def info_nce(queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each query's positive (`docs[i]`) against every document in the batch:
    in-batch positives of the other queries plus all hard negatives."""
    logits = scores_all(queries, docs)
    labels = torch.arange(queries.shape[0], device=queries.device)
    return F.cross_entropy(logits, labels)


def margin_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MarginMSE (Hofstätter et al.): MSE between student and teacher margins pos - neg_i.

    Both `[B, 1+n]`, positive in column 0.
    """
    s_margin = student[:, :1] - student[:, 1:]
    t_margin = teacher[:, :1] - teacher[:, 1:]
    return F.mse_loss(s_margin, t_margin)


def kl_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over each query's candidate list (softmax of scores)."""
    return F.kl_div(
        F.log_softmax(student, dim=-1),
        F.log_softmax(teacher, dim=-1),
        reduction="batchmean",
        log_target=True,
    )


def flops(weights: torch.Tensor) -> torch.Tensor:
    """FLOPS regularizer (Paria et al.): sum over the vocabulary of the squared mean weight."""
    return (weights.abs().mean(dim=0) ** 2).sum()


def l1(weights: torch.Tensor) -> torch.Tensor:
    """Mean L1 norm per row."""
    return weights.abs().sum(dim=-1).mean()


def warmup_lambda(lam: float, step: int, warmup_steps: int) -> float:
    """naver/splade's quadratic warm-up: `lam * min(1, (step / warmup_steps)^2)`."""
    if warmup_steps <= 0:
        return lam
    return lam * min(1.0, (step / warmup_steps) ** 2)
