"""Apache Beam bulk indexing: read → shard → encode (GPU/CPU) → prune + quantize → sink.

Runs unchanged on the FnApiRunner (local), Flink, Spark or Dataflow: everything is configured through
standard `PipelineOptions` plus :class:`IndexCorpusOptions`. Example (local, 2 worker processes)::

    python -m pipelines.index_corpus --runner=FnApiRunner \
        --input corpus.jsonl --output out/encoded.parquet --dead_letter out/dead

Sources: BEIR JSONL (`--input *.jsonl`), Parquet with `_id`/`title`/`text` columns
(`--input *.parquet`), or an existing index (`--input_index URL/INDEX`, read by sliced scroll).
Sinks: Parquet or JSONL files of encoded records (`--output PREFIX.parquet|.jsonl`), or an index
(`--output_index NAME` on `--es_url`). Reading from an index and writing back to the same index is
the drop-in upgrade: only `{field: features}` is sent, as partial `update`s, so text is not re-sent.

Nothing is lost: every record read ends up written/indexed, rejected (unparseable input, with the
file and the raw line) or dead-lettered (encode failure, or the engine's per-document reason), all
in the `--dead_letter` JSONL files, and the summary printed at the end shows that the counts add up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from opensearchpy.exceptions import ConnectionError, TransportError

from splade_es.batch_encode import DocumentPruning, encoded_record
from splade_es.client import ConnectionSettings, EngineError, connect, describe_error
from splade_es.corpus import (
    ENCODED_SCHEMA,
    Document,
    Reject,
    encoded_row,
    parse_document,
    parse_document_line,
)
from splade_es.encoder import SpladeEncoder
from splade_es.indexing import RetryPolicy, send_bulk
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

NAMESPACE = "splade_es.pipelines.index_corpus"
"""Beam metrics namespace of the pipeline's counters."""

COUNTERS = ("read", "rejected", "encoded", "written", "indexed", "dead_lettered")
DEAD = "dead_letter"
"""Tag of the dead-letter outputs."""

log = logging.getLogger(__name__)


# Options ----------------------------------------------------------------------------------------


class IndexCorpusOptions(PipelineOptions):
    """The pipeline's own options; every runner option (`--runner`, ...) works beside them."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        def add(flag: str, **kwargs: Any) -> None:
            """`--some_option`, also spelled `--some-option`."""
            dashed = flag.replace("_", "-")
            flags = [flag] if dashed == flag else [flag, dashed]
            parser.add_argument(*flags, dest=flag[2:], **kwargs)

        src = "source (exactly one): "
        add("--input", help=src + "BEIR JSONL or Parquet file pattern")
        add(
            "--input_format",
            choices=["auto", "jsonl", "parquet"],
            default="auto",
            help="format of --input (auto: from the suffix)",
        )
        add("--input_index", help=src + "an existing index, URL/INDEX or INDEX on --es_url")
        add("--slices", type=int, default=4, help="sliced-scroll slices")
        add("--scroll_size", type=int, default=500, help="hits per scroll page")
        add("--output", help="sink: file prefix ending in .parquet or .jsonl (sharded by Beam)")
        add(
            "--output_index",
            help="sink: index name (or URL/INDEX); default with --input_index: the same index",
        )
        add("--num_shards", type=int, default=0, help="output files (0: runner)")
        add(
            "--dead_letter",
            help="dead-letter JSONL prefix (rejects and failures); default: <output>-dead-letter",
        )
        # engine connection: secrets are better passed as SPLADE_ES_* environment variables
        # (read when the pipeline is built); pipeline options may be shown in runner UIs.
        add("--es_url", help="cluster URL [env SPLADE_ES_URL]")
        add("--es_user", help="basic-auth user [env SPLADE_ES_USER]")
        add("--es_password", help="basic-auth password [env SPLADE_ES_PASSWORD]")
        add("--es_api_key", help="API key [env SPLADE_ES_API_KEY]")
        add("--es_ca_certs", help="CA bundle [env SPLADE_ES_CA_CERTS]")
        add("--field", default="splade", help="SPLADE field name")
        add("--field_type", choices=["rank_features", "sparse_vector"], default=None)
        add("--bulk_size", type=int, default=500, help="docs per _bulk request")
        add("--max_retries", type=int, default=6)
        add("--backoff_s", type=float, default=0.5)
        # model
        add("--model", default="splade-tiny", help="alias, folder or HF name")
        add("--device", default=None, help="cpu, cuda, cuda:1 (default: best)")
        add("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
        add("--doc_max_length", type=int, default=None)
        add("--encode_batch_size", type=int, default=32, help="model batch size")
        add("--min_batch_size", type=int, default=8, help="RunInference batches")
        add("--max_batch_size", type=int, default=256, help="RunInference batches")
        add(
            "--share_model",
            action="store_true",
            default=False,
            help="one model per worker machine shared by its SDK processes",
        )
        # pruning + quantization
        add("--top_k", type=int, default=None)
        add("--max_ratio", type=float, default=None)
        add("--alpha_mass", type=float, default=None)
        add("--threshold", type=float, default=None)
        add(
            "--quantization",
            type=float,
            default=DEFAULT_QUANTIZATION_FACTOR,
            help="weight * factor, rounded (0: keep float weights)",
        )
        add("--no_text", action="store_true", default=False, help="do not carry title/text")


def _split_index(ref: str, default_url: str) -> tuple[str, str]:
    """`http://host:9200/name` -> (url, name); a bare `name` is on `default_url`."""
    if "://" in ref:
        url, _, name = ref.rstrip("/").rpartition("/")
        if not name or "://" not in url:
            raise ValueError(f"index reference {ref!r}: expected URL/INDEX")
        return url, name
    return default_url, ref


@dataclass(frozen=True)
class Plan:
    """What one run does, resolved from the options before the pipeline is built."""

    options: IndexCorpusOptions
    source: str  # "jsonl" | "parquet" | "index"
    sink: str  # "parquet" | "jsonl" | "index"
    input_cluster: ConnectionSettings | None
    input_index: str | None
    output_cluster: ConnectionSettings | None
    output_index: str | None
    update: bool  # partial updates {field: features} into the index read from
    dead_letter: str

    @classmethod
    def from_options(cls, options: PipelineOptions) -> Plan:
        """Check the options' combination and resolve URLs, credentials and formats."""
        opts = options.view_as(IndexCorpusOptions)
        if bool(opts.input) == bool(opts.input_index):
            raise ValueError("give exactly one of --input and --input_index")
        settings = ConnectionSettings.from_env(
            url=opts.es_url,
            username=opts.es_user,
            password=opts.es_password,
            api_key=opts.es_api_key,
            ca_certs=opts.es_ca_certs,
        )
        input_cluster = input_index = None
        if opts.input_index:
            url, input_index = _split_index(opts.input_index, settings.url)
            input_cluster = dataclasses.replace(settings, url=url)
            source = "index"
        else:
            source = opts.input_format
            if source == "auto":
                source = "parquet" if opts.input.endswith(".parquet") else "jsonl"
        output_cluster = output_index = None
        output_ref = opts.output_index or (
            opts.input_index if opts.input_index and not opts.output else None
        )
        if output_ref:
            if opts.output:
                raise ValueError("give only one of --output and --output_index")
            url, output_index = _split_index(output_ref, settings.url)
            output_cluster = dataclasses.replace(settings, url=url)
            sink = "index"
        elif opts.output:
            if opts.output.endswith(".parquet"):
                sink = "parquet"
            elif opts.output.endswith((".jsonl", ".json")):
                sink = "jsonl"
            else:
                raise ValueError(f"--output {opts.output!r} must end in .parquet or .jsonl")
        else:
            raise ValueError("give --output or --output_index")
        update = (
            sink == "index"
            and source == "index"
            and (input_cluster, input_index) == (output_cluster, output_index)
        )
        dead_letter = opts.dead_letter or (
            f"{_stem(opts.output)}-dead-letter" if opts.output else f"{output_index}-dead-letter"
        )
        return cls(
            opts,
            source,
            sink,
            input_cluster,
            input_index,
            output_cluster,
            output_index,
            update,
            dead_letter,
        )

    @property
    def pruning(self) -> DocumentPruning:
        o = self.options
        return DocumentPruning(o.top_k, o.max_ratio, o.alpha_mass, o.threshold)


def _stem(path: str) -> str:
    for suffix in (".parquet", ".jsonl", ".json"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def _count(name: str) -> Any:
    return Metrics.counter(NAMESPACE, name)


# Read -------------------------------------------------------------------------------------------


class ParseJsonLines(beam.DoFn):
    """(file name, line) -> Document; bad lines -> `rejected` Reject dicts (file, raw line, reason).

    Beam's text source has no line numbers (splits start mid-file), so a reject names its file and
    carries the raw line; its `line` is 0 ("unknown").
    """

    REJECTED = "rejected"

    def __init__(self) -> None:
        self.read = _count("read")
        self.rejected = _count("rejected")

    def process(self, element: tuple[str, str]) -> Iterator[Any]:
        filename, line = element
        if not line.strip():  # as read_documents: blank lines are not records
            return
        self.read.inc()
        try:
            yield parse_document_line(line)
        except ValueError as exc:
            self.rejected.inc()
            yield beam.pvalue.TaggedOutput(
                self.REJECTED, _reject(Reject(filename, 0, str(exc), line.rstrip("\n")))
            )


class ParseRows(beam.DoFn):
    """Parquet rows / index hits (`{_id, title, text}`) -> Document; bad ones -> `rejected`."""

    REJECTED = "rejected"

    def __init__(self, source: str) -> None:
        self.source = source
        self.read = _count("read")
        self.rejected = _count("rejected")

    def process(self, row: dict[str, Any]) -> Iterator[Any]:
        self.read.inc()
        try:
            yield parse_document(row)
        except ValueError as exc:
            self.rejected.inc()
            raw = json.dumps(row, ensure_ascii=False, default=str)
            yield beam.pvalue.TaggedOutput(
                self.REJECTED, _reject(Reject(self.source, 0, str(exc), raw))
            )


def _reject(reject: Reject) -> dict[str, Any]:
    return {"stage": "read", **reject.as_json()}


class ScrollSlice(beam.DoFn):
    """One slice of a sliced scroll over an index -> `{_id, title, text}` rows.

    The slices are the elements of a `beam.Create`, so a runner reads them in parallel.
    """

    def __init__(
        self, settings: ConnectionSettings, index: str, slices: int, page_size: int
    ) -> None:
        self.settings = settings
        self.index = index
        self.slices = slices
        self.page_size = page_size
        self.client: Any = None

    def setup(self) -> None:
        self.client = connect(self.settings)

    def process(self, slice_id: int) -> Iterator[dict[str, Any]]:
        body: dict[str, Any] = {
            "size": self.page_size,
            "_source": ["title", "text"],
            "sort": ["_doc"],
            "query": {"match_all": {}},
        }
        if self.slices > 1:
            body["slice"] = {"id": slice_id, "max": self.slices}
        try:
            page = self.client.search(index=self.index, body=body, scroll="5m")
            scroll_id = page.get("_scroll_id")
            try:
                while hits := page["hits"]["hits"]:
                    for hit in hits:
                        yield {"_id": hit["_id"], **(hit.get("_source") or {})}
                    page = self.client.scroll(scroll_id=scroll_id, scroll="5m")
                    scroll_id = page.get("_scroll_id", scroll_id)
            finally:
                if scroll_id:
                    self.client.clear_scroll(scroll_id=scroll_id, ignore=(404,))
        except (TransportError, ConnectionError) as exc:  # one line; the runner retries the slice
            raise EngineError(describe_error(exc, f"scroll {self.index!r}")) from exc


# Encode -----------------------------------------------------------------------------------------


class SpladeModelHandler(ModelHandler[Document, dict[str, Any], SpladeEncoder]):
    """RunInference handler: loads a SpladeEncoder, turns Documents into encoded records.

    The records are exactly `splade_es.batch_encode.encoded_record`'s (pruned, quantized), so the
    pipeline and `splade-es encode` write the same features for the same document.
    """

    def __init__(
        self,
        model: str = "splade-tiny",
        device: str | None = None,
        dtype: str = "float32",
        doc_max_length: int | None = None,
        pruning: DocumentPruning = DocumentPruning(),
        quantization: float | None = DEFAULT_QUANTIZATION_FACTOR,
        keep_text: bool = True,
        encode_batch_size: int = 32,
        min_batch_size: int = 8,
        max_batch_size: int = 256,
        share_model: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.device = device
        self.dtype = dtype
        self.doc_max_length = doc_max_length
        self.pruning = pruning
        self.quantization = quantization or None
        self.keep_text = keep_text
        self.encode_batch_size = encode_batch_size
        self.min_batch_size = min_batch_size
        self.max_batch_size = max_batch_size
        self.share_model = share_model

    def load_model(self) -> SpladeEncoder:
        """Load the model once per worker process (or machine, with `share_model`)."""
        return SpladeEncoder.load(
            self.model, device=self.device, dtype=self.dtype, doc_max_length=self.doc_max_length
        )

    def run_inference(
        self,
        batch: Sequence[Document],
        model: SpladeEncoder,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[dict[str, Any]]:
        """Encode a batch (length-sorted inside the encoder) into encoded records."""
        vectors = model.encode_documents(
            [doc.full_text for doc in batch], batch_size=self.encode_batch_size
        )
        return [
            encoded_record(doc, vector, self.pruning, self.quantization, self.keep_text)
            for doc, vector in zip(batch, vectors, strict=True)
        ]

    def get_num_bytes(self, batch: Sequence[Document]) -> int:
        return sum(len(doc.title) + len(doc.text) for doc in batch)

    def get_metrics_namespace(self) -> str:
        return "SpladeModelHandler"

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def share_model_across_processes(self) -> bool:
        return self.share_model


def _failed_batch(element: tuple[Sequence[Document], tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    """A batch the model failed on -> one dead-letter entry per document.

    RunInference's dead-letter elements are `(batch, (exception type, repr(exception), traceback))`.
    """
    batch, (_, error, _) = element
    counter = _count("dead_lettered")
    for doc in batch:
        counter.inc()
        yield {
            "stage": "encode",
            "id": doc.id,
            "reason": f"encode failed: {error}",
            "record": {"id": doc.id, "title": doc.title, "text": doc.text},
        }


class CountEncoded(beam.DoFn):
    """Pass records through, counting them."""

    def __init__(self) -> None:
        self.encoded = _count("encoded")

    def process(self, record: dict[str, Any]) -> Iterator[dict[str, Any]]:
        self.encoded.inc()
        yield record


# Sinks ------------------------------------------------------------------------------------------


def parquet_row(record: dict[str, Any]) -> dict[str, Any]:
    """An encoded record as a row of `ENCODED_SCHEMA` (features as a map's key/value pairs)."""
    _count("written").inc()
    return encoded_row(record)


def json_line(record: dict[str, Any]) -> str:
    """An encoded record as one JSONL line (what `EncodedWriter` writes for `.jsonl`)."""
    _count("written").inc()
    return json.dumps(record, ensure_ascii=False)


class WriteToIndex(beam.DoFn):
    """Bulk-index encoded records; per-document failures go to the `dead_letter` output.

    The client is made in `setup()` (once per DoFn instance), records are buffered in `process`
    and sent in `bulk_size` batches, the rest in `finish_bundle`. `_id` = document id.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        index: str,
        field: str = "splade",
        update: bool = False,
        bulk_size: int = 500,
        max_retries: int = 6,
        backoff_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.index = index
        self.field = field
        self.update = update
        self.bulk_size = bulk_size
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.client: Any = None
        self.buffer: list[dict[str, Any]] = []
        self.indexed = _count("indexed")
        self.dead_lettered = _count("dead_lettered")
        self.retries = _count("bulk_retries")

    def setup(self) -> None:
        self.client = connect(self.settings)

    def start_bundle(self) -> None:
        self.buffer = []

    def _flush(self) -> list[dict[str, Any]]:
        records, self.buffer = self.buffer, []
        if not records:
            return []
        outcome = send_bulk(
            self.client,
            records,
            self.index,
            self.field,
            action="update" if self.update else "index",
            policy=RetryPolicy(self.max_retries, self.backoff_s),
        )
        dead = [{"stage": "index", **entry} for entry in outcome.dead]
        self.indexed.inc(outcome.indexed)
        self.dead_lettered.inc(len(dead))
        self.retries.inc(outcome.retries)
        return dead

    def process(self, record: dict[str, Any]) -> Iterator[Any]:
        self.buffer.append(record)
        if len(self.buffer) >= self.bulk_size:
            for entry in self._flush():
                yield beam.pvalue.TaggedOutput(DEAD, entry)

    def finish_bundle(self) -> Iterator[Any]:
        for entry in self._flush():
            yield beam.pvalue.TaggedOutput(
                DEAD, WindowedValue(entry, MIN_TIMESTAMP, (GlobalWindow(),))
            )

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close()


# Pipeline ---------------------------------------------------------------------------------------


def build(pipeline: beam.Pipeline, plan: Plan) -> None:
    """Add the read → shard → encode → sink graph for `plan` to `pipeline`."""
    opts = plan.options
    dead: list[beam.PCollection] = []
    if plan.source == "jsonl":
        parsed = (
            pipeline
            | "Read JSONL" >> beam.io.ReadFromTextWithFilename(opts.input)
            | "Parse"
            >> beam.ParDo(ParseJsonLines()).with_outputs(ParseJsonLines.REJECTED, main="docs")
        )
    else:
        if plan.source == "parquet":
            rows = pipeline | "Read Parquet" >> beam.io.ReadFromParquet(
                opts.input, columns=["_id", "title", "text"]
            )
            where = opts.input
        else:
            assert plan.input_cluster is not None and plan.input_index is not None
            rows = (
                pipeline
                | "Slices" >> beam.Create(list(range(max(1, opts.slices))))
                | "Spread slices" >> beam.Reshuffle()
                | "Scroll"
                >> beam.ParDo(
                    ScrollSlice(plan.input_cluster, plan.input_index, opts.slices, opts.scroll_size)
                )
            )
            where = f"{plan.input_cluster.url}/{plan.input_index}"
        parsed = rows | "Parse" >> beam.ParDo(ParseRows(where)).with_outputs(
            ParseRows.REJECTED, main="docs"
        )
    dead.append(parsed[ParseJsonLines.REJECTED])

    handler = SpladeModelHandler(
        model=opts.model,
        device=opts.device,
        dtype=opts.dtype,
        doc_max_length=opts.doc_max_length,
        pruning=plan.pruning,
        quantization=opts.quantization,
        keep_text=not (opts.no_text or plan.update),
        encode_batch_size=opts.encode_batch_size,
        min_batch_size=opts.min_batch_size,
        max_batch_size=opts.max_batch_size,
        share_model=opts.share_model,
    )
    encoded, failed = (
        parsed["docs"]
        | "Shard" >> beam.Reshuffle()
        | "Encode" >> RunInference(handler).with_exception_handling()
    )
    dead.append(failed.failed_inferences | "Encode failures" >> beam.FlatMap(_failed_batch))
    records = encoded | "Count encoded" >> beam.ParDo(CountEncoded())

    shards = opts.num_shards
    if plan.sink == "parquet":
        _ = (
            records
            | "To rows" >> beam.Map(parquet_row)
            | "Write Parquet"
            >> beam.io.WriteToParquet(
                _stem(opts.output),
                schema=ENCODED_SCHEMA,
                file_name_suffix=".parquet",
                num_shards=shards,
            )
        )
    elif plan.sink == "jsonl":
        _ = (
            records
            | "To JSON" >> beam.Map(json_line)
            | "Write JSONL"
            >> beam.io.WriteToText(_stem(opts.output), file_name_suffix=".jsonl", num_shards=shards)
        )
    else:
        assert plan.output_cluster is not None and plan.output_index is not None
        sent = records | "Index" >> beam.ParDo(
            WriteToIndex(
                plan.output_cluster,
                plan.output_index,
                opts.field,
                update=plan.update,
                bulk_size=opts.bulk_size,
                max_retries=opts.max_retries,
                backoff_s=opts.backoff_s,
            )
        ).with_outputs(DEAD, main="indexed")
        dead.append(sent[DEAD])

    _ = (
        dead
        | "All dead letters" >> beam.Flatten()
        | "Dead to JSON" >> beam.Map(lambda e: json.dumps(e, ensure_ascii=False, default=str))
        | "Write dead letters"
        >> beam.io.WriteToText(plan.dead_letter, file_name_suffix=".jsonl", num_shards=1)
    )


def prepare_index(plan: Plan) -> str | None:
    """Create (or check / extend) the output index once, before any worker starts."""
    if plan.sink != "index":
        return None
    from splade_es.client import open_cluster
    from splade_es.indexing import ensure_index

    assert plan.output_cluster is not None and plan.output_index is not None
    client, info = open_cluster(plan.output_cluster)
    try:
        return ensure_index(
            client, info, plan.output_index, plan.options.field, plan.options.field_type
        )
    finally:
        client.close()


@dataclass
class Summary:
    """The run's counters: `read == written + indexed + rejected + dead_lettered`."""

    read: int = 0
    rejected: int = 0
    encoded: int = 0
    written: int = 0
    indexed: int = 0
    dead_lettered: int = 0
    bulk_retries: int = 0
    seconds: float = 0.0

    def adds_up(self) -> bool:
        return self.read == self.written + self.indexed + self.rejected + self.dead_lettered

    def line(self) -> str:
        return (
            f"read {self.read}: written {self.written}, indexed {self.indexed}, "
            f"rejected {self.rejected}, dead-lettered "
            f"{self.dead_lettered} (encoded {self.encoded}, {self.bulk_retries} bulk retries, "
            f"{self.seconds:.1f}s){'' if self.adds_up() else '  COUNTS DO NOT ADD UP'}"
        )


def summarize(result: Any, seconds: float = 0.0) -> Summary:
    """Read the pipeline's counters (committed where the runner has them, else attempted)."""
    summary = Summary(seconds=seconds)
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    for counter in counters:
        name = counter.key.metric.name
        if hasattr(summary, name):
            value = counter.committed if counter.committed is not None else counter.attempted
            setattr(summary, name, getattr(summary, name) + int(value or 0))
    return summary


def run(argv: Sequence[str] | None = None) -> Summary:
    """Build, run and wait for the pipeline; returns (and logs) its summary."""
    options = PipelineOptions(argv)
    plan = Plan.from_options(options)
    prepare_index(plan)
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    build(pipeline, plan)
    result = pipeline.run()
    result.wait_until_finish()
    if plan.sink == "index":
        assert plan.output_cluster is not None
        client = connect(plan.output_cluster)
        try:
            client.indices.refresh(index=plan.output_index)
        finally:
            client.close()
    summary = summarize(result, time.monotonic() - started)
    log.info("index_corpus: %s", summary.line())
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: prints the summary; exit status 1 if the counts do not add up."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:  # PipelineOptions itself ignores --help
        parser = argparse.ArgumentParser(
            prog="python -m pipelines.index_corpus",
            description=__doc__.split("\n\n")[0] if __doc__ else None,
            epilog="Any Beam pipeline option (--runner, --num_workers, ...) may be added.",
        )
        IndexCorpusOptions._add_argparse_args(parser)
        parser.print_help()
        return 0
    try:
        summary = run(args)
    except (ValueError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.line())
    return 0 if summary.adds_up() else 1


if __name__ == "__main__":
    sys.exit(main())
