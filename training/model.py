"""The three model shapes as sentence-transformers `SparseEncoder`s, and their export.

- shared: one MLM encodes queries and documents.
- pair: a `Router` with separate query and document MLMs (efficient-SPLADE style).
- inference-free: a `Router` whose query route is a trainable per-token weight table
  (`SparseStaticEmbedding`, saved as `idf.json`) and whose document route is an MLM.

The MLM modules pool with `splade_es.pooling.splade_pool` (the function the encoder runs at
inference; `benchmarks/results/training/pooling.md` measures it against the library's
`SpladePooling`) and zero special tokens as the encoder does, so a trained model and its exported
folder give the same vectors. `export_model` writes the folder format `SpladeEncoder.load`,
`splade-es encode`, the Beam pipeline and `splade-es serve` read.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from sentence_transformers.base.modules import Router, Transformer
from sentence_transformers.sparse_encoder import SparseEncoder
from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling
from transformers import PreTrainedTokenizerBase

from splade_es.models import (
    IDF_FILE,
    ModelSettings,
    Shape,
    read_settings,
    resolve,
    write_settings,
)
from splade_es.pooling import pool_for

SHAPES: tuple[Shape, ...] = ("shared", "pair", "inference-free")
Pooling = Literal["fast", "library"]


def special_token_mask(tokenizer: PreTrainedTokenizerBase, vocab: int) -> torch.Tensor:
    """`[vocab]` of 1.0, with 0.0 at the tokenizer's special tokens (the encoder drops those)."""
    keep = torch.ones(vocab)
    keep[[i for i in set(tokenizer.all_special_ids) if i < vocab]] = 0.0
    return keep


class DocumentMemo(OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]]):
    """A frozen side's vectors by token ids, sparse (about 2 KB a document), least recently used
    dropped past `capacity` texts: a training set of millions of documents re-encodes the ones
    it has not seen for a while instead of holding every vector."""

    def __init__(self, capacity: int = 200_000) -> None:
        super().__init__()
        self.capacity = capacity

    def touch(self, key: bytes) -> bool:
        """Whether `key` is remembered; if so it is now the most recently used."""
        if key not in self:
            return False
        self.move_to_end(key)
        return True

    def trim(self) -> None:
        while len(self) > self.capacity:
            self.popitem(last=False)


class FastSpladeMLM(Transformer):
    """A fill-mask `Transformer` that pools SPLADE weights itself, without `[B, L, V]` logits."""

    def __init__(self, *args: Any, expand: bool = True, **kwargs: Any) -> None:
        kwargs["transformer_task"] = "fill-mask"
        super().__init__(*args, **kwargs)
        self.expand = expand
        """False: each text keeps its own tokens only (`own_token_pool`, a cheap query side)."""
        vocab = int(self.model.get_output_embeddings().out_features)
        tokenizer: Any = self.tokenizer
        self.register_buffer("keep", special_token_mask(tokenizer, vocab), persistent=False)
        self.memo: DocumentMemo | None = None
        """Set by `freeze_documents`: a frozen side's vectors, sparse, by the text's token ids."""

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        ids, mask = features["input_ids"], features["attention_mask"]
        if self.memo is None:
            features["sentence_embedding"] = self._weights(ids, mask)
        else:
            features["sentence_embedding"] = self._remembered(self.memo, ids, mask)
        return features

    def _weights(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = pool_for(self.expand)(self.model, ids, mask)
        return weights * self.keep.to(weights.device)

    def _remembered(
        self,
        memo: DocumentMemo,
        ids: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """A frozen side gives a text the same vector every step: each distinct text is encoded
        once (without autograd) and kept sparse, so training a query side against it pays for the
        document MLM once per document, not once per step."""
        keys = [row[m.bool()].cpu().numpy().tobytes() for row, m in zip(ids, mask, strict=True)]
        new = {key: i for i, key in enumerate(keys) if not memo.touch(key)}
        if new:
            rows = list(new.values())
            with torch.no_grad():
                weights = self._weights(ids[rows], mask[rows])
            for key, vector in zip(new, weights, strict=True):
                nonzero = torch.nonzero(vector).ravel()
                memo[key] = (nonzero, vector[nonzero])
        first = memo[keys[0]][1]
        out = torch.zeros(len(keys), self.get_embedding_dimension(), dtype=first.dtype)
        out = out.to(ids.device)
        for row, key in enumerate(keys):
            columns, values = memo[key]
            out[row, columns] = values
        memo.trim()  # after the batch: its own texts are never dropped before they are read
        return out

    def get_embedding_dimension(self) -> int:
        return int(self.keep.shape[0])


class QueryTokenWeights(SparseStaticEmbedding):
    """Inference-free query side: each distinct non-special query token weighs `relu(w[token])`.

    The relu and the special-token mask make it match `idf.json` as the encoder reads it (only
    positive weights are written, special tokens never are).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tokenizer: Any = self.tokenizer
        self.hf_tokenizer = tokenizer
        mask = special_token_mask(tokenizer, self.num_dimensions)
        self.register_buffer("keep", mask, persistent=False)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        ids, mask = features["input_ids"], features["attention_mask"]
        present = torch.zeros(ids.shape[0], self.num_dimensions, device=ids.device)
        present.scatter_(1, ids * mask.long(), mask.float())
        keep = self.keep.to(ids.device)
        features["sentence_embedding"] = present * keep * torch.relu(self.weight)
        return features

    def idf_table(self) -> dict[str, float]:
        """`{token: weight}` for positive, non-special entries (what `idf.json` holds)."""
        weights = (torch.relu(self.weight.detach().float()) * self.keep.cpu()).cpu()
        tokens = self.hf_tokenizer.convert_ids_to_tokens(list(range(len(weights))))
        return {
            str(tokens[i]): float(weights[i])
            for i in torch.nonzero(weights > 0).ravel().tolist()
            if math.isfinite(float(weights[i]))
        }


def corpus_idf(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> torch.Tensor:
    """Per-vocabulary-entry BM25 IDF `log(1 + (N - df + 0.5) / (df + 0.5))` (always > 0)."""
    df = torch.zeros(len(tokenizer))
    for start in range(0, len(texts), 512):
        ids = tokenizer(list(texts[start : start + 512]), truncation=True, max_length=512)
        for row in ids["input_ids"]:
            df[torch.tensor(sorted(set(row)), dtype=torch.long)] += 1
    n = float(len(texts))
    return torch.log1p((n - df + 0.5) / (df + 0.5))


def keep_first_layers(model: torch.nn.Module, layers: int) -> None:
    """Cut a transformer MLM to its first `layers` blocks, in place (its config says so too, so
    the exported folder loads as the smaller model). A small query encoder started this way keeps
    the base model's embeddings and vocabulary head: efficient SPLADE's cheap query side."""
    config: Any = getattr(model, "config", None)
    key = next((k for k in ("num_hidden_layers", "n_layers") if hasattr(config, k)), None)
    total = int(getattr(config, key)) if key else 0
    blocks = [
        m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == total > 0
    ]
    if key is None or len(blocks) != 1:
        raise ValueError(f"{type(model).__name__}: cannot find its one list of transformer layers")
    if not 1 <= layers <= total:
        raise ValueError(
            f"query_layers must be in 1..{total} (the model has {total}), got {layers}"
        )
    del blocks[0][layers:]
    setattr(config, key, layers)


def _mlm(
    location: str, pooling: Pooling, query_length: int, document_length: int, expand: bool = True
) -> list[Any]:
    lengths = {"query_length": query_length, "document_length": document_length}
    if pooling == "fast":
        return [FastSpladeMLM(location, expand=expand, **lengths)]
    if not expand:
        raise ValueError("a query side without expansion needs pooling 'fast'")
    return [
        Transformer(location, transformer_task="fill-mask", **lengths),
        SpladePooling(pooling_strategy="max"),
    ]


def _idf_weights(
    folder: str, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str] | None
) -> torch.Tensor:
    idf_path = Path(folder) / IDF_FILE
    if idf_path.is_file():  # an inference-free base: keep its table
        weights = torch.zeros(len(tokenizer))
        for token, value in json.loads(idf_path.read_text()).items():
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and 0 <= token_id < len(weights):
                weights[token_id] = float(value)
        return weights
    if texts:
        return corpus_idf(tokenizer, texts)
    return torch.ones(len(tokenizer))


def build_model(
    shape: Shape,
    base: str,
    query_base: str | None = None,
    idf_texts: Sequence[str] | None = None,
    pooling: Pooling = "fast",
    query_length: int = 64,
    document_length: int = 128,
    query_layers: int | None = None,
    query_expansion: bool = True,
) -> SparseEncoder:
    """A `SparseEncoder` of `shape` starting from a model the encoder could load (alias, folder).

    `base` may itself be any shape: a pair base keeps its two sides, an inference-free base keeps its
    `idf.json` as the initial query weights; otherwise inference-free query weights start at the
    corpus IDF of `idf_texts`. `query_layers` (pair) keeps only the first layers of the query MLM;
    `query_expansion=False` (pair) keeps each query to its own tokens.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    settings = read_settings(base)
    document = _mlm(settings.document, pooling, query_length, document_length)
    if shape == "shared":
        return SparseEncoder(modules=document, similarity_fn_name="dot")
    if shape == "pair":
        location = read_settings(query_base).document if query_base else settings.query
        query = _mlm(
            location or settings.document, pooling, query_length, document_length, query_expansion
        )
        if query_layers is not None:
            keep_first_layers(query[0].model, query_layers)
        router = Router.for_query_document(query_modules=query, document_modules=document)
        return SparseEncoder(modules=[router], similarity_fn_name="dot")
    tokenizer = document[0].tokenizer
    weights = _idf_weights(settings.document, tokenizer, idf_texts)
    table = QueryTokenWeights(tokenizer=tokenizer, weight=weights)
    router = Router.for_query_document(query_modules=[table], document_modules=document)
    return SparseEncoder(modules=[router], similarity_fn_name="dot")


def model_shape(model: SparseEncoder) -> Shape:
    """Which of the three shapes a `SparseEncoder` built by `build_model` has."""
    first: Any = model[0]
    if not isinstance(first, Router):
        return "shared"
    routes: Any = first.sub_modules
    query = routes["query"][0]
    return "inference-free" if isinstance(query, SparseStaticEmbedding) else "pair"


def _side(model: SparseEncoder, route: str) -> Any:
    first: Any = model[0]
    if not isinstance(first, Router):
        return first
    routes: Any = first.sub_modules
    return routes[route][0]


def freeze_documents(model: SparseEncoder) -> None:
    """Keep the document MLM exactly as loaded: no gradient, no dropout (the trainer puts every
    module in train mode each step, so dropout is switched off at the modules). Only the query
    side learns, against the very vectors an index built with the base model already holds. With
    fast pooling the side also remembers each document's vector (`FastSpladeMLM.memo`): the same
    vector every step, computed once."""
    if model_shape(model) == "shared":
        raise ValueError("a shared model has one MLM for both sides: it cannot freeze one")
    side = _side(model, "document")
    document = side.model
    for parameter in document.parameters():
        parameter.requires_grad_(False)
    for module in document.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    if isinstance(side, FastSpladeMLM):
        side.memo = DocumentMemo()


def query_weights_parameter(model: SparseEncoder) -> str | None:
    """Name of the inference-free query table's parameter (it takes its own learning rate)."""
    if model_shape(model) != "inference-free":
        return None
    table = _side(model, "query")
    return next(name for name, param in model.named_parameters() if param is table.weight)


def _save_mlm(module: Any, folder: Path) -> None:
    module.model.save_pretrained(folder)
    module.tokenizer.save_pretrained(folder)


def export_model(
    model: SparseEncoder,
    folder: Path,
    doc_max_length: int,
    query_max_length: int,
    documents_of: str | None = None,
) -> Path:
    """Write the folder `SpladeEncoder.load(folder)` reads: weights, tokenizer, `splade_es.json`
    (and `idf.json` for inference-free, `document/` + `query/` for pair). `documents_of`: the
    model whose document side this one kept unchanged (`ModelSettings.documents_of`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("document", "query", IDF_FILE):
        target = folder / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()
    shape = model_shape(model)
    document = _side(model, "document")
    if shape == "pair":
        _save_mlm(document, folder / "document")
        _save_mlm(_side(model, "query"), folder / "query")
        settings = ModelSettings(
            "pair",
            str(folder / "document"),
            str(folder / "query"),
            doc_max_length,
            query_max_length,
            query_expansion=getattr(_side(model, "query"), "expand", True),
            documents_of=documents_of,
        )
    else:
        _save_mlm(document, folder)
        if shape == "inference-free":
            table = _side(model, "query").idf_table()
            (folder / IDF_FILE).write_text(json.dumps(table, ensure_ascii=False))
        settings = ModelSettings(
            shape, str(folder), None, doc_max_length, query_max_length, documents_of=documents_of
        )
    write_settings(folder, settings)
    return folder


def merge_weights(module: torch.nn.Module, base: str, alpha: float) -> None:
    """Set `module`'s weights to `alpha * its own + (1 - alpha) * base's` (WiSE-FT, Wortsman et
    al. 2022): a fine-tuned model averaged with the one it started from keeps much of its
    in-domain gain and gives back much of what tuning lost elsewhere, at no cost at query time.
    `module` is a fine-tuned MLM; `base` a folder, alias or hub name of the same architecture."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"merge weight {alpha} is outside 0..1")
    if alpha != 1.0:
        _toward(module, base, alpha)


def _toward(module: torch.nn.Module, base: str, factor: float) -> None:
    """`module`'s weights set to `factor * its own + (1 - factor) * base's`: any point on the line
    through the two (a factor above 1 lies beyond `module`, away from `base`)."""
    from transformers import AutoModelForMaskedLM

    location = read_settings(base).document  # an alias, a folder, a pair's document side
    start = dict(AutoModelForMaskedLM.from_pretrained(location).named_parameters())
    end = dict(module.named_parameters())  # tied weights once, so each is merged once
    if start.keys() != end.keys() or any(start[k].shape != end[k].shape for k in end):
        raise ValueError(f"{base} is not the architecture of the model trained from it")
    with torch.no_grad():
        for name, weight in end.items():
            weight.mul_(factor).add_(start[name].to(weight.dtype), alpha=1 - factor)


def merge_with_base(model: SparseEncoder, base: str, alpha: float) -> None:
    """`merge_weights` on a trained model's document MLM in memory, before it is exported.

    Every shape's document MLM starts from `--base-model`, so it can be merged with it. The query
    side (pair: its own MLM, maybe cut or from `--query-base-model`; inference-free: the table)
    stays as trained: it may have no base of its architecture, and its sparsity is what the
    efficient shapes are trained for."""
    merge_weights(_side(model, "document").model, base, alpha)


def interpolate_weights(
    base: str, tuned: Path, alpha: float, out: Path, exported: float = 1.0
) -> Path:
    """`merge_weights` on an exported folder's document MLM (the query side kept, as
    `merge_with_base`): `out` (may be `tuned` itself) gets the folder's files with `alpha` of the
    trained weights, loadable wherever `--model` is.

    `exported`: the share of trained weights the folder already holds (its `merge_weight`). Such
    a folder is `m * T + (1 - m) * B`, a point on the line from the base B through the trained T,
    so `alpha * T + (1 - alpha) * B` is the factor `alpha / m` along it, beyond the folder when
    `alpha > m`: the trained weights' share is restored without the unmerged T on disk."""
    from transformers import AutoModelForMaskedLM

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"merge weight {alpha} is outside 0..1")
    if not 0.0 < exported <= 1.0:
        raise ValueError(f"exported merge weight {exported} is outside (0, 1]")
    tuned, out = Path(resolve(str(tuned))), Path(out)
    document = Path(read_settings(str(tuned)).document)  # pair: tuned/document
    model = AutoModelForMaskedLM.from_pretrained(str(document))
    if alpha != exported:
        _toward(model, base, alpha / exported)
    if out.resolve() != tuned:  # the folder's files (tokenizer, splade_es.json, ...) are relative
        shutil.copytree(
            tuned, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoints")
        )
    model.save_pretrained(out / document.relative_to(tuned))
    return out
