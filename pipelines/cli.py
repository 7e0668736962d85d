"""`splade-es index` and `splade-es upgrade`: the Beam pipeline as a command for users.

Beam's own INFO/WARNING lines (dozens per worker) go to a log file; the terminal shows a progress
bar with docs/s while the run goes and one summary line that adds up at the end. Options not known
here are passed to Beam unchanged (e.g. `--environment_type=PROCESS`, `--worker_accelerator=...`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, TextIO

import click
from tqdm.auto import tqdm

from splade_es.client import EngineError
from splade_es.options import (
    BATCHING,
    BULK,
    CONNECTION,
    ENCODER,
    LAYOUT,
    POSITIVE,
    PRUNING,
    click_options,
    field_option,
)

RUNNERS = ("fnapi", "flink", "spark", "dataflow", "portable")
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


def runner_args(runner: str, workers: int, flink_master: str | None) -> list[str]:
    """Beam options for the chosen runner. `flink` / `spark` without a master use the project's
    local cluster (`splade-es runner start`), started here if it is not running."""
    if runner == "fnapi":
        args = ["--runner=FnApiRunner"]
        if workers > 1:
            args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
        return args
    if runner == "flink" and flink_master:
        return [
            "--runner=FlinkRunner",
            f"--flink_master={flink_master}",
            f"--parallelism={workers}",
        ]
    if runner in ("flink", "spark"):
        from importlib import import_module

        module = import_module(f"splade_es_workshop.runners.{runner}")
        cluster = module.start(module.settings_for(workers))
        return (
            [*cluster.pipeline_args(), f"--parallelism={workers}"]
            if runner == "flink"
            else list(cluster.pipeline_args())
        )
    return [f"--runner={'DataflowRunner' if runner == 'dataflow' else 'PortableRunner'}"]


def common_options(func: Any) -> Any:
    func = click.option(
        "--runner",
        type=click.Choice(RUNNERS),
        default="fnapi",
        show_default=True,
        help="fnapi: local processes; flink: a Flink cluster (--flink-master); others via Beam options.",
    )(func)
    func = click.option("--flink-master", default=None, help="host:port of a Flink REST endpoint.")(
        func
    )
    func = click.option(
        "--workers",
        type=POSITIVE,
        default=1,
        show_default=True,
        help="Worker processes / parallelism.",
    )(func)
    func = click.option(
        "--dead-letter",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("dead-letter"),
        show_default=True,
        help="Folder for dead letters and the run's log.",
    )(func)
    func = click.option(
        "--resume", is_flag=True, help="Skip documents already in the index with the SPLADE field."
    )(func)
    return func


def run_pipeline(
    ctx: click.Context,
    where: dict[str, Any],
    values: dict[str, Any],
    runner: str,
    workers: int,
    flink_master: str | None,
    resume: bool,
    dead_letter: Path,
) -> None:
    """Build the plan (`where` it reads and writes, the typed settings of `values`), run it with
    Beam's logging in a file and a live progress bar; exit with the run's status. Only Beam's
    own flags go to the runner: the runner's, and the unknown options passed through."""
    beam_argv = [*runner_args(runner, workers, flink_master), *ctx.args]

    dead_letter.mkdir(parents=True, exist_ok=True)
    log_file = dead_letter / "run.log"
    progress_dir = Path(tempfile.mkdtemp(prefix="splade-es-progress-"))
    outcome: dict[str, Any] = {}
    with LogToFile(log_file) as terminal:
        # imported here so that Beam's import-time warnings (apitools) land in the log too
        from splade_es.options import connection_settings

        from .index_corpus import Plan, execute, settings_from
        from .options import check_flags

        def target() -> None:
            try:
                check_flags(ctx.args)
                plan = Plan.create(
                    connection_settings(values),
                    dead_letter=str(dead_letter / "dead-letter"),
                    progress_dir=str(progress_dir),
                    resume=resume,
                    **where,
                    **settings_from(values),
                )
                outcome["result"] = execute(plan, beam_argv)
            except BaseException as exc:  # reported below, in the main thread
                outcome["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        show_progress(thread, progress_dir, terminal)
        error = outcome.get("error")
        if error is not None and not isinstance(error, ValueError | EngineError):
            logging.getLogger(__name__).error("run failed", exc_info=error)
    shutil.rmtree(progress_dir, ignore_errors=True)
    report(outcome, log_file, dead_letter)


def report(outcome: dict[str, Any], log_file: Path, dead_letter: Path) -> None:
    """The run's one summary line (and what failed), then exit with its status."""
    from splade_es.client import redact

    from .index_corpus import exit_status

    error = outcome.get("error")
    if isinstance(error, ValueError | EngineError):
        raise click.ClickException(redact(str(error)))
    if error is not None:
        last = str(error).strip().splitlines()[-1:] or [type(error).__name__]
        raise click.ClickException(
            f"the run failed: {redact(last[0])[:300]} (details in {log_file})"
        )
    summary, failures, unreadable = outcome["result"]
    for line in unreadable:
        click.echo(f"warning: {redact(line)} (its rows are in the dead letters)", err=True)
    click.echo(summary.line(), err=True)
    click.echo(f"dead letters and the log are in {dead_letter}/", err=True)
    if failures:
        click.echo(
            f"error: {failures} documents failed to encode; fix and re-run with --resume", err=True
        )
    sys.exit(exit_status(summary, failures))


class LogToFile:
    """Send the run's logging, and everything written to this process's stderr file descriptor
    (worker subprocesses inherit it: Beam's harness and bulk logging), to `path`; the `with`
    value is a stream to the terminal, for the progress bar."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved_fd: int | None = None

    def __enter__(self) -> TextIO:
        handler = logging.FileHandler(self.path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        self.previous = root.handlers[:], root.level
        root.handlers, root.level = [handler], logging.INFO
        terminal: TextIO = sys.stderr
        if _fileno(sys.stderr) == 2:  # a real stderr (not a test runner's buffer)
            sys.stderr.flush()
            self.saved_fd = os.dup(2)
            terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8")
            log_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.dup2(log_fd, 2)
            os.close(log_fd)
        self.terminal = terminal
        return terminal

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        for handler in root.handlers:
            handler.close()
        root.handlers, root.level = self.previous
        if self.saved_fd is not None:
            sys.stderr.flush()
            os.dup2(self.saved_fd, 2)
            os.close(self.saved_fd)
            self.terminal.close()


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def show_progress(thread: threading.Thread, progress_dir: Path, terminal: TextIO) -> None:
    """A tqdm bar fed by the workers' progress files until the run ends."""
    from .write import read_progress

    bar = tqdm(unit="doc", desc="index", file=terminal, dynamic_ncols=True, disable=None)
    while thread.is_alive():
        thread.join(timeout=0.5)
        done = read_progress(progress_dir).get("done", 0)
        bar.update(max(0, done - bar.n))
    bar.close()


@click.command(context_settings=PASS_THROUGH)
@click_options(ENCODER, BATCHING, PRUNING, CONNECTION, BULK, LAYOUT)
@click.option("--input", "input_pattern", required=True, help="JSONL or Parquet file pattern.")
@click.option("--index", default=None, help="Index to fill (created if missing).")
@click.option("--output", default=None, help="Or: a .parquet / .jsonl file prefix for the vectors.")
@field_option()
@common_options
@click.pass_context
def index(
    ctx: click.Context,
    input_pattern: str,
    index: str | None,
    output: str | None,
    field: str,
    runner: str,
    flink_master: str | None,
    workers: int,
    dead_letter: Path,
    resume: bool,
    **values: Any,
) -> None:
    """Encode a corpus with SPLADE and index it (or write the vectors), on any Beam runner."""
    if bool(index) == bool(output):
        raise click.UsageError("give exactly one of --index and --output")
    where = {"input": input_pattern, "field": field, "output_index": index, "output": output}
    run_pipeline(ctx, where, values, runner, workers, flink_master, resume, dead_letter)


@click.command(context_settings=PASS_THROUGH)
@click_options(ENCODER, BATCHING, PRUNING, CONNECTION, BULK)
@click.option("--index", required=True, help="The existing index to add SPLADE to, in place.")
@click.option(
    "--text-fields",
    default="title,text",
    show_default=True,
    help="Comma-separated text fields to encode; BM25 searches use them afterwards.",
)
@field_option()
@click.option("--slices", type=POSITIVE, default=4, show_default=True)
@common_options
@click.pass_context
def upgrade(
    ctx: click.Context,
    index: str,
    text_fields: str,
    field: str,
    slices: int,
    runner: str,
    flink_master: str | None,
    workers: int,
    dead_letter: Path,
    resume: bool,
    **values: Any,
) -> None:
    """Drop-in upgrade: add a SPLADE field to an existing index without re-sending its text."""
    where = {"input_index": index, "text_fields": text_fields, "field": field}
    run_pipeline(
        ctx, {**where, "slices": slices}, values, runner, workers, flink_master, resume, dead_letter
    )
