"""The one-query path: BERT's flat forward equals HF's, the backend tokenizer gives HF's ids, and a
query encoded alone gets the vector it gets inside a padded batch."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM

from splade_es import pooling
from splade_es.encoder import quantize_int8
from splade_es.lean_bert import lean_forward


def small_bert(layers: int = 2, seed: int = 0) -> BertForMaskedLM:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    return BertForMaskedLM(config).eval()


def headless_hidden(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    headless, _ = pooling._headless(model)
    return headless(input_ids=ids[None]).logits[0]


@pytest.mark.parametrize("layers", [1, 3])
def test_the_flat_forward_equals_hfs_headless_model(layers: int) -> None:
    model = small_bert(layers)
    lean = lean_forward(model)
    assert lean is not None
    ids = torch.tensor([2, 17, 5, 44, 9, 3])
    with torch.inference_mode():
        torch.testing.assert_close(lean(ids), headless_hidden(model, ids))


def test_the_flat_forward_runs_quantized_layers_as_hf_does() -> None:
    model = quantize_int8(small_bert())
    lean = lean_forward(model)
    assert lean is not None
    ids = torch.tensor([2, 8, 30, 3])
    with torch.inference_mode():
        torch.testing.assert_close(lean(ids), headless_hidden(model, ids))


def test_only_bert_masked_lms_in_eval_mode_get_the_flat_forward() -> None:
    assert lean_forward(small_bert().train()) is None
    distil = DistilBertForMaskedLM(
        DistilBertConfig(vocab_size=60, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    )
    assert lean_forward(distil.eval()) is None


def test_one_query_pools_as_it_does_inside_a_padded_batch(splade_tiny) -> None:
    side = splade_tiny.query_side
    texts = ["what causes insulin resistance in muscle cells", "a b"]
    alone = side.weights(texts[:1], 64)
    assert side._one_text_ids(texts[:1], 64) is not None  # the one-text path ran
    batched = side.weights(texts, 64)
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)
    assert (alone[0] > 0).sum() > 10


def test_the_backend_gives_hfs_ids_and_leaves_long_texts_to_hf(splade_tiny, scifact) -> None:
    from splade_es.training.data import load_beir

    side = splade_tiny.query_side
    queries = list(load_beir(scifact, "test").queries.values())[:200]
    for text in queries:
        ids = side._one_text_ids([text], 512)
        assert ids is not None
        assert ids[0].tolist() == side._tokenize([text], 512)["input_ids"][0], text
    assert side._one_text_ids([queries[0]], 4) is None  # would be cut: HF truncates it
    assert side._one_text_ids(queries[:2], 512) is None


def test_a_model_with_forward_hooks_runs_through_hf() -> None:
    model = small_bert()
    assert lean_forward(model) is not None  # the modules are listed once: hooks are read live
    handle = model.bert.encoder.register_forward_pre_hook(lambda module, args: None)
    assert lean_forward(model) is None
    handle.remove()
    assert lean_forward(model) is not None


def test_a_global_forward_hook_runs_through_hf() -> None:
    """The flat forward calls modules' `forward` directly, which global hooks would not see."""
    from torch.nn.modules.module import register_module_forward_hook

    model = small_bert()
    handle = register_module_forward_hook(lambda module, args, output: None)
    try:
        assert lean_forward(model) is None
    finally:
        handle.remove()
    assert lean_forward(model) is not None


def test_the_flat_forward_reads_weights_changed_in_place_after_its_first_call() -> None:
    """What the forward calls is looked up once per model; the weights it reads stay the model's
    own, so loading new ones (a checkpoint, a training step) changes its output as it does HF's."""
    model, trained = small_bert(seed=0), small_bert(seed=1)
    ids = torch.tensor([2, 17, 5, 44, 9, 3])
    with torch.inference_mode():
        before = lean_forward(model)(ids)  # type: ignore[misc]
    model.load_state_dict(trained.state_dict())
    model.double().float()  # .to() swaps each parameter's storage, not the parameter
    lean = lean_forward(model)
    assert lean is not None
    with torch.inference_mode():
        torch.testing.assert_close(lean(ids), headless_hidden(trained, ids))
        assert not torch.allclose(lean(ids), before)
