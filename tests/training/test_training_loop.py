"""End-to-end training runs on a 20-query SciFact slice: the loss goes down, checkpoints resume
exactly, the FLOPS weight sparsifies documents, every shape saves a folder `SpladeEncoder.load` reads,
distillation and dev evaluation run, and the CLI wires options and config files through."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from splade_es.encoder import SpladeEncoder
from splade_es.models import SETTINGS_FILE, bundled_model_path
from training import losses
from training.cli import train as train_command
from training.data import BatchSampler, bm25_negatives, build_examples, load_beir
from training.loop import TrainConfig, train
from training.model import SpladeModel, tokenize


def config(beir: Path, out: Path, model: Path | str, **overrides: object) -> TrainConfig:
    values: dict[str, object] = dict(
        beir_dir=str(beir),
        out=str(out),
        base_model=str(model),
        max_steps=4,
        batch_size=4,
        negatives=1,
        lr=1e-3,
        lambda_d=0.0,
        lambda_q=0.0,
        train_doc_max_length=48,
        doc_max_length=64,
        query_max_length=24,
        log_every=1,
        progress=False,
        seed=11,
    )
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def fixed_batch_loss(model_folder: Path, beir: Path, steps: int, seed: int) -> float:
    """InfoNCE of a saved model on the batches training drew (same seed), without dropout."""
    data = load_beir(beir)
    qids = sorted(data.qrels)
    sampler = BatchSampler(data, build_examples(data, qids, bm25_negatives(data, qids)), 4, 1, seed)
    model = SpladeModel.from_base("shared", str(model_folder)).eval()
    total = 0.0
    with torch.no_grad():
        for step in range(steps):
            batch = sampler.batch(step)
            q = tokenize(model.tokenizer, batch.queries, 24)
            d = tokenize(model.tokenizer, batch.docs, 48)
            qr, dr = model(q["input_ids"], q["attention_mask"], d["input_ids"], d["attention_mask"])
            total += losses.info_nce(qr, dr).item()
    return total / steps


def avg_doc_terms(folder: Path, beir: Path, n: int = 24) -> float:
    data = load_beir(beir)
    texts = list(data.docs.values())[:n]
    vectors = SpladeEncoder.load(str(folder), device="cpu").encode_documents(texts)
    return sum(len(v) for v in vectors) / len(vectors)


@pytest.mark.slow
def test_loss_decreases(scifact_slice: Path, tmp_path: Path) -> None:
    result = train(config(scifact_slice, tmp_path / "out", "splade-tiny", max_steps=8, lr=1e-4))
    assert result.step == 8
    before = fixed_batch_loss(bundled_model_path(), scifact_slice, 8, seed=11)
    after = fixed_batch_loss(tmp_path / "out", scifact_slice, 8, seed=11)
    assert after < 0.8 * before, (before, after)
    logged = [h for h in result.history if "rank" in h]
    assert [h["step"] for h in logged] == list(range(1, 9))
    for key in ("flops_d", "flops_q", "doc_terms", "query_terms", "lambda_d", "lr"):
        assert key in logged[-1]


@pytest.mark.slow
def test_checkpoint_resume_matches_uninterrupted_run(
    scifact_slice: Path, tiny_mlm: Path, tmp_path: Path
) -> None:
    interrupted = tmp_path / "interrupted"
    first = train(config(scifact_slice, interrupted, tiny_mlm, max_steps=6, stop_at_step=3))
    assert first.step == 3
    state = json.loads((interrupted / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 3
    resumed = train(config(scifact_slice, interrupted, tiny_mlm, max_steps=6, resume=True))
    assert resumed.step == 6
    assert [h["step"] for h in resumed.history if "rank" in h] == [1, 2, 3, 4, 5, 6]

    straight = train(config(scifact_slice, tmp_path / "straight", tiny_mlm, max_steps=6))
    a = load_file(str(interrupted / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model.safetensors"))
    base = load_file(str(tiny_mlm / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(a[key], base[key])  # it trained
    for name in a:  # optimizer, scheduler, RNG and data order all resumed exactly
        assert torch.allclose(a[name], b[name], atol=1e-5), name
    assert straight.step == 6

    encoder = SpladeEncoder.load(str(interrupted), device="cpu")
    assert encoder.settings.shape == "shared"
    assert encoder.settings.doc_max_length == 64 and encoder.settings.query_max_length == 24
    assert len(encoder.encode_query("vitamin d deficiency")) > 0


@pytest.mark.slow
def test_flops_weight_lowers_active_document_terms(scifact_slice: Path, tmp_path: Path) -> None:
    common = dict(max_steps=8, reg_warmup_steps=0, lr=1e-4)
    train(config(scifact_slice, tmp_path / "free", "splade-tiny", lambda_d=0.0, **common))
    train(config(scifact_slice, tmp_path / "sparse", "splade-tiny", lambda_d=0.5, **common))
    free = avg_doc_terms(tmp_path / "free", scifact_slice)
    sparse = avg_doc_terms(tmp_path / "sparse", scifact_slice)
    assert sparse < 0.5 * free, (free, sparse)


def test_pair_shape_writes_both_sides(scifact_slice: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    out = tmp_path / "pair"
    train(config(scifact_slice, out, tiny_mlm, shape="pair", max_steps=3))
    settings = json.loads((out / SETTINGS_FILE).read_text())
    assert settings["shape"] == "pair"
    for side in ("document", "query"):
        assert (out / side / "model.safetensors").is_file()
        assert (out / side / "tokenizer.json").is_file()
    doc = load_file(str(out / "document" / "model.safetensors"))
    query = load_file(str(out / "query" / "model.safetensors"))
    key = "bert.encoder.layer.0.output.dense.weight"
    assert not torch.allclose(doc[key], query[key])  # trained as two models
    encoder = SpladeEncoder.load(str(out), device="cpu")
    assert encoder.settings.shape == "pair"
    assert encoder.query_side is not encoder.document_side
    assert len(encoder.encode_query("vitamin d")) > 0


def test_inference_free_writes_idf(scifact_slice: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    out = tmp_path / "free"
    train(config(scifact_slice, out, tiny_mlm, shape="inference-free", max_steps=3, lambda_q=0.1))
    table = json.loads((out / "idf.json").read_text())
    assert table and all(w > 0 for w in table.values())
    assert json.loads((out / SETTINGS_FILE).read_text())["shape"] == "inference-free"
    encoder = SpladeEncoder.load(str(out), device="cpu")
    assert encoder.settings.shape == "inference-free"
    vector = encoder.encode_query("vitamin d deficiency")
    assert dict(vector.weights)["vitamin"] == pytest.approx(table["vitamin"], rel=1e-5)
    initial = SpladeModel.from_base(
        "inference-free", str(tiny_mlm), idf_texts=list(load_beir(scifact_slice).docs.values())
    ).idf_table()
    assert any(abs(table.get(t, 0.0) - w) > 1e-4 for t, w in initial.items())  # it learned


@pytest.mark.slow
def test_distillation_and_dev_evaluation(scifact_slice: Path, tmp_path: Path) -> None:
    data = load_beir(scifact_slice)
    from training.bm25 import BM25

    run = BM25(list(data.docs), list(data.docs.values())).search(data.queries, k=10)
    teacher = tmp_path / "teacher.tsv"
    with teacher.open("w") as handle:
        for qid in data.qrels:
            for doc_id in data.qrels[qid]:
                handle.write(f"{qid}\t{doc_id}\t20.0\n")
            for doc_id, score in run[qid].items():
                if doc_id not in data.qrels[qid]:
                    handle.write(f"{qid}\t{doc_id}\t{score}\n")
    for loss in ("margin-mse", "kl"):
        out = tmp_path / loss
        result = train(
            config(
                scifact_slice,
                out,
                "splade-tiny",
                teacher_scores=str(teacher),
                loss=loss,
                max_steps=4,
                negatives=2,
                eval_every=2,
                dev_fraction=0.25,
                contrastive_weight=0.1,
                lr=1e-4,
                dev_pool_depth=10,
            )
        )
        evals = [h for h in result.history if "dev" in h]
        assert [h["step"] for h in evals] == [0, 2, 4]
        assert result.best_metrics is not None and result.best_step in (0, 2, 4)
        assert SpladeEncoder.load(str(out), device="cpu").settings.shape == "shared"
        assert (out / "last" / SETTINGS_FILE).is_file()


def test_cli_config_file_options_and_bad_data(
    scifact_slice: Path, tiny_mlm: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "train.json"
    cfg.write_text(
        json.dumps(
            {
                "beir_dir": str(scifact_slice),
                "base-model": str(tiny_mlm),
                "max_steps": 50,
                "batch_size": 4,
                "train_doc_max_length": 32,
                "doc_max_length": 48,
                "lambda_d": 0.01,
            }
        )
    )
    out = tmp_path / "cli-out"
    runner = CliRunner()
    result = runner.invoke(
        train_command,
        [
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--shape",
            "shared",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["max_steps"] == 2 and saved["lambda_d"] == 0.01 and saved["batch_size"] == 4
    assert SpladeEncoder.load(str(out), device="cpu").settings.doc_max_length == 48

    resumed = runner.invoke(
        train_command,
        [
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--max-steps",
            "3",
            "--resume",
            "--no-progress",
        ],
    )
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 3

    bad = tmp_path / "bad"
    shutil.copytree(scifact_slice, bad)
    with (bad / "qrels" / "train.tsv").open("a") as handle:
        handle.write("0\tmissing-doc\t1\n")
    failed = runner.invoke(
        train_command,
        [
            "--beir-dir",
            str(bad),
            "--out",
            str(tmp_path / "x"),
            "--base-model",
            str(tiny_mlm),
            "--no-progress",
        ],
    )
    assert failed.exit_code == 1
    assert "train.tsv:" in failed.output and "'missing-doc' is not in the corpus" in failed.output

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"beir_dir": str(scifact_slice), "out": str(out), "lamda_d": 1}))
    usage = runner.invoke(train_command, ["--config", str(unknown)])
    assert usage.exit_code == 2 and "lamda_d" in usage.output
