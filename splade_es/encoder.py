"""SPLADE encoder: text -> SparseVector, for documents and queries, in the three model shapes.

- shared: one MLM model encodes both sides (naver SPLADE++, SPLADE v3, splade-tiny).
- pair: separate document and query MLM models (naver efficient-splade `*-doc` / `*-query`).
- inference-free: an MLM document model; queries are the tokenizer plus a per-token weight table
  (`idf.json`, as OpenSearch's doc-only models ship), so no model runs at query time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from splade_es.models import IDF_FILE, ModelSettings, read_settings
from splade_es.pooling import splade_pool
from splade_es.sparse import SparseVector

hf_logging.disable_progress_bar()

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA, then Apple MPS, then CPU."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class QuerySide(Protocol):
    """Anything that turns query texts into sparse vectors."""

    def encode(
        self, texts: Sequence[str], max_length: int, batch_size: int, progress: bool = False
    ) -> list[SparseVector]: ...


class MLMSide:
    """One masked-LM model and its tokenizer, encoding texts into SPLADE vectors."""

    def __init__(
        self, location: str, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> None:
        if dtype == torch.float16 and device.type == "cpu":
            raise ValueError("float16 needs a GPU; use bfloat16 or float32 on CPU")
        self.location = location
        self.device = device
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(location)
        self.model = AutoModelForMaskedLM.from_pretrained(location, dtype=dtype).to(device).eval()
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        self.id_to_token: list[str] = [str(t) for t in vocab]
        self.special_ids = torch.tensor(
            sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long
        )

    def weights(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """SPLADE weights `[len(texts), vocab]` on CPU, special tokens zeroed."""
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            weights = splade_pool(self.model, batch["input_ids"], batch["attention_mask"]).cpu()
            weights[:, self.special_ids[self.special_ids < weights.shape[1]]] = 0.0
        return weights

    def to_vectors(self, weights: torch.Tensor) -> list[SparseVector]:
        """Rows of a `[n, vocab]` weight matrix as SparseVectors (nonzero entries only)."""
        rows, cols = weights.nonzero(as_tuple=True)
        values = weights[rows, cols].tolist()
        per_row: list[list[tuple[str, float]]] = [[] for _ in range(weights.shape[0])]
        for r, c, v in zip(rows.tolist(), cols.tolist(), values, strict=True):
            per_row[r].append((self.id_to_token[c], v))
        return [SparseVector.from_pairs(pairs) for pairs in per_row]

    def encode(
        self, texts: Sequence[str], max_length: int, batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        """Encode in length-sorted batches (less padding), returning vectors in input order."""
        lengths = [
            len(ids)
            for ids in self.tokenizer(list(texts), truncation=True, max_length=max_length)[
                "input_ids"
            ]
        ]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out: list[SparseVector | None] = [None] * len(texts)
        bar = tqdm(total=len(texts), unit="text", disable=not progress)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            vectors = self.to_vectors(self.weights([texts[i] for i in idx], max_length))
            for i, vector in zip(idx, vectors, strict=True):
                out[i] = vector
            bar.update(len(idx))
        bar.close()
        return [v for v in out if v is not None]


class IdfQuerySide:
    """Inference-free query side: each distinct query token weighs its entry in `idf.json`."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, idf: dict[str, float]) -> None:
        self.tokenizer = tokenizer
        self.idf = idf
        self.special = set(tokenizer.all_special_tokens)

    @classmethod
    def from_folder(cls, folder: str, tokenizer: PreTrainedTokenizerBase) -> IdfQuerySide:
        """Read `idf.json` ({token: weight}) from a model folder."""
        path = Path(folder) / IDF_FILE
        table = json.loads(path.read_text())
        if not isinstance(table, dict):
            raise ValueError(f"{path}: expected a JSON object {{token: weight}}")
        return cls(tokenizer, {str(k): float(v) for k, v in table.items()})

    def encode(
        self, texts: Sequence[str], max_length: int, batch_size: int = 0, progress: bool = False
    ) -> list[SparseVector]:
        """Tokenize and look up weights; tokens missing from the table or weighing <= 0 are dropped."""
        vectors = []
        for text in texts:
            ids = self.tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
            tokens = {str(t) for t in self.tokenizer.convert_ids_to_tokens(ids)} - self.special
            vectors.append(
                SparseVector.from_mapping(
                    {t: self.idf[t] for t in tokens if self.idf.get(t, 0.0) > 0.0}
                )
            )
        return vectors


class SpladeEncoder:
    """Loads a SPLADE model in any of the three shapes and encodes documents and queries."""

    def __init__(self, settings: ModelSettings, document: MLMSide, query: QuerySide) -> None:
        self.settings = settings
        self.document_side = document
        self.query_side = query

    @classmethod
    def load(
        cls,
        model: str = "splade-tiny",
        query_model: str | None = None,
        device: str | None = None,
        dtype: str = "float32",
        doc_max_length: int | None = None,
        query_max_length: int | None = None,
    ) -> SpladeEncoder:
        """Load by alias, local path or Hugging Face name; the shape comes from the model folder."""
        settings = read_settings(model, query_model, doc_max_length, query_max_length)
        torch_device = pick_device(device)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        document = MLMSide(settings.document, torch_device, DTYPES[dtype])
        query: QuerySide
        if settings.shape == "pair":
            assert settings.query is not None
            query = MLMSide(settings.query, torch_device, DTYPES[dtype])
        elif settings.shape == "inference-free":
            query = IdfQuerySide.from_folder(settings.document, document.tokenizer)
        else:
            query = document
        return cls(settings, document, query)

    def encode_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        """SPLADE vectors for documents, truncated to `doc_max_length` tokens."""
        return self.document_side.encode(texts, self.settings.doc_max_length, batch_size, progress)

    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        """SPLADE vectors for queries, truncated to `query_max_length` tokens."""
        return self.query_side.encode(texts, self.settings.query_max_length, batch_size, progress)

    def encode_query(self, text: str) -> SparseVector:
        """One query's vector."""
        return self.encode_queries([text])[0]
