"""Trainable SPLADE models in the three shapes the encoder loads, and their export.

- shared: one MLM encodes queries and documents.
- pair: separate document and query MLMs (efficient-SPLADE style); both start from the base model
  unless a separate query base is given.
- inference-free: an MLM for documents; a query is the set of its tokens, each weighted by a
  trainable per-vocabulary-entry weight `relu(w)`, saved as `idf.json` {token: weight}.

Pooling is `splade_es.pooling.splade_pool`, the function the encoder runs at inference.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedTokenizerBase

from splade_es.models import IDF_FILE, ModelSettings, Shape, read_settings, write_settings
from splade_es.pooling import splade_pool

SHAPES: tuple[Shape, ...] = ("shared", "pair", "inference-free")


def _mlm(location: str) -> Any:
    return AutoModelForMaskedLM.from_pretrained(location, dtype=torch.float32)


def corpus_idf(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> torch.Tensor:
    """Per-vocabulary-entry BM25 IDF `log(1 + (N - df + 0.5) / (df + 0.5))` (always > 0)."""
    df = torch.zeros(len(tokenizer))
    for start in range(0, len(texts), 512):
        ids = tokenizer(list(texts[start : start + 512]), truncation=True, max_length=512)
        for row in ids["input_ids"]:
            df[torch.tensor(sorted(set(row)), dtype=torch.long)] += 1
    n = float(len(texts))
    return torch.log1p((n - df + 0.5) / (df + 0.5))


class SpladeModel(nn.Module):
    """Document and query encoders producing `[batch, vocab]` SPLADE weights."""

    keep: torch.Tensor
    query_weights: nn.Parameter | None
    document: Any
    query: Any

    def __init__(
        self,
        shape: Shape,
        document: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        query: nn.Module | None = None,
        query_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
        self.shape: Shape = shape
        self.document = document
        self.tokenizer = tokenizer
        self.query = query if shape == "pair" else None
        if shape == "pair" and query is None:
            raise ValueError("shape 'pair' needs a query model")
        vocab = int(document.get_output_embeddings().out_features)  # type: ignore[operator]
        special = sorted(i for i in set(tokenizer.all_special_ids) if i < vocab)
        keep = torch.ones(vocab)
        keep[special] = 0.0
        self.register_buffer("keep", keep, persistent=False)
        if shape == "inference-free":
            init = query_weights if query_weights is not None else torch.ones(vocab)
            self.query_weights = nn.Parameter(init.float().clone())
        else:
            self.query_weights = None

    @classmethod
    def from_base(
        cls,
        shape: Shape,
        base: str,
        query_base: str | None = None,
        idf_texts: Sequence[str] | None = None,
    ) -> SpladeModel:
        """Start from a model the encoder could load (alias, folder); `base` may itself be any shape.

        A pair base keeps its two sides; an inference-free base keeps its `idf.json` as the initial
        query weights. Otherwise inference-free query weights start at the corpus IDF of `idf_texts`.
        """
        settings = read_settings(base)
        tokenizer = AutoTokenizer.from_pretrained(settings.document)
        document = _mlm(settings.document)
        query = None
        if shape == "pair":
            location = query_base or settings.query or settings.document
            query = _mlm(read_settings(location).document if query_base else location)
        weights = None
        if shape == "inference-free":
            idf_path = Path(settings.document) / IDF_FILE
            if idf_path.is_file():
                table = json.loads(idf_path.read_text())
                weights = torch.zeros(len(tokenizer))
                for token, value in table.items():
                    token_id = tokenizer.convert_tokens_to_ids(token)
                    if isinstance(token_id, int) and 0 <= token_id < len(weights):
                        weights[token_id] = float(value)
            elif idf_texts:
                weights = corpus_idf(tokenizer, idf_texts)
        return cls(shape, document, tokenizer, query, weights)

    def _pool(self, model: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return splade_pool(model, input_ids, mask) * self.keep

    def encode_documents(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._pool(self.document, input_ids, mask)

    def encode_queries(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.shape == "inference-free":
            assert self.query_weights is not None
            present = torch.zeros(input_ids.shape[0], self.keep.shape[0], device=input_ids.device)
            present.scatter_(1, input_ids * mask.long(), mask.float())
            return present * self.keep * torch.relu(self.query_weights)
        model = self.query if self.query is not None else self.document
        return self._pool(model, input_ids, mask)

    def forward(
        self,
        query_ids: torch.Tensor,
        query_mask: torch.Tensor,
        doc_ids: torch.Tensor,
        doc_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_queries(query_ids, query_mask), self.encode_documents(doc_ids, doc_mask)

    def idf_table(self) -> dict[str, float]:
        """Inference-free query weights as `{token: weight}` (positive, non-special entries)."""
        assert self.query_weights is not None
        weights = (torch.relu(self.query_weights.detach().float()) * self.keep).cpu()
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(len(weights))))
        return {
            str(tokens[i]): round(float(weights[i]), 6)
            for i in torch.nonzero(weights > 0).ravel().tolist()
            if math.isfinite(float(weights[i]))
        }

    def save(self, folder: Path, doc_max_length: int, query_max_length: int) -> Path:
        """Write a folder `SpladeEncoder.load(folder)` loads, with `splade_es.json`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("document", "query", IDF_FILE):
            target = folder / stale
            if target.is_dir():
                shutil.rmtree(target)
            elif target.is_file():
                target.unlink()
        if self.shape == "pair":
            assert self.query is not None
            for name, model in (("document", self.document), ("query", self.query)):
                model.save_pretrained(folder / name)
                self.tokenizer.save_pretrained(folder / name)
            settings = ModelSettings(
                "pair",
                str(folder / "document"),
                str(folder / "query"),
                doc_max_length,
                query_max_length,
            )
        else:
            self.document.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
            if self.shape == "inference-free":
                (folder / IDF_FILE).write_text(json.dumps(self.idf_table(), ensure_ascii=False))
            settings = ModelSettings(
                self.shape, str(folder), None, doc_max_length, query_max_length
            )
        write_settings(folder, settings)
        return folder


def active_terms(weights: torch.Tensor) -> float:
    """Mean number of nonzero entries per row."""
    return float((weights > 0).sum(dim=1).float().mean()) if weights.numel() else 0.0


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> Any:
    """Padded, truncated `BatchEncoding` of `input_ids` and `attention_mask` tensors."""
    return tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
