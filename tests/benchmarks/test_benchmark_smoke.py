"""Each new benchmark on a tiny input, end to end: the report files come out with their rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from splade_es.benchmarks.cli import BENCHMARKS, bench
from splade_es.benchmarks.latency_scale import (
    Result,
    SizeRun,
    Timing,
    load_runs,
    slopes,
    write_report,
)
from splade_es.benchmarks.synthetic import CorpusShape


def test_bench_lists_its_benchmarks_and_passes_arguments_through(tmp_path: Path) -> None:
    listed = CliRunner().invoke(bench, [])
    assert listed.exit_code == 0
    assert all(name in listed.output for name in BENCHMARKS)
    helped = CliRunner().invoke(bench, ["synthetic", "--help"])
    assert helped.exit_code == 0 and "--encoded" in helped.output
    missing = CliRunner().invoke(
        bench, ["synthetic", "--encoded", str(tmp_path / "nope.jsonl"), "--size", "3", "--out", "x"]
    )
    assert missing.exit_code != 0
    assert "nope.jsonl" in missing.output and "Traceback" not in missing.output


def fake_run(size: int, bm25_p50: float, splade_p50: float) -> SizeRun:
    def result(name: str, p50: float) -> Result:
        return Result(
            name,
            Timing(p50, p50 * 2, p50 * 3, p50 - 1, 1000 / p50, 2000 / p50),
            0.6,
            0.8,
            None,
            5.0,
        )

    shape = CorpusShape(size, 240, 240.0, 190, 0.5)
    return SizeRun(
        size,
        "opensearch 2.19.6",
        None,
        {f"scale-{size}": size * 1000},
        {f"scale-{size}": 1.0},
        shape,
        0.99,
        3.0,
        [result("BM25", bm25_p50), result("SPLADE full", splade_p50)],
    )


def test_report_fits_slopes_and_ratios_from_saved_runs(tmp_path: Path) -> None:
    from dataclasses import asdict

    # BM25 grows 2 ms per million documents, SPLADE 10: a slope ratio of 5
    for run in (fake_run(100_000, 5.2, 11.0), fake_run(1_000_000, 7.0, 20.0)):
        (tmp_path / f"{run.size}.json").write_text(json.dumps(asdict(run)))
    runs = load_runs(tmp_path)
    assert [r.size for r in runs] == [100_000, 1_000_000]
    fitted = slopes(runs)
    assert fitted["BM25"] == pytest.approx(2.0)
    assert fitted["SPLADE full"] == pytest.approx(10.0)
    report = write_report(tmp_path, "cmd")
    assert "| SPLADE full | 10.0 | 5.00 |" in report
    assert "| SPLADE full | 20.0 |" in report and "| 2.86 |" in report  # 20 / 7 at 1M
