"""SPLADE encoder: text -> SparseVector, for documents and queries, in the three model shapes.

- shared: one MLM model encodes both sides (naver SPLADE++, SPLADE v3, splade-tiny).
- pair: separate document and query MLM models (naver efficient-splade `*-doc` / `*-query`).
- inference-free: an MLM document model; queries are the tokenizer plus a per-token weight table
  (`idf.json`, as OpenSearch's doc-only models ship), so no model runs at query time.

Batches are length-sorted and may be capped by padded tokens (`max_tokens_per_batch`), so a batch of
short texts can be large and one of long texts small. A batch that runs out of accelerator memory
is split in half and retried (down to single texts, which then raise), never dropped, and later
batches stay under the size that failed. On a machine with several GPUs each worker process takes
its own, round-robin by worker index (Beam's `WORKER_ID`); GPUs run bfloat16 by default.

On CPU, `dtype` picks the fast path (benchmarks/results/encoder_speed.md): `bfloat16` weights run
the matrix products on AVX-512 BF16 / AMX units, about 2-3x float32; `int8` quantizes the
transformer's Linear layers dynamically (the vocabulary projection stays float32, as the pooling
projects token blocks through it). `auto` stays float32 on CPU: bfloat16 vectors move by a few
hundredths with the texts that share a batch, float32 ones are reproducible; loading with `auto` on
a CPU with bfloat16 matrix instructions logs a hint to pass `bfloat16`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from splade_es.cpu import this_cpu_has_fast_bf16
from splade_es.models import DEFAULT_MODEL, IDF_FILE, ModelSettings, read_settings
from splade_es.pooling import own_token_terms, pool_for
from splade_es.sparse import SparseVector

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
AUTO_DTYPE = "auto"
"""bfloat16 on a GPU that supports it, else float32."""
INT8 = "int8"
"""Float32 weights whose transformer Linear layers are then quantized to int8 (CPU only)."""
DTYPE_NAMES = (AUTO_DTYPE, *DTYPES, INT8)

OutOfMemory: type[Exception] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

WORKER_INDEX_ENV = "SPLADE_ES_WORKER_INDEX"


def worker_index() -> int:
    """This process's worker number: `SPLADE_ES_WORKER_INDEX`, else the trailing number of Beam's
    `WORKER_ID` (set in every SDK worker process: `1`, `worker_3`, ...), else 0."""
    explicit = os.environ.get(WORKER_INDEX_ENV)
    if explicit is not None:
        try:
            return int(explicit)
        except ValueError:
            raise ValueError(f"{WORKER_INDEX_ENV}={explicit!r} is not an integer") from None
    match = re.search(r"(\d+)$", os.environ.get("WORKER_ID", ""))
    return int(match.group(1)) if match else 0


def pick_device(device: str | None = None, index: int | None = None) -> torch.device:
    """The requested device, else CUDA, then Apple MPS, then CPU.

    A CUDA device without a number (`None` or `"cuda"`) is `cuda:{index % visible GPUs}`, `index`
    defaulting to :func:`worker_index`, so worker processes spread over the GPUs.
    """
    if device and device != "cuda":
        return torch.device(device)
    if device == "cuda" or torch.cuda.is_available():
        count = torch.cuda.device_count()
        if count > 1:
            return torch.device(f"cuda:{(worker_index() if index is None else index) % count}")
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The weights' dtype for a dtype name (`auto`, `int8`: float32 weights, quantized later)."""
    if dtype == AUTO_DTYPE:
        on_gpu = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if on_gpu else torch.float32
    if dtype == INT8:
        if device.type != "cpu":
            raise ValueError(f"dtype int8 runs on CPU only, not on {device}")
        return torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPE_NAMES)}, got {dtype!r}")
    return DTYPES[dtype]


def quantize_int8(model: PreTrainedModel) -> torch.nn.Module:
    """`model` with every Linear layer but the vocabulary projection quantized to int8 (dynamic:
    activations are quantized per batch). The projection stays a float Linear for the pooling."""
    from torch.ao.quantization import quantize_dynamic

    projection = model.get_output_embeddings()
    layers = {
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not projection
    }
    with warnings.catch_warnings():  # torch.ao's eager quantization warns it moves to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, layers, dtype=torch.qint8)


@contextmanager
def _quiet_hub_progress() -> Iterator[None]:
    """Hide transformers' download/loading bars while a model loads, restoring the setting."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def token_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int | None = None
) -> list[list[int]]:
    """Indices of texts, longest first, cut into batches of at most `batch_size` texts and, when
    `max_tokens` is set, at most `max_tokens` padded tokens (texts x longest length)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        full = len(current) >= batch_size or (
            max_tokens is not None and (len(current) + 1) * longest > max_tokens
        )
        if current and full:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class QuerySide(Protocol):
    """Anything that turns query texts into sparse vectors."""

    def encode(
        self, texts: Sequence[str], max_length: int, batch_size: int, progress: bool = False
    ) -> list[SparseVector]: ...


class MLMSide:
    """One masked-LM model and its tokenizer, encoding texts into SPLADE vectors."""

    def __init__(
        self,
        location: str,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        int8: bool = False,
        expand: bool = True,
    ) -> None:
        if dtype == torch.float16 and device.type == "cpu":
            raise ValueError("float16 needs a GPU; use bfloat16 or float32 on CPU")
        self.location = location
        self.device = device
        self.expand = expand
        self.pool = pool_for(expand)
        with _quiet_hub_progress():
            self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(location)
            model = AutoModelForMaskedLM.from_pretrained(location, dtype=dtype)
        self.model = model.to(device).eval()
        if int8:
            self.model = quantize_int8(self.model)
        self.oom_token_limit: int | None = None
        """Padded tokens per batch known to fit, learned from out-of-memory splits."""
        limits = [getattr(self.model.config, "max_position_embeddings", None)]
        limits.append(self.tokenizer.model_max_length)  # RoBERTa: 512 of 514 positions
        self.max_tokens = min(
            (n for n in limits if isinstance(n, int) and 0 < n < 1_000_000), default=1_000_000
        )
        """The longest input the model takes: a longer `max_length` is cut to it, not sent to
        crash in the position embeddings (a 128-position model asked for 256 tokens)."""
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        self.id_to_token: list[str] = [str(t) for t in vocab]
        self.special_ids = torch.tensor(
            sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long
        )
        self.special_set = frozenset(self.special_ids.tolist())
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        self.one_text: Any = None
        """A private copy of the fast tokenizer's backend, without padding or truncation: one text
        tokenized by it costs 0.07 ms against 0.25 through the HF call (a query's budget is 1)."""
        if backend is not None:
            self.one_text = type(backend).from_str(backend.to_str())
            self.one_text.no_padding()
            self.one_text.no_truncation()

    def weights(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """SPLADE weights `[len(texts), vocab]` on CPU, special tokens zeroed."""
        ids = self._one_text_ids(texts, max_length)
        if ids is None:
            batch = self._tokenize(texts, max_length, padding=True, return_tensors="pt")
            ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        else:
            mask = torch.ones_like(ids)
        with torch.inference_mode():
            weights = self.pool(self.model, ids, mask).cpu()
            weights[:, self.special_ids[self.special_ids < weights.shape[1]]] = 0.0
        return weights

    def weights_splitting(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """:meth:`weights`, but a batch that runs out of memory is halved and retried (down to
        one text, whose failure is raised), and later batches are kept under the failed size."""
        try:
            return self.weights(texts, max_length)
        except OutOfMemory:
            if len(texts) <= 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            padded = len(texts) * self._longest(texts, max_length)
            limit = max(1, padded // 2)
            self.oom_token_limit = min(self.oom_token_limit or limit, limit)
            log.warning(
                "out of memory on %d texts (%d padded tokens): splitting", len(texts), padded
            )
            half = len(texts) // 2
            return torch.cat(
                [
                    self.weights_splitting(texts[:half], max_length),
                    self.weights_splitting(texts[half:], max_length),
                ]
            )

    def _one_text_ids(self, texts: Sequence[str], max_length: int) -> torch.Tensor | None:
        """`[1, length]` token ids of a single text from the backend directly, or None (several
        texts, no fast tokenizer, or a text long enough to be cut: the HF call handles those)."""
        if len(texts) != 1 or self.one_text is None:
            return None
        ids = self.one_text.encode(texts[0]).ids
        if len(ids) > min(max_length, self.max_tokens):
            return None
        return torch.tensor([ids], device=self.device)

    def _own_tokens_vector(self, text: str, max_length: int) -> SparseVector | None:
        """One text on a side without expansion, read off its own tokens' weights with no
        `[vocab]` row built (`own_token_terms`); None where `weights` must run instead (an
        expanding side, a text long enough to be cut, no fast tokenizer)."""
        ids = None if self.expand else self._one_text_ids([text], max_length)
        if ids is None:
            return None
        with torch.inference_mode():
            terms, weights = own_token_terms(self.model, ids[0])
        pairs = zip(terms.tolist(), weights.tolist(), strict=True)
        return SparseVector.from_pairs(
            (self.id_to_token[t], w) for t, w in pairs if w > 0.0 and t not in self.special_set
        )

    def _longest(self, texts: Sequence[str], max_length: int) -> int:
        return max(len(i) for i in self._tokenize(texts, max_length)["input_ids"])

    def _tokenize(self, texts: Sequence[str], max_length: int, **options: Any) -> Any:
        """The tokenizer on `texts`, truncated to `max_length` or the model's `max_tokens`."""
        return self.tokenizer(
            list(texts), truncation=True, max_length=min(max_length, self.max_tokens), **options
        )

    def to_vectors(self, weights: torch.Tensor) -> list[SparseVector]:
        """Rows of a `[n, vocab]` weight matrix as SparseVectors (nonzero entries only)."""
        rows, cols = weights.nonzero(as_tuple=True)
        values = weights[rows, cols].tolist()
        per_row: list[list[tuple[str, float]]] = [[] for _ in range(weights.shape[0])]
        for r, c, v in zip(rows.tolist(), cols.tolist(), values, strict=True):
            per_row[r].append((self.id_to_token[c], v))
        return [SparseVector.from_pairs(pairs) for pairs in per_row]

    def encode(
        self,
        texts: Sequence[str],
        max_length: int,
        batch_size: int = 32,
        progress: bool = False,
        max_tokens_per_batch: int | None = None,
    ) -> list[SparseVector]:
        """Encode in length-sorted batches (less padding), returning vectors in input order.

        Batches hold at most `batch_size` texts and `max_tokens_per_batch` padded tokens (and
        stay under any size that ran out of memory before)."""
        if len(texts) == 1:  # one query: no batches to plan, so no second tokenizer pass
            vector = self._own_tokens_vector(texts[0], max_length)
            if vector is not None:
                return [vector]
            batches = [[0]]
        else:
            lengths = [len(ids) for ids in self._tokenize(texts, max_length)["input_ids"]]
            limits = [n for n in (max_tokens_per_batch, self.oom_token_limit) if n is not None]
            batches = token_batches(lengths, batch_size, min(limits) if limits else None)
        out: list[SparseVector | None] = [None] * len(texts)
        # no bar object at all without a bar: a disabled tqdm still costs 0.04 ms, a query's 4%
        bar = tqdm(total=len(texts), unit="text") if progress else None
        for idx in batches:
            weights = self.weights_splitting([texts[i] for i in idx], max_length)
            vectors = self.to_vectors(weights)
            for i, vector in zip(idx, vectors, strict=True):
                out[i] = vector
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
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


@dataclass(frozen=True)
class EncoderSpec:
    """What to load, as one picklable value: everything `SpladeEncoder.load` takes. The CLI
    builds it from its options, Beam workers load from it (a handler carries the spec, not the
    model), so "which encoder" is said once however the run is launched."""

    model: str = DEFAULT_MODEL
    query_model: str | None = None
    device: str | None = None
    dtype: str = AUTO_DTYPE
    doc_max_length: int | None = None
    query_max_length: int | None = None
    max_tokens_per_batch: int | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> EncoderSpec:
        """From option values (the ENCODER group's names; missing or None: the default)."""
        given = {f.name: values[f.name] for f in fields(cls) if values.get(f.name) is not None}
        return cls(**given)

    def load(self) -> SpladeEncoder:
        return SpladeEncoder.load(**asdict(self))


class SpladeEncoder:
    """Loads a SPLADE model in any of the three shapes and encodes documents and queries."""

    def __init__(
        self,
        settings: ModelSettings,
        document: MLMSide,
        query: QuerySide,
        max_tokens_per_batch: int | None = None,
    ) -> None:
        self.settings = settings
        self.document_side = document
        self.query_side = query
        self.max_tokens_per_batch = max_tokens_per_batch

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        query_model: str | None = None,
        device: str | None = None,
        dtype: str = AUTO_DTYPE,
        doc_max_length: int | None = None,
        query_max_length: int | None = None,
        max_tokens_per_batch: int | None = None,
    ) -> SpladeEncoder:
        """Load by alias, local path or Hugging Face name; the shape comes from the model folder.

        `device=None` picks the best device (this worker's GPU when there are several);
        `dtype="auto"` is bfloat16 on a GPU, float32 elsewhere; `dtype="int8"` quantizes the
        Linear layers (CPU)."""
        settings = read_settings(model, query_model, doc_max_length, query_max_length)
        torch_device = pick_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        if dtype == AUTO_DTYPE and torch_device.type == "cpu" and this_cpu_has_fast_bf16():
            log.info("this CPU multiplies bfloat16 fast: --dtype bfloat16 encodes 2-3x faster")
        if max_tokens_per_batch is not None and max_tokens_per_batch < 1:
            raise ValueError(f"max_tokens_per_batch must be >= 1, got {max_tokens_per_batch}")
        int8 = dtype == INT8
        document = MLMSide(settings.document, torch_device, torch_dtype, int8)
        query: QuerySide
        if settings.shape == "pair" and settings.query is not None:
            expand = settings.query_expansion
            query = MLMSide(settings.query, torch_device, torch_dtype, int8, expand)
        elif settings.shape == "inference-free":
            query = IdfQuerySide.from_folder(settings.document, document.tokenizer)
        else:
            query = document
        return cls(settings, document, query, max_tokens_per_batch)

    def encode_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        """SPLADE vectors for documents, truncated to `doc_max_length` tokens."""
        return self.document_side.encode(
            texts, self.settings.doc_max_length, batch_size, progress, self.max_tokens_per_batch
        )

    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> list[SparseVector]:
        """SPLADE vectors for queries, truncated to `query_max_length` tokens."""
        return self.query_side.encode(texts, self.settings.query_max_length, batch_size, progress)

    def encode_query(self, text: str) -> SparseVector:
        """One query's vector."""
        return self.encode_queries([text])[0]
