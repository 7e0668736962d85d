"""The pipeline's options: the library's option groups (declared once in `splade_es.options`) plus
where to read and write. Every Beam runner option (`--runner`, `--flink_master`, ...) works beside
them. Unknown flags are refused without echoing their values (a mistyped `--es_pasword=...` must
not end up in a log)."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from splade_es.options import (
    BATCHING,
    BULK,
    CONNECTION,
    ENCODER,
    LAYOUT,
    POSITIVE,
    PRUNING,
    Opt,
)

SOURCE = (
    Opt("input", "source: BEIR JSONL or Parquet file pattern (e.g. 'corpus/*.jsonl')"),
    Opt(
        "input_format",
        "format of --input (auto: from the suffix)",
        default="auto",
        choices=("auto", "jsonl", "parquet"),
    ),
    Opt("input_index", "source: an existing index, URL/INDEX or INDEX on --es_url"),
    Opt(
        "text_fields",
        "with --input_index: the text fields to encode, comma-separated",
        default="title,text",
    ),
    Opt("slices", "sliced-scroll slices of --input_index", POSITIVE, 4),
    Opt("scroll_size", "hits per scroll page", POSITIVE, 500),
)
SINK = (
    Opt("output", "sink: file prefix ending in .parquet or .jsonl (sharded by Beam)"),
    Opt("output_index", "sink: index name (or URL/INDEX); default with --input_index: the same"),
    Opt("num_shards", "output files (default: the runner decides)", POSITIVE),
    Opt("dead_letter", "dead-letter JSONL prefix; default: <output>-dead-letter"),
    Opt("field", "SPLADE field name", default="splade"),
    Opt("field_type", "SPLADE field type", choices=("rank_features", "sparse_vector")),
    Opt("resume", "skip documents already in the index with the SPLADE field", flag=True),
    Opt("no_text", "do not carry title/text into the records", flag=True),
    Opt("progress_dir", "where sinks report counts while the run goes (for `splade-es index`)"),
)
BATCHES = (
    Opt("min_batch_size", "smallest RunInference batch", POSITIVE, 8),
    Opt("max_batch_size", "largest RunInference batch", POSITIVE, 256),
    Opt("share_model", "one model per worker machine, shared by its SDK processes", flag=True),
)
CLUSTER = tuple(
    Opt(f"es_{o.name}", o.help, o.type, o.default, o.flag, o.choices) for o in CONNECTION
)
GROUPS = (SOURCE, SINK, ENCODER, BATCHING, BATCHES, PRUNING, CLUSTER, BULK, LAYOUT)


class IndexCorpusOptions(PipelineOptions):
    """`PipelineOptions` view holding every option above."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        for group in GROUPS:
            for opt in group:
                opt.add_argparse(parser)


def option_names() -> list[str]:
    return [opt.name for group in GROUPS for opt in group]


def check_flags(argv: Sequence[str]) -> None:
    """Refuse flags neither Beam nor this pipeline knows, never showing their values."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    seen: set[type] = set()

    def add(cls: type[PipelineOptions]) -> None:
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                sub._add_argparse_args(parser)
                add(sub)

    add(PipelineOptions)
    _, unknown = parser.parse_known_args(list(argv))
    flags = [u.split("=", 1)[0] for u in unknown if u.startswith("-")]
    if not flags:
        if unknown:  # a stray value: often a password typed without its option
            raise ValueError(
                f"{len(unknown)} value(s) on the command line belong to no option (not shown: "
                "values are never echoed); put each value after its option, e.g. --name=VALUE"
            )
        return
    name = flags[0]
    known = [f"--{n}" for n in option_names()]
    close = difflib.get_close_matches(name.replace("-", "_"), known, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"unknown option {name}{hint}; values of unknown options are not shown")


def beam_args(argv: Sequence[str]) -> list[str]:
    """`argv` without this pipeline's own options: Beam's flags only, the options a runner is
    given. The pipeline's settings reach the workers inside its transforms (secrets as a file
    reference, see `splade_es.secret_files`), never as pipeline options, which Flink shows in
    its REST API and the SDK workers log and receive in `PIPELINE_OPTIONS`."""
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for group in GROUPS:
        for opt in group:
            opt.add_argparse(parser)
    _, rest = parser.parse_known_args(list(argv))
    return rest


def help_parser() -> argparse.ArgumentParser:
    """An argparse parser for `--help` (PipelineOptions itself ignores it)."""
    parser = argparse.ArgumentParser(
        prog="python -m splade_es.pipelines.index_corpus",
        description="Beam bulk indexing: read, encode with SPLADE, prune + quantize, write.",
        epilog="Any Beam pipeline option (--runner, --flink_master, ...) may be added.",
    )
    IndexCorpusOptions._add_argparse_args(parser)
    return parser
