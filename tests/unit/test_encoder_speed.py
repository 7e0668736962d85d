"""CPU fast paths of the encoder (bfloat16, int8), their option, and the encoder_speed benchmark."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from splade_es.cpu import cpu_has_fast_bf16
from splade_es.encoder import SpladeEncoder, resolve_dtype
from splade_es.options import ENCODER, add_argparse, click_options
from splade_es.sparse import SparseVector

TEXTS = [
    "symptoms of diabetes in children",
    "Vitamin D deficiency is associated with an increased risk of cancer in older adults.",
    "a",
    "Microglia are the resident immune cells of the brain and respond to injury within minutes.",
    "Aspirin lowers the risk of colorectal cancer in long-term randomized trials.",
]


def test_bad_dtype_is_one_line_naming_the_option_in_click_and_argparse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @click.command()
    @click_options(ENCODER)
    def command(**values: object) -> None:
        click.echo(values["dtype"])

    runner = CliRunner()
    good = runner.invoke(command, ["--dtype", "int8"])
    assert good.exit_code == 0 and good.output.strip() == "int8"
    bad = runner.invoke(command, ["--dtype", "int4"])
    assert bad.exit_code == 2
    assert "--dtype" in bad.output and "'int4' is not one of" in bad.output
    assert "Traceback" not in bad.output

    parser = argparse.ArgumentParser()
    add_argparse(parser, ENCODER)
    assert parser.parse_args(["--dtype", "bfloat16"]).dtype == "bfloat16"
    with pytest.raises(SystemExit):
        parser.parse_args(["--dtype", "int4"])
    assert "--dtype" in capsys.readouterr().err


def test_resolve_dtype_names_the_choices_and_keeps_int8_on_cpu() -> None:
    with pytest.raises(ValueError, match=r"dtype must be one of .*'int8'.*got 'int4'"):
        resolve_dtype("int4", torch.device("cpu"))
    with pytest.raises(ValueError, match="int8 runs on CPU only"):
        resolve_dtype("int8", torch.device("cuda"))
    assert resolve_dtype("int8", torch.device("cpu")) == torch.float32  # quantized after loading


def test_bf16_detection_reads_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_fast_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 amx_bf16 amx_tile\n")
    assert cpu_has_fast_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert not cpu_has_fast_bf16(cpuinfo)
    assert not cpu_has_fast_bf16(tmp_path / "missing")


def test_the_flags_alone_do_not_make_bfloat16_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A VM may report AVX-512 BF16 on a host where bfloat16 is no faster: the flags are checked
    first (no timing without them), then one timing decides."""
    import splade_es.cpu as cpu

    ratio = cpu.bf16_time_ratio(rows=8, vocab=512, repeats=2)
    assert math.isfinite(ratio) and ratio > 0

    def untimed() -> float:
        raise AssertionError("timed without the flags")

    for flags, measured, fast in [(False, None, False), (True, 1.2, False), (True, 0.4, True)]:
        cpu.this_cpu_has_fast_bf16.cache_clear()
        monkeypatch.setattr(cpu, "cpu_has_fast_bf16", lambda flags=flags: flags)
        monkeypatch.setattr(
            cpu, "bf16_time_ratio", untimed if measured is None else lambda m=measured: m
        )
        assert cpu.this_cpu_has_fast_bf16() is fast
    cpu.this_cpu_has_fast_bf16.cache_clear()


def test_auto_stays_float32_on_cpu_and_hints_at_bfloat16(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import splade_es.encoder as enc

    for fast in (True, False):
        monkeypatch.setattr(enc, "this_cpu_has_fast_bf16", lambda fast=fast: fast)
        assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
        caplog.clear()
        with caplog.at_level("INFO", logger="splade_es.encoder"):
            encoder = SpladeEncoder.load("splade-tiny", device="cpu")
        assert next(encoder.document_side.model.parameters()).dtype == torch.float32
        assert ("--dtype bfloat16" in caplog.text) is fast


def _compare(reference: list[SparseVector], other: list[SparseVector]) -> list[tuple[float, float]]:
    """(largest weight difference / the text's largest weight, cosine) per text."""
    out = []
    for r, o in zip(reference, other, strict=True):
        a, b = r.as_dict(), o.as_dict()
        keys = set(a) | set(b)
        diff = max(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys)
        dot = sum(a.get(k, 0.0) * b.get(k, 0.0) for k in keys)
        norms = math.sqrt(sum(x * x for x in a.values()) * sum(x * x for x in b.values()))
        out.append((diff / max(a.values()), dot / norms))
    return out


@pytest.fixture(scope="module")
def float32_vectors() -> list[SparseVector]:
    return SpladeEncoder.load("splade-tiny", device="cpu", dtype="float32").encode_documents(TEXTS)


@pytest.mark.slow
def test_bfloat16_vectors_are_close_to_float32(float32_vectors: list[SparseVector]) -> None:
    """bfloat16 keeps 8 significant bits (0.4% per rounding); through two layers and the
    projection splade-tiny's weights move by at most ~2% of a text's largest weight (measured
    1.8%), so 5% of it and a cosine of 0.999 leave margin while a wrong model or pooling fails."""
    encoder = SpladeEncoder.load("splade-tiny", device="cpu", dtype="bfloat16")
    assert next(encoder.document_side.model.parameters()).dtype == torch.bfloat16
    for relative_diff, cosine in _compare(float32_vectors, encoder.encode_documents(TEXTS)):
        assert relative_diff < 0.05
        assert cosine > 0.999


@pytest.mark.slow
def test_int8_quantizes_the_layers_and_stays_close_to_float32(
    float32_vectors: list[SparseVector],
) -> None:
    """Dynamic int8 rounds weights and activations to 1/127 of their range per tensor; with
    hidden size 128 splade-tiny's weights move by up to ~10% of a text's largest weight
    (measured), so 20% and a cosine of 0.99 bound it; the vocabulary projection stays float."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    encoder = SpladeEncoder.load("splade-tiny", device="cpu", dtype="int8")
    model = encoder.document_side.model
    kinds = {type(m) for m in model.modules() if isinstance(m, torch.nn.Linear | DynamicLinear)}
    assert DynamicLinear in kinds
    assert type(model.get_output_embeddings()) is torch.nn.Linear
    for relative_diff, cosine in _compare(float32_vectors, encoder.encode_documents(TEXTS)):
        assert relative_diff < 0.2
        assert cosine > 0.99


def _tiny_beir(folder: Path) -> Path:
    """8 documents, 3 queries each equal to one document's text, judged relevant to it."""
    docs = [(f"d{i}", text) for i, text in enumerate([*TEXTS, "cats", "dogs", "birds"])]
    judged = [docs[0], docs[1], docs[3]]
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in docs)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in judged)
    )
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{i}\t1\n" for i, _ in judged)
    )
    return folder


@pytest.mark.slow
def test_benchmark_main_writes_every_row(tmp_path: Path) -> None:
    from splade_es.benchmarks.encoder_speed import main

    beir = _tiny_beir(tmp_path / "beir")
    out = tmp_path / "out"
    common = ["--beir-dir", str(beir), "--docs", "4", "--base-docs", "0", "--repeats", "1"]
    main([*common, "--phases", "throughput", "--out", str(out)])
    report = main([*common, "--phases", "quality", "--variants", "float32,int8", "--out", str(out)])
    text = report.read_text()
    for row in ("splade-es float32", "splade-es bfloat16", "splade-es int8", "sentence-"):
        assert text.count(f"| {row}") >= 1
    assert "Throughput" in text and "nDCG@10" in text
    stored = json.loads((out / "encoder_speed.json").read_text())["rows"]
    assert {(r["phase"], r["variant"]) for r in stored} == {
        ("throughput", "float32"),
        ("throughput", "bfloat16"),
        ("throughput", "int8"),
        ("throughput", "sentence-transformers"),
        ("quality", "float32"),
        ("quality", "int8"),
    }
    quality = [r for r in stored if r["phase"] == "quality"]
    assert all(r["docs"] == 8 and r["queries"] == 3 for r in quality)
    assert all(r["ndcg10"] > 0.5 for r in quality)  # each query is its own document's text
    assert (out / "encoder_speed.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        main([*common, "--variants", "float64", "--out", str(out)])
