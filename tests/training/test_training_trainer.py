"""Runs of the SparseEncoderTrainer-based training on a 20-query SciFact slice: every shape exports a
folder the encoder loads with the trained model's vectors, the regularizer weights reach training,
checkpoints resume, the CLI wires options and config files through, and a short real run improves
the dev metric."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from splade_es.encoder import SpladeEncoder
from splade_es.models import SETTINGS_FILE, model_identity, read_settings, serves
from splade_es.training.cli import train as train_command
from splade_es.training.data import load_beir
from splade_es.training.trainer import (
    TrainConfig,
    TrainResult,
    train,
    training_and_dev_queries,
    training_rows,
)
from tests.conftest import build_tiny_mlm
from tests.training.conftest import write_slice

TEXTS = ["vitamin d deficiency and cancer risk", "cells divide " * 30, "heart disease"]


def config(beir: Path, out: Path, model: Path | str, **overrides: object) -> TrainConfig:
    values: dict[str, object] = dict(
        beir_dir=str(beir),
        out=str(out),
        base_model=str(model),
        max_steps=3,
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
        teacher="none",  # the tests' runs: no teacher to build, BM25 negatives (the defaults are
        negative_source="bm25",  # the README recipe's, which every test would pay for)
    )
    values.update(overrides)
    return TrainConfig(**values)


def dense(vectors: list[Any], tokenizer: Any, vocab: int) -> torch.Tensor:
    out = torch.zeros(len(vectors), vocab)
    for row, vector in enumerate(vectors):
        for token, weight in vector.weights:
            out[row, tokenizer.convert_tokens_to_ids(token)] = weight
    return out


def assert_export_matches(result: TrainResult) -> SpladeEncoder:
    """The exported folder, loaded by the encoder at the training lengths, gives the trained
    model's vectors for documents and queries."""
    encoder = SpladeEncoder.load(
        str(result.out), device="cpu", doc_max_length=48, query_max_length=24
    )
    model = result.model.eval()
    tokenizer = encoder.document_side.tokenizer
    vocab = len(tokenizer)
    trained_docs = model.encode_document(TEXTS, convert_to_tensor=True).to_dense().cpu()
    trained_queries = model.encode_query(TEXTS, convert_to_tensor=True).to_dense().cpu()
    exported_docs = dense(encoder.encode_documents(TEXTS), tokenizer, vocab)
    exported_queries = dense(encoder.encode_queries(TEXTS), tokenizer, vocab)
    torch.testing.assert_close(exported_docs, trained_docs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(exported_queries, trained_queries, rtol=1e-4, atol=1e-5)
    assert (exported_docs > 0).sum() > 0 and (exported_queries > 0).sum() > 0
    return encoder


def test_shared_export(scifact_slice: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    result = train(config(scifact_slice, tmp_path / "shared", tiny_mlm))
    assert result.step == 3
    encoder = assert_export_matches(result)
    assert encoder.settings.shape == "shared"
    saved = SpladeEncoder.load(str(result.out), device="cpu").settings
    assert (saved.doc_max_length, saved.query_max_length) == (64, 24)
    trained = load_file(str(result.out / "model.safetensors"))
    base = load_file(str(tiny_mlm / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(trained[key], base[key])  # it trained


def test_a_shared_model_is_exported_merged_with_its_base_by_default(
    scifact_slice: Path, tiny_mlm: Path, tmp_path: Path
) -> None:
    """The default export is 0.5 x trained + 0.5 x base (the same run with `merge_weight=1`
    gives the trained weights); `query_layers` is for a pair model only."""
    merged = train(config(scifact_slice, tmp_path / "merged", tiny_mlm, lr=1e-2))
    trained = train(config(scifact_slice, tmp_path / "own", tiny_mlm, lr=1e-2, merge_weight=1.0))
    base = load_file(str(tiny_mlm / "model.safetensors"))
    own = load_file(str(trained.out / "model.safetensors"))
    half = load_file(str(merged.out / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(own[key], base[key], atol=1e-4)
    for name, value in half.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.5 * own[name] + 0.5 * base[name])
    with pytest.raises(ValueError, match="query_layers needs shape 'pair'"):
        config(scifact_slice, tmp_path, tiny_mlm, query_layers=1).validate()


def test_pair_export(scifact_slice: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    result = train(config(scifact_slice, tmp_path / "pair", tiny_mlm, shape="pair"))
    encoder = assert_export_matches(result)
    assert encoder.settings.shape == "pair"
    assert json.loads((result.out / SETTINGS_FILE).read_text())["shape"] == "pair"
    doc = load_file(str(result.out / "document" / "model.safetensors"))
    query = load_file(str(result.out / "query" / "model.safetensors"))
    key = "bert.encoder.layer.0.output.dense.weight"
    assert not torch.allclose(doc[key], query[key])  # trained as two models
    for side in ("document", "query"):
        assert (result.out / side / "tokenizer.json").is_file()


def test_a_pair_with_a_small_query_side_merges_its_document_side_only(
    scifact_slice: Path, tmp_path: Path
) -> None:
    """`query_layers=1` on a 2-layer base and no query expansion: the exported query side has one
    layer, loads, and keeps each query to its own tokens (as trained); the default export averages
    the document side with the base, never the query side."""
    base = build_tiny_mlm(tmp_path / "base", seed=5, layers=2)
    options = dict(shape="pair", query_layers=1, query_expansion=False, lr=1e-2)
    merged = train(config(scifact_slice, tmp_path / "merged", base, **options))
    trained = train(config(scifact_slice, tmp_path / "own", base, merge_weight=1.0, **options))
    assert_export_matches(trained)
    encoder = SpladeEncoder.load(str(merged.out), device="cpu")
    layers = {
        s: json.loads((merged.out / s / "config.json").read_text()) for s in ("query", "document")
    }
    assert (layers["query"]["num_hidden_layers"], layers["document"]["num_hidden_layers"]) == (1, 2)
    for text, vector in zip(TEXTS, encoder.encode_queries(TEXTS), strict=True):
        assert vector and set(vector.as_dict()) <= set(
            encoder.document_side.tokenizer.tokenize(text)
        )
    start = load_file(str(base / "model.safetensors"))
    for side in ("document", "query"):
        own = load_file(str(trained.out / side / "model.safetensors"))
        half = load_file(str(merged.out / side / "model.safetensors"))
        key = "bert.encoder.layer.0.attention.self.query.weight"
        assert not torch.allclose(own[key], start[key], atol=1e-4)
        expected = 0.5 * own[key] + 0.5 * start[key] if side == "document" else own[key]
        torch.testing.assert_close(half[key], expected)
    assert "bert.encoder.layer.1.output.dense.weight" not in half  # one query layer


def test_inference_free_export(scifact_slice: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    out = tmp_path / "free"
    result = train(config(scifact_slice, out, tiny_mlm, shape="inference-free", lambda_q=0.1))
    encoder = assert_export_matches(result)
    assert encoder.settings.shape == "inference-free"
    table = json.loads((out / "idf.json").read_text())
    assert table and all(w > 0 for w in table.values())
    from splade_es.training.model import corpus_idf

    tokenizer = encoder.document_side.tokenizer
    initial = corpus_idf(tokenizer, list(load_beir(scifact_slice).docs.values()))
    vitamin = tokenizer.convert_tokens_to_ids("vitamin")
    assert table["vitamin"] != pytest.approx(float(initial[vitamin]), abs=1e-4)  # it learned


def test_zero_steps_export_the_starting_model_untrained(
    scifact_slice: Path, tiny_mlm: Path, tmp_path: Path
) -> None:
    """`max_steps` 0: no negatives, no teacher, no step; the table is the corpus IDF exactly and
    the frozen document side serves the base's index (the ablation's zero point)."""
    from splade_es.training.model import corpus_idf

    out = tmp_path / "idf-only"
    run = config(scifact_slice, out, tiny_mlm, shape="inference-free", freeze_documents=True)
    result = train(replace(run, max_steps=0))
    assert result.step == 0
    assert not list(out.glob("teacher_scores*")) and not (out / "checkpoints").exists()
    encoder = assert_export_matches(result)
    assert read_settings(str(out)).documents_of == model_identity(str(tiny_mlm))
    table = json.loads((out / "idf.json").read_text())
    tokenizer = encoder.document_side.tokenizer
    initial = corpus_idf(tokenizer, list(load_beir(scifact_slice).docs.values()))
    for token in ("vitamin", "cells", "the"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert table[token] == pytest.approx(float(initial[token_id]), abs=1e-6), token
    with pytest.raises(ValueError, match="max_steps must be >= 0"):
        replace(run, max_steps=-1).validate()


def active_query_and_doc_terms(result: TrainResult) -> tuple[float, float]:
    model = result.model.eval()
    queries = model.encode_query(TEXTS, convert_to_tensor=True).to_dense()
    docs = model.encode_document(TEXTS, convert_to_tensor=True).to_dense()
    return float((queries > 0).sum(1).float().mean()), float((docs > 0).sum(1).float().mean())


def test_regularizer_weights_reach_training(
    scifact_slice: Path, tiny_mlm: Path, tmp_path: Path
) -> None:
    """Each lambda sparsifies its own side: a dropped or swapped regularizer fails here."""
    common = dict(max_steps=6, lr=1e-2, reg_warmup_steps=0)
    free = train(config(scifact_slice, tmp_path / "free", tiny_mlm, **common))
    queries = train(config(scifact_slice, tmp_path / "q", tiny_mlm, lambda_q=50.0, **common))
    docs = train(config(scifact_slice, tmp_path / "d", tiny_mlm, lambda_d=50.0, **common))
    free_q, free_d = active_query_and_doc_terms(free)
    q_q, _ = active_query_and_doc_terms(queries)
    _, d_d = active_query_and_doc_terms(docs)
    assert q_q < 0.5 * free_q, (free_q, q_q)
    assert d_d < 0.5 * free_d, (free_d, d_d)
    logged = [h for h in queries.history if "query_regularizer_loss" in h]
    assert logged[-1]["query_regularizer_loss"] > 0
    assert all(h["document_regularizer_loss"] == 0 for h in logged)


def test_regularizer_warmup_is_quadratic(
    scifact_slice: Path, tiny_mlm: Path, tmp_path: Path
) -> None:
    result = train(
        config(
            scifact_slice,
            tmp_path / "w",
            tiny_mlm,
            max_steps=6,
            lambda_d=0.4,
            lambda_q=0.2,
            reg_warmup_steps=4,
        )
    )
    weights = {h["step"]: h for h in result.history if "document_regularizer_weight" in h}
    for step in range(1, 7):  # the weight used in step s is set at its start: global step s - 1
        expected = min(1.0, ((step - 1) / 4) ** 2)
        assert weights[step]["document_regularizer_weight"] == pytest.approx(0.4 * expected)
        assert weights[step]["query_regularizer_weight"] == pytest.approx(0.2 * expected)


def test_checkpoint_resume_matches_uninterrupted_run(
    scifact_slice: Path, tiny_mlm: Path, tmp_path: Path
) -> None:
    interrupted = tmp_path / "interrupted"
    first = train(
        config(scifact_slice, interrupted, tiny_mlm, max_steps=6, stop_at_step=3, save_every=3)
    )
    assert first.step == 3
    assert (interrupted / "checkpoints" / "checkpoint-3").is_dir()
    resumed = train(
        config(scifact_slice, interrupted, tiny_mlm, max_steps=6, resume=True, save_every=3)
    )
    assert resumed.step == 6
    assert [h["step"] for h in resumed.history if "loss" in h] == [1, 2, 3, 4, 5, 6]
    straight = train(config(scifact_slice, tmp_path / "straight", tiny_mlm, max_steps=6))
    a = load_file(str(interrupted / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model.safetensors"))
    for name in a:  # optimizer, scheduler, RNG and data order all resumed exactly
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    assert straight.step == 6


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
                "teacher": "none",  # no teacher or SPLADE negatives to build: the file's wiring
                "negative_source": "bm25",  # is what this checks, twice (run and resume)
            }
        )
    )
    out = tmp_path / "cli-out"
    runner = CliRunner()
    args = ["--config", str(cfg), "--out", str(out), "--no-progress", "--save-every", "2"]
    result = runner.invoke(
        train_command, [*args, "--max-steps", "2", "--shape", "shared", "--query-weights-lr", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["max_steps"] == 2 and saved["lambda_d"] == 0.01 and saved["batch_size"] == 4
    assert saved["query_weights_lr"] == 0.5
    assert SpladeEncoder.load(str(out), device="cpu").settings.doc_max_length == 48

    resumed = runner.invoke(train_command, [*args, "--max-steps", "4", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "trained 4 steps" in resumed.output
    assert (out / "checkpoints" / "checkpoint-4").is_dir()

    bad = tmp_path / "bad"
    shutil.copytree(scifact_slice, bad)
    with (bad / "qrels" / "train.tsv").open("a") as handle:
        handle.write("0\tmissing-doc\t1\n")
    failed = runner.invoke(
        train_command,
        ["--beir-dir", str(bad), "--out", str(tmp_path / "x"), "--base-model", str(tiny_mlm)],
    )
    assert failed.exit_code == 1
    assert "train.tsv:" in failed.output and "'missing-doc' is not in the corpus" in failed.output
    assert "Traceback" not in failed.output

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"beir_dir": str(scifact_slice), "out": str(out), "lamda_d": 1}))
    usage = runner.invoke(train_command, ["--config", str(unknown)])
    assert usage.exit_code == 2 and "lamda_d" in usage.output
    no_teacher = runner.invoke(train_command, [*args, "--loss", "kl", "--teacher", "none"])
    assert no_teacher.exit_code == 2 and "needs teacher_scores" in no_teacher.output


@pytest.mark.slow
def test_short_real_run_improves_dev_metric(scifact: Path, tmp_path: Path) -> None:
    """splade-tiny, 40 steps on SciFact train queries: the dev nDCG@10 (held-out training
    queries, ranked among their BM25 top 20 and positives) beats the base model's."""
    result = train(
        TrainConfig(
            beir_dir=str(scifact),
            out=str(tmp_path / "real"),
            base_model="splade-tiny",
            max_steps=40,
            batch_size=8,
            lr=1e-4,
            train_doc_max_length=96,
            eval_every=40,
            dev_pool_depth=20,
            dev_max_queries=40,
            log_every=10,
            progress=False,
            teacher="none",
            negative_source="bm25",
        )
    )
    assert result.base_metrics is not None and result.best_metrics is not None
    base = result.base_metrics["dev_dot_ndcg@10"]
    trained = result.best_metrics["eval_dev_dot_ndcg@10"]
    assert trained > base + 0.01, (base, trained)


def test_dev_queries_never_train(scifact_slice: Path, tmp_path: Path) -> None:
    data = load_beir(scifact_slice, "train")
    qids = sorted(data.qrels)
    held = config(scifact_slice, tmp_path, "m", eval_every=1, dev_fraction=0.25)
    train_qids, dev_qids = training_and_dev_queries(held, qids, data)
    assert dev_qids and not set(train_qids) & set(dev_qids)
    assert sorted(train_qids + dev_qids) == qids
    # `seed` varies training only; `dev_seed` draws another slice
    reseeded = replace(held, seed=held.seed + 1)
    assert training_and_dev_queries(reseeded, qids, data)[1] == dev_qids
    redrawn = replace(held, dev_seed=held.dev_seed + 1)
    assert training_and_dev_queries(redrawn, qids, data)[1] != dev_qids

    dev_file = tmp_path / "dev.tsv"
    dev_file.write_text("".join(f"{q}\t{next(iter(data.qrels[q]))}\t1\n" for q in qids[:3]))
    given = config(scifact_slice, tmp_path, "m", eval_every=1, dev_qrels=str(dev_file))
    train_qids, _ = training_and_dev_queries(given, qids, data)
    assert train_qids == qids[3:]


def test_frozen_documents_export_the_base_document_side_bit_for_bit(
    scifact_slice: Path, tmp_path: Path
) -> None:
    """`freeze_documents`: the query side trains, the document side is the base model's exactly
    (not merged, not moved), so an index encoded with the base keeps serving the new queries."""
    base = build_tiny_mlm(tmp_path / "base", seed=6, layers=2)
    options = dict(shape="pair", query_layers=1, query_expansion=False, lr=1e-2)
    result = train(
        config(scifact_slice, tmp_path / "frozen", base, freeze_documents=True, **options)
    )
    assert_export_matches(result)
    start = load_file(str(base / "model.safetensors"))
    document = load_file(str(result.out / "document" / "model.safetensors"))
    assert document.keys() == start.keys()
    for key, value in start.items():
        assert torch.equal(document[key], value), key
    query = load_file(str(result.out / "query" / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(query[key], start[key], atol=1e-4)  # the query side learned
    # the export says so, and an index the base filled takes its queries without --force-model
    assert read_settings(str(result.out)).documents_of == model_identity(str(base))
    assert serves(model_identity(str(base)), str(result.out))
    assert not serves(model_identity(str(tmp_path / "other")), str(result.out))
    with pytest.raises(ValueError, match="freeze_documents needs shape"):
        config(scifact_slice, tmp_path, base, freeze_documents=True).validate()


def test_a_frozen_document_side_encodes_each_text_once_and_gives_the_same_vectors(
    tiny_mlm: Path,
) -> None:
    """The frozen side's memo: vectors equal to encoding afresh, and a text seen before does not
    run the document MLM again (a step costs its query side only once the documents are known)."""
    from splade_es.training.model import build_model, freeze_documents

    frozen = build_model("inference-free", str(tiny_mlm), idf_texts=TEXTS)
    fresh = build_model("inference-free", str(tiny_mlm), idf_texts=TEXTS)
    freeze_documents(frozen)
    calls: list[int] = []
    document_mlm = frozen[0].sub_modules["document"][0].model
    document_mlm.register_forward_hook(lambda module, args, output: calls.append(1))
    first = frozen.encode_document(TEXTS[:2], convert_to_tensor=True).to_dense()
    runs = len(calls)
    assert runs > 0
    again = frozen.encode_document(TEXTS, convert_to_tensor=True).to_dense()  # one new text
    assert len(calls) > runs  # the new text ran the MLM ...
    runs = len(calls)
    frozen.encode_document(list(reversed(TEXTS)), convert_to_tensor=True)
    assert len(calls) == runs  # ... and no known text runs it again
    expected = fresh.encode_document(TEXTS, convert_to_tensor=True).to_dense()
    torch.testing.assert_close(again, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first, expected[:2], rtol=1e-4, atol=1e-5)
    assert (expected > 0).sum() > 0

    # a capped memo keeps the most recently used texts only, and gives the same vectors
    memo = frozen[0].sub_modules["document"][0].memo
    memo.clear()
    memo.capacity = 2

    def encode(i: int) -> bool:
        """Encode text i alone; whether the document MLM ran."""
        runs = len(calls)
        vector = frozen.encode_document([TEXTS[i]], convert_to_tensor=True).to_dense()
        torch.testing.assert_close(vector[0], expected[i], rtol=1e-4, atol=1e-5)
        return len(calls) > runs

    assert encode(0) and encode(1) and not encode(0)  # 0 read again: 1 is the older now
    assert encode(2) and len(memo) == 2  # drops 1 (first in, first out would drop 0)
    assert not encode(0) and not encode(2) and encode(1)


@pytest.fixture(scope="module")
def nfcorpus_slice(scifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = scifact.parent / "nfcorpus"
    if not (source / "corpus.jsonl").is_file():
        pytest.fail(f"NFCorpus not found at {source}: tests need ../shared/datasets/nfcorpus")
    return write_slice(source, tmp_path_factory.mktemp("nfcorpus-slice"), n_queries=12)


def test_mixed_collections_bring_their_share_mined_and_taught_within_themselves(
    scifact_slice: Path, nfcorpus_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    real_load = SpladeEncoder.load.__func__  # type: ignore[attr-defined]

    def counted_load(cls: type[SpladeEncoder], model: str, *args: Any, **kwargs: Any) -> Any:
        loads.append(model)
        return real_load(cls, model, *args, **kwargs)

    monkeypatch.setattr(SpladeEncoder, "load", classmethod(counted_load))
    run = config(
        scifact_slice,
        tmp_path,
        "splade-tiny",  # trained, so sparse: its teacher runs take seconds where tiny_mlm's take 40
        max_steps=10,
        batch_size=8,
        mix=[str(nfcorpus_slice)],
        mix_share=0.25,
        teacher="ensemble",  # the recipe's teacher, fused per collection
        negative_source="bm25+splade",
        loss="kl",
    )
    scifact, nfcorpus = load_beir(scifact_slice), load_beir(nfcorpus_slice)
    columns, mixed = training_rows(run, scifact, sorted(scifact.qrels), None)
    assert [m.source for m in mixed] == [nfcorpus_slice]
    assert len(columns["query"]) == 80  # max_steps x batch_size
    own_texts, mix_texts = set(scifact.docs.values()), set(nfcorpus.docs.values())
    from_mix = [i for i, q in enumerate(columns["query"]) if q in nfcorpus.queries.values()]
    assert len(from_mix) == 20  # a quarter of the rows
    for i, _ in enumerate(columns["query"]):
        corpus = mix_texts if i in from_mix else own_texts
        assert columns["positive"][i] in corpus and columns["negative_1"][i] in corpus
        assert len(columns["label"][i]) == 2  # taught: positive and negative scored
    # NFCorpus queries judge dozens of documents each: the 20 rows go to all 12 queries
    assert len({columns["query"][i] for i in from_mix}) == 12
    teacher_ids = {line.split("\t")[0] for line in (tmp_path / "teacher_scores.mix1.tsv").open()}
    assert teacher_ids - {"query_id"} == set(nfcorpus.qrels)  # its own queries, its own file
    assert loads == ["splade-tiny"]  # the base model, loaded once for both collections


def test_cli_mix_is_a_list_in_the_run_config(
    scifact_slice: Path, nfcorpus_slice: Path, tiny_mlm: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "mixed"
    args = ["--beir-dir", str(scifact_slice), "--out", str(out), "--base-model", str(tiny_mlm)]
    args += ["--max-steps", "2", "--batch-size", "4", "--teacher", "none", "--no-progress"]
    args += ["--negative-source", "bm25", "--train-doc-max-length", "32"]
    result = runner.invoke(train_command, [*args, "--mix", str(nfcorpus_slice)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["mix"] == [str(nfcorpus_slice)] and saved["mix_share"] == 0.5

    engine = runner.invoke(
        train_command,
        [*args, "--mix", str(nfcorpus_slice), "--negative-source", "engine", "--engine-index", "x"],
    )
    assert engine.exit_code == 2 and "mix needs a negative_source" in engine.output
    itself = runner.invoke(train_command, [*args, "--mix", str(scifact_slice)])
    assert itself.exit_code == 2 and "mix repeats beir_dir" in itself.output
    missing = runner.invoke(train_command, [*args, "--mix", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "nowhere" in missing.output
    assert "Traceback" not in engine.output + missing.output
