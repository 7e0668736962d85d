"""Option groups declared once and used by every front end: the click CLI and Beam's argparse.

Each `Opt` knows its name, type (a click type that validates: ranges, finite numbers, http(s)
URLs), default and help. `click_options(GROUP)` decorates a command; `add_argparse(parser, GROUP)`
adds the same options, spelled `--snake_case` and `--kebab-case`, to a Beam options parser.
Out-of-range values fail at the edge with one line naming the option.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import click

from splade_es.models import DEFAULT_MODEL
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloat(click.ParamType):
    """A float that is finite and within bounds (click's FloatRange lets NaN through)."""

    name = "number"

    def __init__(
        self, low: float | None = None, high: float | None = None, low_open: bool = False
    ) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        too_low = self.low is not None and (
            number < self.low or (self.low_open and number == self.low)
        )
        if too_low or (self.high is not None and number > self.high):
            self.fail(f"{value!r} is not in {self.describe()}", param, ctx)
        return number

    def describe(self) -> str:
        left = "(" if self.low_open else "["
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{left}{low}, {high}]"


class ClusterUrl(click.ParamType):
    """An http(s) URL, or several comma-separated (the nodes of one cluster); credentials inside
    them are accepted but never echoed."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from splade_es.client import split_urls

        try:
            split_urls(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


class Factor(FiniteFloat):
    """A quantization factor: a finite number > 0, or 0 for none (float weights), read as None.

    The one place "0 means none" is parsed: every front end gets None, never 0."""

    name = "factor"

    def __init__(self) -> None:
        super().__init__(low=0.0)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None:
            return None
        number = super().convert(value, param, ctx)
        return None if number == 0 else number


class JsonObject(click.ParamType):
    """A JSON object given inline (e.g. an engine query for `--filter`)."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import json

        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except (TypeError, ValueError) as exc:
            self.fail(f"{str(value)[:80]!r} is not JSON ({exc})", param, ctx)
        if not isinstance(parsed, dict) or not parsed:
            self.fail(f"{str(value)[:80]!r} is not a non-empty JSON object", param, ctx)
        return parsed


POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
WEIGHT = FiniteFloat(low=0.0)
FRACTION = FiniteFloat(low=0.0, high=1.0, low_open=True)


@dataclass(frozen=True)
class Opt:
    """One option, declared once."""

    name: str
    help: str
    type: Any = str
    default: Any = None
    flag: bool = False
    choices: Sequence[str] | None = None
    aliases: tuple[str, ...] = ()

    @property
    def dashed(self) -> str:
        return "--" + self.name.replace("_", "-")

    def click_option(self) -> Callable[[F], F]:
        if self.flag:
            return click.option(self.dashed, self.name, is_flag=True, help=self.help)
        kind = click.Choice(list(self.choices)) if self.choices else self.type
        return click.option(
            self.dashed,
            *self.aliases,
            self.name,
            type=kind,
            default=self.default,
            show_default=self.default is not None,
            help=self.help,
        )

    def add_argparse(self, parser: argparse.ArgumentParser) -> None:
        flags = list(dict.fromkeys([f"--{self.name}", self.dashed]))
        if self.flag:
            parser.add_argument(
                *flags, dest=self.name, action="store_true", default=False, help=self.help
            )
            return
        parser.add_argument(
            *flags,
            dest=self.name,
            type=_argparse_type(self),
            default=self.default,
            choices=self.choices,
            help=self.help,
        )


def _argparse_type(opt: Opt) -> Callable[[str], Any]:
    kind = opt.type if isinstance(opt.type, click.ParamType) else click.types.convert_type(opt.type)

    def convert(value: str) -> Any:
        try:
            return kind.convert(value, None, None)
        except click.BadParameter as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    convert.__name__ = opt.name  # argparse names the type in its error
    return convert


def click_options(*groups: Sequence[Opt]) -> Callable[[F], F]:
    """Decorate a click command with option groups, in the order listed."""

    def decorate(func: F) -> F:
        decorated: Any = func
        for opt in reversed([opt for group in groups for opt in group]):
            decorated = opt.click_option()(decorated)
        return cast(F, decorated)

    return decorate


def add_argparse(parser: argparse.ArgumentParser, *groups: Sequence[Opt]) -> None:
    """Add option groups to an argparse parser (Beam's `_add_argparse_args`)."""
    for group in groups:
        for opt in group:
            opt.add_argparse(parser)


def pick(values: dict[str, Any], group: Sequence[Opt]) -> dict[str, Any]:
    """Pop one group's values out of a command's keyword arguments."""
    return {opt.name: values.pop(opt.name) for opt in group if opt.name in values}


ENCODER = (
    Opt("model", "Alias, local folder or Hugging Face name.", default=DEFAULT_MODEL),
    Opt("query_model", "Separate query encoder (doc/query pair models)."),
    Opt("device", "cpu, cuda, cuda:1, mps (default: the best available)."),
    Opt(
        "dtype",
        "Model weights' type (auto: bfloat16 on a GPU, float32 elsewhere; on a CPU with "
        "AMX/AVX-512 BF16, bfloat16 is 2-3x faster; int8: quantized Linear layers, CPU).",
        default="auto",
        choices=("auto", "float32", "float16", "bfloat16", "int8"),
    ),
    Opt(
        "max_tokens_per_batch",
        "Cap on tokens per model call (length-bucketed batches; GPU memory).",
        POSITIVE,
    ),
    Opt(
        "doc_max_length",
        "Document truncation in tokens (default: model settings or 256).",
        POSITIVE,
    ),
    Opt(
        "query_max_length", "Query truncation in tokens (default: model settings or 64).", POSITIVE
    ),
)

BATCHING = (
    Opt("encode_batch_size", "Texts per model call.", POSITIVE, 32, aliases=("--batch-size",)),
)

QUANTIZATION = Opt(
    "quantization",
    "Integer weights: documents get round(weight * factor), queries weight / factor; "
    "0 = float weights. Must match the index.",
    Factor(),
    DEFAULT_QUANTIZATION_FACTOR,
)

PRUNING = (
    Opt("top_k", "Keep the k heaviest terms per document.", POSITIVE),
    Opt("max_ratio", "Keep terms >= ratio * the document's largest weight.", FRACTION),
    Opt("alpha_mass", "Keep the heaviest terms holding this share of the weight mass.", FRACTION),
    Opt("threshold", "Keep terms with weight >= threshold (and always the heaviest).", WEIGHT),
    QUANTIZATION,
)

CONNECTION = (
    Opt(
        "url",
        "Cluster URL, or several comma-separated (round-robin) [env SPLADE_ES_URL; "
        "default http://127.0.0.1:9200].",
        ClusterUrl(),
    ),
    Opt(
        "sniff",
        "Find the cluster's other nodes from the first URL [env SPLADE_ES_SNIFF].",
        flag=True,
    ),
    Opt("user", "Basic-auth user [env SPLADE_ES_USER]."),
    Opt("password", "Basic-auth password [env SPLADE_ES_PASSWORD]."),
    Opt("api_key", "API key, base64 or id:key [env SPLADE_ES_API_KEY]."),
    Opt("ca_certs", "CA bundle for TLS [env SPLADE_ES_CA_CERTS]."),
    Opt("compress", "gzip request bodies (slow links; costs CPU on a local node).", flag=True),
    Opt(
        "timeout",
        "Seconds one request may take before it is retried on the next node [env "
        "SPLADE_ES_TIMEOUT; default 60].",
        FiniteFloat(low=0.0, low_open=True),
    ),
)

BULK = (
    Opt("bulk_size", "Documents per _bulk request.", POSITIVE, 500),
    Opt("bulk_bytes", "Most bytes per _bulk request (a 413 still splits it).", POSITIVE, 10 << 20),
    Opt("concurrency", "_bulk requests in flight.", POSITIVE, 2),
    Opt("max_retries", "Retries of a refused or failed _bulk before giving up.", NON_NEGATIVE, 6),
)

LAYOUT = (
    Opt("shards", "Primary shards of a new index.", POSITIVE, 1),
    Opt(
        "replicas",
        "Replicas of each shard of a new index (needs that many more nodes).",
        NON_NEGATIVE,
        0,
    ),
)


# Values -> objects (imports are lazy: torch is slow to import and the CLI starts without it) ------


def load_encoder(values: dict[str, Any]) -> Any:
    """A SpladeEncoder from ENCODER values."""
    from splade_es.encoder import EncoderSpec

    return EncoderSpec.from_values(values).load()


def connection_settings(values: dict[str, Any]) -> Any:
    """ConnectionSettings from CONNECTION values and SPLADE_ES_* environment variables."""
    from splade_es.client import ConnectionSettings

    return ConnectionSettings.from_env(
        url=values.get("url"),
        username=values.get("user"),
        password=values.get("password"),
        api_key=values.get("api_key"),
        ca_certs=values.get("ca_certs"),
        compress=bool(values.get("compress")),
        sniff=bool(values.get("sniff")) or None,
        timeout=values.get("timeout"),
    )


def shard_layout(values: dict[str, Any]) -> Any:
    """ShardLayout from LAYOUT values (an index that exists keeps its own)."""
    from splade_es.indices import ShardLayout

    return ShardLayout(values.get("shards") or 1, values.get("replicas") or 0)


def bulk_options(values: dict[str, Any]) -> Any:
    """BulkOptions from BULK values."""
    from splade_es.bulk import BulkOptions

    return BulkOptions(
        chunk_size=values["bulk_size"],
        max_chunk_bytes=values["bulk_bytes"],
        concurrency=values["concurrency"],
        max_retries=values["max_retries"],
    )


# What every command shares --------------------------------------------------------------------

QUERY_SIDE = tuple(o for o in ENCODER if o.name != "doc_max_length")
"""The encoder options a query needs (no document length)."""
DEFAULT_FIELD = "splade"


def field_option(help: str = "The SPLADE field.") -> Callable[[F], F]:
    """`--field`, declared once for every command that reads or fills a SPLADE field."""
    return click.option("--field", default=DEFAULT_FIELD, show_default=True, help=help)


def input_option(help: str) -> Callable[[F], F]:
    """`--input FILE` (an existing file, as `input_path`), for every command that reads one."""
    return click.option(
        "--input",
        "input_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help=help,
    )


def apply_all(decorators: Sequence[Callable[[Any], Any]], func: F) -> F:
    """Apply click option decorators so they appear in the listed order."""
    decorated: Any = func
    for decorator in reversed(decorators):
        decorated = decorator(decorated)
    return cast(F, decorated)


def fail(message: str) -> NoReturn:
    """Exit with a one-line error (secrets redacted) instead of a traceback."""
    from splade_es.client import redact

    raise click.ClickException(redact(" ".join(str(message).split())))


def dead_letter_note(summary: Any, path: Path) -> str:
    """Where the rejected and dead-lettered records went, when there are any."""
    return f"; see {path}" if summary.rejected or summary.dead_lettered else ""


def open_cluster_from(values: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(client, engine info, settings) from CONNECTION values (popped), or a one-line error."""
    from splade_es.client import EngineError, open_cluster

    try:
        settings = connection_settings(pick(values, CONNECTION))
        client, info = open_cluster(settings)
    except (EngineError, ValueError) as exc:
        fail(str(exc))
    return client, info, settings
