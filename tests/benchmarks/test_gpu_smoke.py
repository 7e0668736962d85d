"""`splade-es bench gpu` on CPU with a tiny input, so the GPU run cannot rot between GPU windows.

Every phase must come back with results or a stated reason; the out-of-memory phase must really
split (an injected out-of-memory error on CPU) and lose no document."""

from __future__ import annotations

import gzip
import json
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from splade_es.benchmarks import gpu, gpu_phases
from splade_es.benchmarks.gpu_wheels import install_command

TINY = [
    "--docs", "6", "--lengths", "32,64", "--base-config", "small", "--batch-size", "4",
    "--repeats", "1", "--max-tokens", "128", "--pool-batch-size", "4", "--oom-docs", "6",
    "--beam-docs", "8", "--train-steps", "2", "--train-batch-size", "2", "--train-queries", "8",
    "--wikipedia", "5", "--device", "cpu",
]  # fmt: skip


def tiny_wikipedia(scifact: Path, path: Path) -> Path:
    """A gzipped BEIR corpus of 5 passages (SciFact's first documents) standing in for Wikipedia."""
    with (scifact / "corpus.jsonl").open(encoding="utf-8") as src, gzip.open(path, "wt") as dst:
        dst.writelines(islice(src, 5))
    return path


@pytest.fixture(scope="module")
def report(scifact: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("gpu")
    wiki = tiny_wikipedia(scifact, out / "wiki.jsonl.gz")
    argv = [*TINY, "--out", str(out / "report"), "--scifact", str(scifact)]
    path = gpu.main([*argv, "--wikipedia-file", str(wiki)])
    assert path == out / "report" / "gpu.md"
    data: dict[str, Any] = json.loads((out / "report" / "gpu.json").read_text())
    data["markdown"] = path.read_text()
    return data


@pytest.mark.slow
def test_every_phase_has_results_or_a_reason(report: dict[str, Any]) -> None:
    assert list(report["phases"]) == list(gpu.BUDGETS)
    for name, phase in report["phases"].items():
        # here every dependency is installed: nothing may be skipped or fail
        assert phase["status"] == "ok", f"{name}: {phase.get('reason')}"
        assert phase["results"], name
        assert f"## {name}: ok" in report["markdown"]
    meta = report["meta"]
    assert meta["device"] == "cpu" and meta["device_name"].startswith("CPU")
    assert meta["versions"]["torch"] != "absent"
    assert "CPU run" in report["markdown"]


@pytest.mark.slow
def test_cuda_only_numbers_are_marked_not_faked(report: dict[str, Any]) -> None:
    encoder = report["phases"]["encoder"]["results"]
    rows = encoder["rows"]
    assert {(r["model"], r["length"], r["dtype"]) for r in rows} == {
        (m, n, d)
        for m in ("splade-tiny", "bert-base")
        for n in (32, 64)
        for d in ("float32", "bfloat16")
    }
    assert all(r["docs_per_s"] > 0 and r["encode_docs_per_s"] > 0 for r in rows)
    assert all(r["peak_mib"] is None and r["share_of_bf16_peak"] is None for r in rows)
    assert all(r["tflops"] > 0 for r in rows)  # the FLOP estimate itself works on CPU
    assert sum("float16: CUDA only" in item for item in encoder["not_run"]) == 4
    pooling = report["phases"]["pooling"]["results"]["rows"]
    assert all(r["max_diff_packed_vs_plain"] < 1e-4 for r in pooling)


@pytest.mark.slow
def test_the_oversized_batch_is_split_and_loses_no_document(report: dict[str, Any]) -> None:
    oom = report["phases"]["oom"]["results"]
    assert oom["mode"] == "injected"
    assert oom["splits"] > 0 and oom["learned_token_limit"] is not None
    assert oom["vectors"] == oom["docs"] == 6 and oom["empty_vectors"] == 0
    assert oom["passed"] is True


@pytest.mark.slow
def test_beam_training_and_wikipedia_ran_on_the_tiny_input(report: dict[str, Any]) -> None:
    beam = report["phases"]["beam"]["results"]
    assert beam["rows"][2]["docs"] == 5  # the 5 "Wikipedia" passages are its corpus
    assert beam["end_to_end_vs_encoder"] > 0 and len(beam["rows"]) == 4
    training = report["phases"]["training"]["results"]["rows"][0]
    assert training["steps_per_s"] > 0 and training["last_loss"] is not None
    wiki = report["phases"]["wikipedia"]["results"]["rows"][0]
    assert wiki["passages_encoded"] == 5


def test_a_failing_phase_is_reported_and_the_others_still_run(
    scifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx: Any, deadline: float) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(gpu_phases.PHASES, "pooling", broken)
    argv = [*TINY, "--out", str(tmp_path), "--scifact", str(scifact)]
    gpu.main([*argv, "--phases", "pooling,oom,wikipedia", "--wikipedia", "0"])
    phases = json.loads((tmp_path / "gpu.json").read_text())["phases"]
    assert phases["pooling"]["status"] == "failed"
    assert phases["pooling"]["reason"] == "RuntimeError: second line"
    assert phases["oom"]["status"] == "ok" and phases["oom"]["results"]["passed"]
    assert phases["wikipedia"] == {**phases["wikipedia"], "status": "skipped"}
    assert "--wikipedia" in phases["wikipedia"]["reason"]


def test_bad_options_and_outputs_are_refused(tmp_path: Path) -> None:
    import splade_es

    with pytest.raises(SystemExit):
        gpu.parse_args(["--out", str(tmp_path), "--phases", "encoder,warp"])
    with pytest.raises(ValueError, match="outside the package"):
        gpu.main(["--out", str(Path(splade_es.__file__).parent / "x"), "--phases", "oom"])


def test_the_gpu_command_line_fits_the_machines_limit() -> None:
    command = install_command()
    assert len(command) <= 2000
    assert "--no-index" in command and "bench gpu --out $OUT/gpu" in command
