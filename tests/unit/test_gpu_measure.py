"""The GPU benchmark's arithmetic: FLOPs per document from a config, the card's peak by name, and
documents filled to an exact token length."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from splade_es.benchmarks.gpu_measure import filled_texts, flops_per_doc, peak_tflops
from splade_es.models import bundled_model_path


def test_flops_count_every_linear_weight_of_the_real_model_plus_attention() -> None:
    config = BertConfig(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
    )
    model = BertForMaskedLM(config)
    # counted from the module tree, independently of the formula: every Linear's weight matrix
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    tokens = 50
    attention = 4 * config.num_hidden_layers * tokens * tokens * config.hidden_size
    assert flops_per_doc(config, tokens) == pytest.approx(2 * weights * tokens + attention)


def test_flops_need_a_bert_style_config() -> None:
    assert flops_per_doc(object(), 10) is None


def test_peak_is_known_for_h100_and_h200_and_can_be_given() -> None:
    assert peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert peak_tflops("NVIDIA H200", None) == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB", None) is None
    assert peak_tflops("NVIDIA A100-SXM4-80GB", 312.0) == 312.0


def test_filled_texts_reach_the_length_so_truncation_gives_exactly_it() -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    corpus = ["short text", "another short one", "a third"]
    texts = filled_texts(corpus, tokenizer, 16, 4)
    assert len(texts) == 4
    assert all(len(tokenizer(t)["input_ids"]) >= 16 for t in texts)
    assert all(len(tokenizer(t, truncation=True, max_length=16)["input_ids"]) == 16 for t in texts)
