"""The training objective, assembled from sentence-transformers' sparse losses.

`SpladeLoss` adds the FLOPS regularizers (documents: positives and negatives; queries) to a ranking
loss: `SparseMultipleNegativesRankingLoss` (InfoNCE over in-batch and hard negatives, dot product, no
temperature), `SparseMarginMSELoss` or `SparseDistillKLDivLoss` (teacher scores in the `label`
column). What the library lacks lives here: an L1 query regularizer (the inference-free recipe) and a
weighted sum of a distillation loss with a contrastive one.
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


def build_loss(model: SparseEncoder, objective: Objective) -> SpladeLoss:
    """`SpladeLoss`: ranking loss + `lambda_d` x FLOPS(documents) + `lambda_q` x query regularizer.

    `lambda_q` applies to the inference-free query table too (its weights are the query vectors).
    """
    query_regularizer = (
        L1Regularizer(model) if objective.query_regularizer == "l1" else FlopsLoss(model)
    )
    return SpladeLoss(
        model,
        loss=ranking_loss(model, objective),
        document_regularizer_weight=objective.lambda_d,
        query_regularizer_weight=objective.lambda_q,
        query_regularizer=query_regularizer,
    )
