"""The scale benchmark reuses an index whose count is right, so the index name must say which
model filled it: another model's run never reads the default model's index."""

from __future__ import annotations

from splade_es.benchmarks.latency_scale import index_prefix, main_index
from splade_es.models import DEFAULT_MODEL


def test_the_default_model_keeps_the_committed_names() -> None:
    assert main_index(5183, index_prefix(True, DEFAULT_MODEL)) == "wiki-5183"
    assert main_index(100, index_prefix(False, DEFAULT_MODEL)) == "scale-100"


def test_another_model_gets_its_own_index() -> None:
    name = main_index(5183, index_prefix(True, "benchmarks/runs/Pair Q1+noexp-0.5/"))
    assert name == "wiki-pair-q1-noexp-0.5-5183"
    assert main_index(5183, index_prefix(True, "/x/other")) != name
