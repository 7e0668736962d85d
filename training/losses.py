"""The training objective, assembled from sentence-transformers' sparse losses.

`SpladeLoss` adds the FLOPS regularizers (documents: positives and negatives; queries) to a ranking
loss: `SparseMultipleNegativesRankingLoss` (InfoNCE over in-batch and hard negatives, dot product, no
temperature), `SparseMarginMSELoss` or `SparseDistillKLDivLoss` (teacher scores in the `label`
column). What the library lacks lives here: an L1 query regularizer (the inference-free recipe), a
weighted sum of a distillation loss with a contrastive one, and a pull toward the starting weights
(`anchor_weight`, "L2-SP"): fine-tuning on one collection moves the model away from what it knew
about every other one; the penalty `anchor_weight * sum((w - w0)^2)` over the trainable weights
keeps it near the base model it started from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from sentence_transformers.sparse_encoder import SparseEncoder
from sentence_transformers.sparse_encoder.losses import (
    FlopsLoss,
    SparseDistillKLDivLoss,
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
    SpladeLoss,
)
from torch import nn

RankingLoss = Literal["infonce", "margin-mse", "kl"]
QueryRegularizer = Literal["flops", "l1"]


class L1Regularizer(nn.Module):
    """Mean L1 norm per row: penalises every query weight, not only the frequent ones."""

    def __init__(self, model: SparseEncoder) -> None:
        super().__init__()
        self.model = model

    def compute_loss_from_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings.abs().sum(dim=-1).mean()

    def get_config_dict(self) -> dict[str, object]:
        return {}


class WeightedSum(nn.Module):
    """Several ranking losses on the same embeddings, each with its weight; logged separately."""

    def __init__(self, parts: dict[str, tuple[nn.Module, float]]) -> None:
        super().__init__()
        self.parts: Any = nn.ModuleDict({name: loss for name, (loss, _) in parts.items()})
        self.weights = {name: weight for name, (_, weight) in parts.items()}

    def compute_loss_from_embeddings(
        self, embeddings: list[torch.Tensor], labels: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        return {
            name: self.weights[name] * loss.compute_loss_from_embeddings(embeddings, labels)
            for name, loss in self.parts.items()
        }

    def get_config_dict(self) -> dict[str, object]:
        return {"weights": self.weights}


@dataclass(frozen=True)
class Objective:
    """Which ranking loss and how strongly each regularizer pulls."""

    ranking: RankingLoss = "infonce"
    lambda_d: float = 1e-3
    lambda_q: float = 1e-3
    query_regularizer: QueryRegularizer = "flops"
    contrastive_weight: float = 0.0  # an extra InfoNCE term next to a distillation loss
    kl_temperature: float = 1.0
    anchor_weight: float = 0.0  # L2 pull toward the starting weights (0: none)


def ranking_loss(model: SparseEncoder, objective: Objective) -> nn.Module:
    """The ranking part alone (no regularizers)."""
    contrastive = SparseMultipleNegativesRankingLoss(model, scale=1.0)
    if objective.ranking == "infonce":
        return contrastive
    distill: nn.Module
    if objective.ranking == "margin-mse":
        distill = SparseMarginMSELoss(model)
    else:
        distill = SparseDistillKLDivLoss(model, temperature=objective.kl_temperature)
    if objective.contrastive_weight <= 0:
        return distill
    return WeightedSum(
        {objective.ranking: (distill, 1.0), "infonce": (contrastive, objective.contrastive_weight)}
    )


class AnchoredSpladeLoss(SpladeLoss):
    """`SpladeLoss` plus `weight * sum((w - w0)^2)` over the trainable parameters, w0 their values
    when training started (kept as frozen copies on the same device). A SpladeLoss subclass, so the
    trainer's handling of SpladeLoss (the regularizer warm-up) still applies."""

    def __init__(self, model: SparseEncoder, weight: float, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.anchor_weight = weight
        self._start = [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]

    def anchor_loss(self) -> torch.Tensor:
        if any(p0.device != p.device for p, p0 in self._start):  # the trainer moved the model
            self._start = [(p, p0.to(p.device)) for p, p0 in self._start]
        total = sum(((p - p0) ** 2).sum() for p, p0 in self._start)
        return self.anchor_weight * torch.as_tensor(total)

    def forward(
        self, sentence_features: Any, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = super().forward(sentence_features, labels)
        losses["anchor_loss"] = self.anchor_loss()
        return losses

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "anchor_weight": self.anchor_weight}


def build_loss(model: SparseEncoder, objective: Objective) -> SpladeLoss:
    """`SpladeLoss`: ranking loss + `lambda_d` x FLOPS(documents) + `lambda_q` x query regularizer.

    `lambda_q` applies to the inference-free query table too (its weights are the query vectors).
    """
    query_regularizer = (
        L1Regularizer(model) if objective.query_regularizer == "l1" else FlopsLoss(model)
    )
    parts: dict[str, Any] = {
        "loss": ranking_loss(model, objective),
        "document_regularizer_weight": objective.lambda_d,
        "query_regularizer_weight": objective.lambda_q,
        "query_regularizer": query_regularizer,
    }
    if objective.anchor_weight > 0:
        return AnchoredSpladeLoss(model, objective.anchor_weight, **parts)
    return SpladeLoss(model, **parts)
