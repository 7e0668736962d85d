"""Apache Beam bulk indexing: read → keep last copy per id → (skip indexed) → encode → sink.

Runs unchanged on the FnApiRunner (local), Flink, Spark or Dataflow: configured through standard
`PipelineOptions` plus `pipelines.options.IndexCorpusOptions`. Example (local, 2 processes)::

    python -m splade_es.pipelines.index_corpus --runner=FnApiRunner \
        --input 'corpus/*.jsonl' --output out/encoded.parquet --dead_letter out/dead

Sources (`pipelines.read`): BEIR JSONL, Parquet, or an existing index (sliced scroll). Sinks
(`pipelines.write`): Parquet or JSONL files of encoded records, or an index. Reading an index and
writing back to it is the drop-in upgrade: only `{field: features}` is sent, as partial updates.

Nothing is lost: every record read ends up written/indexed, rejected (unreadable), a duplicate (an
earlier copy of an id), already done (`--resume`), or dead-lettered (encode failure, or the
engine's per-document reason), and the summary checks that the counts add up. Documents that fail
to encode are the run's fault, not the input's: the run then exits non-zero.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from splade_es.batch_encode import DocumentPruning, RecordPolicy
from splade_es.bulk import BulkOptions
from splade_es.client import ConnectionSettings, EngineError, connect, open_cluster, redact
from splade_es.corpus import PARQUET_MAGIC
from splade_es.encoder import EncoderSpec
from splade_es.indices import (
    IndexProfile,
    ShardLayout,
    SpladeField,
    check_index_name,
    ensure_index,
)
from splade_es.models import model_identity
from splade_es.options import bulk_options, connection_settings, shard_layout
from splade_es.records import FieldProfile, RunSummary
from splade_es.secret_files import PrivateSecrets
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

from .encode import Batching, EncodeDocuments, SpladeModelHandler
from .options import IndexCorpusOptions, beam_args, check_flags, help_parser
from .read import NAMESPACE, KeepLastCopy, ReadIndex, ReadJsonLines, ReadParquet
from .write import (
    SkipIndexed,
    WriteDeadLetters,
    WriteJsonl,
    WriteParquet,
    WriteToIndex,
)

log = logging.getLogger(__name__)


def split_index(ref: str, default_url: str) -> tuple[str, str]:
    """`http://host:9200/name` -> (url, name); a bare `name` is on `default_url`."""
    if "://" in ref:
        url, _, name = ref.rstrip("/").rpartition("/")
        if not name or "://" not in url:
            raise ValueError(f"index reference {redact(ref)!r}: expected URL/INDEX")
        return url, check_index_name(name)
    return default_url, check_index_name(ref)


def local_path(path: str | None) -> str | None:
    """A local path made absolute where the user typed it (a glob stays a glob): workers on a
    cluster run in other folders, where a relative path means something else. URLs of other
    file systems (`gs://...`) are left as they are."""
    if not path or "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def split_fields(text: str) -> tuple[str, ...]:
    """`title,text` -> ("title", "text")."""
    return tuple(f.strip() for f in text.split(",") if f.strip())


def _stem(path: str) -> str:
    for suffix in (".parquet", ".jsonl", ".json"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


@dataclass(frozen=True)
class IndexRef:
    """An index on a cluster."""

    cluster: ConnectionSettings
    name: str


def settings_from(values: dict[str, Any]) -> dict[str, Any]:
    """The plan's typed encoder, pruning, quantization, batching, bulk and layout settings from
    option values (the ENCODER, BATCHING, PRUNING, BULK and LAYOUT groups' names; the CLI's or
    the flags')."""
    batching = {f.name: values[f.name] for f in dataclasses.fields(Batching) if f.name in values}
    return {
        "encoder": EncoderSpec.from_values(values),
        "pruning": DocumentPruning(
            values["top_k"], values["max_ratio"], values["alpha_mass"], values["threshold"]
        ),
        "quantization": values["quantization"],
        "batching": Batching(**{k: v for k, v in batching.items() if v is not None}),
        "bulk": bulk_options(values),
        "layout": shard_layout(values),
    }


@dataclass(frozen=True)
class Plan:
    """What one run does, typed and checked before the pipeline is built: built by `splade-es
    index` / `upgrade` from their click values (`Plan.create`), or from the pipeline's own flags
    (`Plan.from_options`, for `python -m ...index_corpus`)."""

    source: str  # "jsonl" | "parquet" | "index"
    sink: str  # "parquet" | "jsonl" | "index"
    origin: IndexRef | None  # the index read from
    target: IndexRef | None  # the index written to
    update: bool  # partial updates {field: features} into the index read from
    dead_letter: str
    input: str | None = None  # file pattern, when reading files
    output: str | None = None  # file prefix with its suffix, when writing files
    encoder: EncoderSpec = dataclasses.field(default_factory=EncoderSpec)
    pruning: DocumentPruning = dataclasses.field(default_factory=DocumentPruning)
    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
    batching: Batching = dataclasses.field(default_factory=Batching)
    bulk: BulkOptions = dataclasses.field(default_factory=BulkOptions)
    layout: ShardLayout = dataclasses.field(default_factory=ShardLayout)  # of a new output index
    field: str = "splade"
    field_type: str | None = None
    text_fields: tuple[str, ...] = ("title", "text")
    slices: int = 4
    scroll_size: int = 500
    num_shards: int | None = None
    resume: bool = False
    keep_text: bool = True
    progress_dir: str | None = None

    @property
    def input_cluster(self) -> ConnectionSettings | None:
        return self.origin.cluster if self.origin else None

    @property
    def output_cluster(self) -> ConnectionSettings | None:
        return self.target.cluster if self.target else None

    @property
    def output_index(self) -> str | None:
        return self.target.name if self.target else None

    @classmethod
    def create(
        cls,
        cluster: ConnectionSettings,
        *,
        input: str | None = None,
        input_format: str = "auto",
        input_index: str | None = None,
        output: str | None = None,
        output_index: str | None = None,
        dead_letter: str | None = None,
        **settings: Any,
    ) -> Plan:
        """Check the combination of source and sink and resolve index references (`URL/INDEX`
        or a name on `cluster`) and formats; `settings` are the plan's other fields
        (`text_fields` may be the comma-separated text a user typed)."""
        if bool(input) == bool(input_index):
            raise ValueError("give exactly one of --input and --input_index")
        origin = target = None
        if input_index:
            url, name = split_index(input_index, cluster.url)
            origin = IndexRef(dataclasses.replace(cluster, url=url), name)
            source = "index"
        else:
            source = input_format
            if source == "auto":
                source = "parquet" if str(input).endswith(".parquet") else "jsonl"
        output_ref = output_index or (input_index if input_index and not output else None)
        if output_ref:
            if output:
                raise ValueError("give only one of --output and --output_index")
            url, name = split_index(output_ref, cluster.url)
            target = IndexRef(dataclasses.replace(cluster, url=url), name)
            sink = "index"
        elif output:
            if output.endswith(".parquet"):
                sink = "parquet"
            elif output.endswith((".jsonl", ".json")):
                sink = "jsonl"
            else:
                raise ValueError(f"--output {output!r} must end in .parquet or .jsonl")
        else:
            raise ValueError("give --output or --output_index")
        if isinstance(settings.get("text_fields"), str):  # "title,text", as typed
            settings["text_fields"] = split_fields(settings["text_fields"])
        if settings.get("resume") and sink != "index":
            raise ValueError("--resume needs an index sink (--output_index or --input_index)")
        update = origin is not None and origin == target
        if dead_letter is None:
            named = target.name if target is not None else _stem(str(output))
            dead_letter = f"{named}-dead-letter"
        return cls(source, sink, origin, target, update, dead_letter, input, output, **settings)

    @classmethod
    def from_options(cls, options: PipelineOptions) -> Plan:
        """The plan the pipeline's own flags describe."""
        o = options.view_as(IndexCorpusOptions)
        values = o.get_all_options()
        es = {k.removeprefix("es_"): v for k, v in values.items() if k.startswith("es_")}
        return cls.create(
            connection_settings(es),  # the CONNECTION group's values, as the CLI reads them
            input=o.input,
            input_format=o.input_format,
            input_index=o.input_index,
            output=o.output,
            output_index=o.output_index,
            dead_letter=o.dead_letter,
            **settings_from(values),
            field=o.field,
            field_type=o.field_type,
            text_fields=o.text_fields,
            slices=o.slices,
            scroll_size=o.scroll_size,
            num_shards=o.num_shards,
            resume=bool(o.resume),
            keep_text=not o.no_text,
            progress_dir=o.progress_dir,
        )

    def localized(self) -> Plan:
        """File paths made absolute where the user typed them (workers run elsewhere)."""
        return dataclasses.replace(
            self,
            input=local_path(self.input),
            output=local_path(self.output),
            dead_letter=str(local_path(self.dead_letter)),
            progress_dir=local_path(self.progress_dir),
        )

    def sealed(self, secrets: PrivateSecrets) -> Plan:
        """This plan with its connections' secrets moved to private files (what workers get)."""

        def seal(ref: IndexRef | None) -> IndexRef | None:
            return None if ref is None else IndexRef(ref.cluster.sealed(secrets), ref.name)

        return dataclasses.replace(self, origin=seal(self.origin), target=seal(self.target))

    def check_input(self) -> int:
        """Fail before running on what would otherwise fail inside every worker; returns how
        many files the input names (0 for an index)."""
        if self.source == "index":
            return 0
        assert self.input is not None
        matched = FileSystems.match([self.input])[0].metadata_list
        if not matched:
            raise ValueError(f"--input {self.input!r} matches no file")
        if self.source == "jsonl":
            for meta in matched:
                with FileSystems.open(meta.path) as handle:
                    if handle.read(4) == PARQUET_MAGIC:
                        raise ValueError(
                            f"{meta.path} is a Parquet file, not JSON lines: "
                            "give it a .parquet name or --input_format parquet"
                        )
        return len(matched)

    def reader(self) -> beam.PTransform:
        if self.origin is not None:
            return ReadIndex(
                self.origin.cluster,
                self.origin.name,
                self.slices,
                self.scroll_size,
                self.text_fields,
            )
        assert self.input is not None
        if self.source == "parquet":
            return ReadParquet(self.input)
        return ReadJsonLines(self.input)

    def encode(self) -> EncodeDocuments:
        """The model call (the handler loads and calls the encoder) and what becomes of each
        vector (an upgrade sends only the field: no text)."""
        policy = RecordPolicy(self.pruning, self.quantization, self.keep_text and not self.update)
        return EncodeDocuments(SpladeModelHandler(self.encoder, self.batching), policy)

    def made(self) -> FieldProfile:
        """How this run fills the field: recorded in the index, or beside the files it writes."""
        e = self.encoder
        return FieldProfile(
            model=model_identity(e.model),
            query_model=model_identity(e.query_model) if e.query_model else None,
            quantization=self.quantization,
            pruning=self.pruning.as_dict(),
            doc_max_length=e.doc_max_length,
        )

    def writer(self) -> beam.PTransform:
        if self.target is not None:
            return WriteToIndex(
                self.target.cluster,
                self.target.name,
                self.field,
                self.update,
                self.bulk,
                self.progress_dir,
            )
        assert self.output is not None
        sink = WriteParquet if self.sink == "parquet" else WriteJsonl
        return sink(_stem(self.output), self.made(), self.num_shards, self.progress_dir)


def build(pipeline: beam.Pipeline, plan: Plan) -> None:
    """Add the read → dedupe → (skip indexed) → encode → sink graph for `plan` to `pipeline`."""
    read = pipeline | "Read" >> plan.reader()
    docs = read["docs"]
    if plan.source != "index":  # an index cannot hold two documents with one id
        docs = docs | "Keep last copy" >> KeepLastCopy()
    if plan.resume and plan.target is not None:
        docs = docs | "Skip indexed" >> SkipIndexed(
            plan.target.cluster, plan.target.name, plan.field
        )
    encoded = docs | "Encode" >> plan.encode()
    dead = [read["dead"], encoded["dead"]]
    written = encoded["records"] | "Write" >> plan.writer()
    if plan.sink == "index":
        dead.append(written)
    _ = dead | "All dead letters" >> beam.Flatten() | WriteDeadLetters(plan.dead_letter)


def prepare_index(plan: Plan) -> IndexProfile | None:
    """Create (or check / extend) the output index once, before any worker starts."""
    if plan.target is None:
        return None
    client, info = open_cluster(plan.target.cluster)
    splade = SpladeField.of(plan.made())
    text_fields = None
    if plan.update:  # BM25 on an upgraded index runs on the fields that were encoded
        text_fields = plan.text_fields
    try:
        return ensure_index(
            client,
            info,
            plan.target.name,
            plan.field,
            plan.field_type,
            splade,
            text_fields,
            layout=plan.layout,
        )
    finally:
        client.close()


COUNTERS = (
    "read",
    "rejected",
    "duplicates",
    "already_done",
    "encoded",
    "written",
    "indexed",
    "dead_lettered",
)


def summarize(result: Any, seconds: float = 0.0) -> tuple[RunSummary, int]:
    """The run's counters (committed where the runner has them, else attempted), and how many
    documents failed to encode."""
    summary = RunSummary(seconds=seconds)
    failures = 0
    for item in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        name = item.key.metric.name
        value = int((item.committed if item.committed is not None else item.attempted) or 0)
        if name in COUNTERS:
            setattr(summary, name, getattr(summary, name) + value)
        elif name == "bulk_retries":
            summary.retries += value
        elif name == "encode_failures":
            failures += value
    return summary, failures


class Outcome(NamedTuple):
    """What `run_plan` returns: the summary, documents that failed to encode, and one line per
    input file that could not be read to its end (its rows are dead letters)."""

    summary: RunSummary
    failures: int
    unreadable: list[str]


def run(argv: Sequence[str] | None = None) -> RunSummary:
    """Build, run and wait for the pipeline; returns its summary."""
    return run_plan(list(argv or [])).summary


def remove_beam_temps(prefix: str | None) -> None:
    """Remove the `beam-temp-<name>-*` folders a killed run left beside a file sink's prefix
    (Beam removes them only when a run finishes). One run per output prefix at a time."""
    if not prefix or "://" in prefix:
        return
    folder, name = os.path.split(prefix)
    for path in Path(folder or ".").glob(f"beam-temp-{name}-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def unreadable_files(dead_letter: str) -> list[str]:
    """`file: unreadable after row N: reason` for each file the run could not read to its end."""
    lines = []
    for path in FileSystems.match([f"{dead_letter}-*.jsonl"])[0].metadata_list:
        with FileSystems.open(path.path) as handle:
            for raw in handle:
                letter = json.loads(raw)
                if letter.get("stage") == "read" and str(letter.get("reason", "")).startswith(
                    "unreadable file"
                ):
                    row = int(letter.get("line", 1)) - 1
                    reason = letter["reason"].removeprefix("unreadable file: ")
                    lines.append(f"{letter['source']}: unreadable after row {row}: {reason}")
    return sorted(lines)


def run_plan(argv: list[str]) -> Outcome:
    """`run`, also returning the documents that failed to encode and the unreadable files: the
    plan the pipeline's own flags describe, run with Beam's flags."""
    check_flags(argv)
    return execute(Plan.from_options(PipelineOptions(argv)), beam_args(argv))


def execute(plan: Plan, beam_argv: list[str]) -> Outcome:
    """Run `plan` on the runner that `beam_argv` (Beam's own flags only) describes.

    The runner never sees the plan's settings: they travel inside the transforms, with the
    connections' secrets in a private file removed when the run ends."""
    plan = plan.localized()
    files = plan.check_input()
    prepare_index(plan)
    sink_prefix = _stem(plan.output) if plan.output else None
    for prefix in (sink_prefix, plan.dead_letter):
        remove_beam_temps(prefix)
    started = time.monotonic()
    with PrivateSecrets() as secrets:
        pipeline = beam.Pipeline(options=PipelineOptions(beam_argv))
        build(pipeline, plan.sealed(secrets))
        result = pipeline.run()
        result.wait_until_finish()
    if plan.target is not None:
        client = connect(plan.target.cluster)
        try:
            client.indices.refresh(index=plan.target.name)
        finally:
            client.close()
    summary, failures = summarize(result, time.monotonic() - started)
    log.info("index_corpus: %s", summary.line())
    if files and summary.read == 0:
        raise ValueError(
            f"--input {plan.input!r} names {files} file(s) but nothing was read from them"
        )
    return Outcome(summary, failures, unreadable_files(plan.dead_letter))


def exit_status(summary: RunSummary, encode_failures: int) -> int:
    """0 when every record is accounted for and none failed for the pipeline's own reasons."""
    if not summary.adds_up():
        return 1
    return 1 if encode_failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: prints the summary; exit status 1 if the run lost or failed records."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        help_parser().print_help()
        return 0
    try:
        summary, failures, unreadable = run_plan(args)
    except (ValueError, EngineError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    for line in unreadable:
        print(f"warning: {line}", file=sys.stderr)
    print(summary.line())
    if failures:
        print(
            f"error: {failures} documents failed to encode (see the dead letters); "
            "fix the cause and re-run with --resume",
            file=sys.stderr,
        )
    return exit_status(summary, failures)


if __name__ == "__main__":
    sys.exit(main())
