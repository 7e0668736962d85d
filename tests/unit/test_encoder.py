"""The encoder on the real bundled model and on locally built stand-ins for hub models."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from splade_es.encoder import MLMSide, SpladeEncoder
from splade_es.models import ModelNotFoundError, ModelSettings, resolve, write_settings
from splade_es.pooling import naive_splade_pool, own_token_pool, splade_pool

pytestmark = pytest.mark.slow

TEXTS = [
    "symptoms of diabetes in children",
    "Vitamin D deficiency is associated with an increased risk of cancer in older adults.",
    "a",
]


def test_splade_tiny_weights_are_positive_sparse_and_deterministic(splade_tiny) -> None:
    first = splade_tiny.encode_documents(TEXTS)
    again = splade_tiny.encode_documents(list(reversed(TEXTS)))[::-1]
    vocab = len(splade_tiny.document_side.id_to_token)
    for vector, repeat in zip(first, again, strict=True):
        assert 0 < len(vector) < vocab * 0.02
        assert all(w > 0 for _, w in vector.weights)
        assert vector.as_dict().keys() == repeat.as_dict().keys()
        for token, weight in vector.weights:
            assert repeat.as_dict()[token] == pytest.approx(weight, abs=1e-4)
        assert not {"[CLS]", "[SEP]", "[PAD]"} & set(vector.as_dict())


def test_query_expands_to_related_terms(splade_tiny) -> None:
    terms = splade_tiny.encode_query("symptoms of diabetes in children").as_dict()
    assert "child" in terms, "expansion: 'children' should activate 'child'"
    assert "diabetes" in terms and "symptoms" in terms


def test_chunked_pooling_equals_naive_pooling(splade_tiny) -> None:
    side = splade_tiny.document_side
    batch = side.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        chunked = splade_pool(side.model, batch["input_ids"], batch["attention_mask"])
        naive = naive_splade_pool(side.model, batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(chunked, naive)


def test_pooling_gradients_equal_naive_gradients(splade_tiny) -> None:
    """Training back-propagates through the same pooling: its gradients must be the naive ones."""
    import copy

    model = copy.deepcopy(splade_tiny.document_side.model).eval()
    batch = splade_tiny.document_side.tokenizer(TEXTS, padding=True, return_tensors="pt")
    grads = []
    for pool in (splade_pool, naive_splade_pool):
        model.zero_grad()
        pool(model, batch["input_ids"], batch["attention_mask"]).pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-4, atol=1e-5)


def own_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab: int) -> torch.Tensor:
    present = torch.zeros(input_ids.shape[0], vocab)
    return present.scatter_reduce(1, input_ids, attention_mask.float(), reduce="amax")


def test_own_token_pooling_is_full_pooling_kept_to_each_texts_tokens(splade_tiny) -> None:
    """Values and gradients both: the max still runs over every position of the text."""
    import copy

    model = copy.deepcopy(splade_tiny.document_side.model).eval()
    batch = splade_tiny.document_side.tokenizer(TEXTS, padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    present = own_tokens(ids, mask, model.config.vocab_size)
    with torch.inference_mode():
        own = own_token_pool(model, ids, mask)
        full = naive_splade_pool(model, ids, mask)
    torch.testing.assert_close(own, full * present)
    assert set(torch.nonzero(own[2]).ravel().tolist()) <= set(ids[2][mask[2].bool()].tolist())
    grads = []
    for pool in (own_token_pool, lambda *a: naive_splade_pool(*a) * present):
        model.zero_grad()
        pool(model, ids, mask).pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-4, atol=1e-5)


def test_a_pair_without_query_expansion_keeps_queries_to_their_tokens(tmp_path: Path) -> None:
    """`query_expansion: false` in a pair folder: queries hold only their own tokens (with the
    full model's weights for them); documents still expand."""
    folder = tmp_path / "pair"
    for side in ("document", "query"):
        shutil.copytree(resolve("splade-tiny"), folder / side)
    settings = ModelSettings("pair", str(folder / "document"), str(folder / "query"))
    write_settings(folder, replace(settings, query_expansion=False))
    encoder = SpladeEncoder.load(str(folder), device="cpu")
    expanding = SpladeEncoder.load("splade-tiny", device="cpu")
    query = "symptoms of diabetes in children"
    own, full = encoder.encode_query(query).as_dict(), expanding.encode_query(query).as_dict()
    tokens = set(expanding.document_side.tokenizer.tokenize(query))
    assert set(full) - tokens  # the same model expands
    assert own.keys() == tokens & full.keys()
    for token, weight in own.items():
        assert weight == pytest.approx(full[token], abs=1e-5)
    # one query is read off its own tokens (no vocabulary row): as it is inside a padded batch,
    # special tokens dropped even where the model weighs them
    query_side = encoder.query_side
    assert isinstance(query_side, MLMSide)
    with torch.no_grad():
        query_side.model.get_output_embeddings().bias[query_side.tokenizer.cls_token_id] += 50.0
    alone = encoder.encode_query(query).as_dict()
    batched = encoder.encode_queries([query, "a b c d e f g"])[0].as_dict()
    assert alone.keys() == batched.keys() == own.keys()
    assert list(alone.values()) == pytest.approx(list(batched.values()), abs=1e-5)
    assert encoder.encode_documents(TEXTS) == expanding.encode_documents(TEXTS)


def test_batching_does_not_change_vectors(splade_tiny) -> None:
    batched = splade_tiny.encode_documents(TEXTS, batch_size=8)
    single = [splade_tiny.encode_documents([t], batch_size=1)[0] for t in TEXTS]
    for a, b in zip(batched, single, strict=True):
        assert a.as_dict().keys() == b.as_dict().keys()
        assert a.dot(a) == pytest.approx(b.dot(b), rel=1e-4)


def test_truncation_length_is_per_side(tmp_path: Path) -> None:
    encoder = SpladeEncoder.load("splade-tiny", device="cpu", doc_max_length=4, query_max_length=64)
    long_text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    short_doc = encoder.encode_documents([long_text])[0].as_dict()
    full_query = encoder.encode_query(long_text).as_dict()
    assert len(short_doc) < len(full_query)


def test_pair_shape_uses_the_query_model_for_queries(tiny_models: dict[str, Path]) -> None:
    pair = SpladeEncoder.load(
        str(tiny_models["doc"]), query_model=str(tiny_models["query"]), device="cpu"
    )
    assert pair.settings.shape == "pair"
    doc_only = SpladeEncoder.load(str(tiny_models["doc"]), device="cpu")
    query_only = SpladeEncoder.load(str(tiny_models["query"]), device="cpu")
    text = TEXTS[1]
    assert pair.encode_query(text) == query_only.encode_query(text)
    assert pair.encode_documents([text])[0] == doc_only.encode_documents([text])[0]
    assert pair.encode_query(text) != pair.encode_documents([text])[0]


def test_pair_shape_from_settings_file(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "pair"
    shutil.copytree(tiny_models["doc"], folder / "document")
    shutil.copytree(tiny_models["query"], folder / "query")
    write_settings(
        folder,
        ModelSettings(
            "pair",
            str(folder / "document"),
            str(folder / "query"),
            doc_max_length=100,
            query_max_length=20,
        ),
    )
    encoder = SpladeEncoder.load(str(folder), device="cpu")
    assert (encoder.settings.shape, encoder.settings.query_max_length) == ("pair", 20)
    assert encoder.query_side is not encoder.document_side


def test_inference_free_queries_are_idf_lookups(tiny_models: dict[str, Path]) -> None:
    encoder = SpladeEncoder.load(str(tiny_models["inference-free"]), device="cpu")
    assert encoder.settings.shape == "inference-free"
    query = encoder.encode_query("Vitamin D and cancer")
    assert query.as_dict() == {"vitamin": 3.5, "cancer": 2.0, "d": 1.25}
    assert len(encoder.encode_documents(["Vitamin D and cancers"])[0]) > 0


def test_hub_name_loads_from_a_fake_offline_hub_cache(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fake hub (no hub here): a model laid out as the HF cache stores downloads, loaded by name."""
    repo = tmp_path / "hub" / "models--naver--fake-splade"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_models["doc"], snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    from huggingface_hub import constants

    # huggingface_hub reads these env vars at import time, so set its constants directly
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve("naver/fake-splade") == "naver/fake-splade"
    encoder = SpladeEncoder.load("naver/fake-splade", device="cpu")
    local = SpladeEncoder.load(str(tiny_models["doc"]), device="cpu")
    assert encoder.encode_query(TEXTS[0]) == local.encode_query(TEXTS[0])


def test_missing_local_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="float16 needs a GPU"):
        SpladeEncoder.load("splade-tiny", device="cpu", dtype="float16")


def test_settings_file_without_shape_defaults_to_shared(tiny_models: dict[str, Path]) -> None:
    assert not (tiny_models["doc"] / "splade_es.json").exists()
    assert SpladeEncoder.load(str(tiny_models["doc"]), device="cpu").settings.shape == "shared"
    assert os.path.isdir(resolve("splade-tiny"))


# GPU workers: device per worker, dtype, token-sized batches, out-of-memory splitting ----------


def test_token_batches_cap_texts_and_padded_tokens() -> None:
    from splade_es.encoder import token_batches

    lengths = [5, 40, 12, 40, 3, 25, 7, 30]
    batches = token_batches(lengths, batch_size=3, max_tokens=80)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) * max(lengths[i] for i in batch) <= 80
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(lengths, reverse=True)
    # one text longer than the budget still gets a batch of its own
    assert token_batches([500, 4], batch_size=8, max_tokens=100) == [[0], [1]]
    assert token_batches(lengths, batch_size=8) == [sorted(range(8), key=lambda i: -lengths[i])]


def _scifact_texts(scifact: Path, n: int) -> list[str]:
    from itertools import islice

    from splade_es.corpus import read_documents

    return [d.full_text for d in islice(read_documents(scifact / "corpus.jsonl"), n)]


def _same_vectors(got: list, want: list) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.as_dict().keys() == b.as_dict().keys()
        for token, weight in b.weights:
            assert a.as_dict()[token] == pytest.approx(weight, abs=1e-4)


def test_batches_sized_by_tokens_give_the_same_vectors(splade_tiny, scifact: Path) -> None:
    texts = _scifact_texts(scifact, 12)
    want = splade_tiny.encode_documents(texts, batch_size=12)
    encoder = SpladeEncoder.load("splade-tiny", device="cpu", max_tokens_per_batch=600)
    _same_vectors(encoder.encode_documents(texts, batch_size=12), want)


def test_out_of_memory_batches_are_split_and_retried_never_dropped(scifact: Path) -> None:
    """Fault injection around the real model: any forward over more than LIMIT tokens raises
    torch's out-of-memory error, as a GPU would."""
    from splade_es.encoder import OutOfMemory

    limit = 700
    texts = _scifact_texts(scifact, 16)
    encoder = SpladeEncoder.load("splade-tiny", device="cpu")
    want = encoder.encode_documents(texts, batch_size=16)
    refused: list[int] = []

    def too_big(module, args, kwargs):
        tokens = kwargs["input_ids"].numel()
        if tokens > limit:
            refused.append(tokens)
            raise OutOfMemory(f"injected: {tokens} tokens")

    model = encoder.document_side.model
    handle = model.register_forward_pre_hook(too_big, with_kwargs=True)
    try:
        got = encoder.encode_documents(texts, batch_size=16)
        assert refused, "the injected fault never fired: the test does not test splitting"
        _same_vectors(got, want)
        limit_learned = encoder.document_side.oom_token_limit
        assert limit_learned is not None and limit_learned < max(refused)
        # later calls start under the learned size: fewer refusals than the first time
        first = len(refused)
        refused.clear()
        _same_vectors(encoder.encode_documents(texts, batch_size=16), want)
        assert len(refused) < first
        # a single text that does not fit cannot be split: the error is raised, not swallowed
        limit = 5
        with pytest.raises(OutOfMemory):
            encoder.encode_documents(texts[:1], batch_size=16)
    finally:
        handle.remove()


def test_each_worker_takes_its_own_gpu_round_robin(monkeypatch: pytest.MonkeyPatch) -> None:
    from splade_es import encoder as enc

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.delenv("SPLADE_ES_WORKER_INDEX", raising=False)
    assert [enc.pick_device(None, index=i) for i in range(4)] == [
        torch.device(f"cuda:{n}") for n in (0, 1, 2, 0)
    ]
    monkeypatch.setenv("WORKER_ID", "worker_5")  # how Beam names SDK worker processes
    assert enc.worker_index() == 5 and enc.pick_device("cuda") == torch.device("cuda:2")
    monkeypatch.setenv("SPLADE_ES_WORKER_INDEX", "7")
    assert enc.pick_device() == torch.device("cuda:1")
    assert enc.pick_device("cuda:0") == torch.device("cuda:0")  # an explicit GPU is kept
    monkeypatch.setenv("SPLADE_ES_WORKER_INDEX", "x")
    with pytest.raises(ValueError, match="SPLADE_ES_WORKER_INDEX"):
        enc.worker_index()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("SPLADE_ES_WORKER_INDEX")
    assert enc.pick_device() == torch.device("cuda")


def test_auto_dtype_is_bfloat16_on_gpu_and_float32_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from splade_es.encoder import resolve_dtype

    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", torch.device("cuda:1")) == torch.bfloat16
    assert resolve_dtype("float32", torch.device("cuda")) == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("int4", torch.device("cpu"))


def test_importing_and_loading_leave_transformers_progress_bars_alone() -> None:
    """The encoder used to turn transformers' progress bars off process-wide at import."""
    import subprocess
    import sys

    code = (
        "import splade_es.encoder as e\n"
        "from transformers.utils import logging\n"
        "after_import = logging.is_progress_bar_enabled()\n"
        "e.SpladeEncoder.load('splade-tiny', device='cpu')\n"
        "print(after_import, logging.is_progress_bar_enabled())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split()[-2:] == ["True", "True"]


def test_a_length_beyond_the_models_positions_is_cut_to_them(tiny_models: dict[str, Path]) -> None:
    """The tiny model has 128 positions: asked for 256 tokens of a longer text, it encodes the
    first 128 (as when asked for 128) instead of failing in the position embeddings."""
    encoder = SpladeEncoder.load(str(tiny_models["doc"]), device="cpu", doc_max_length=256)
    text = " ".join(f"word{i} vitamin cells" for i in range(200))
    side = encoder.document_side
    assert side.max_tokens == 128
    assert side.encode([text], 256) == side.encode([text], 128)
    assert encoder.encode_documents([text]) == side.encode([text], 128)
