"""Encode the 666k Wikipedia passages once, resumably, as real distractors for the scale benchmark.

On two CPU cores the whole corpus takes about an hour in bfloat16, so the work is cut into parts of
`--part-size` passages, each encoded with the library's `encode_file` into its own Parquet file
(vectors, text, profile and DF sidecars) in a cache folder outside the repository. A part is
written atomically; a killed run restarts at the first missing part. `progress.jsonl` in the cache
records each part's seconds and docs/s, so the throughput is measured on the run that made them.

    python -m splade_es.benchmarks.distractors              # everything (resumes)
    python -m splade_es.benchmarks.distractors --parts 4    # the first 4 parts only

The judged collections that go inside the distractors (SciFact, NFCorpus) are encoded the same way
(`--collections`), with the same model and dtype, so one mixed index has one kind of vector.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path

from splade_es.corpus import read_encoded
from splade_es.records import DeadLetter, EncodedRecord

from . import paths
from .synthetic import Recombiner

WIKIPEDIA = paths.DATASETS / "wikipedia2015-passages" / "corpus.jsonl.gz"
CACHE = (
    Path(os.environ.get("SPLADE_ES_CACHE", Path.home() / ".cache" / "splade-es")) / "distractors"
)
PART_SIZE = 25_000
COLLECTIONS = ("scifact", "nfcorpus")


def part_path(cache: Path, index: int) -> Path:
    return cache / f"wikipedia-{index:03d}.parquet"


def wikipedia_parts(source: Path, size: int) -> Iterator[list[str]]:
    """The gzip corpus as lists of raw JSON lines, `size` at a time (streamed, never all in memory)."""
    with gzip.open(source, "rt", encoding="utf-8") as lines:
        while part := list(islice(lines, size)):
            yield part


def encoded_parts(cache: Path) -> list[Path]:
    """The parts already finished, in corpus order (a part exists only once fully written)."""
    return sorted(p for p in cache.glob("wikipedia-*.parquet") if finished(p))


def finished(output: Path) -> bool:
    """encode_file writes the profile last: a file without one is from a killed run."""
    from splade_es.records import FieldProfile

    return FieldProfile.path_for(output).exists()


@dataclass
class MixedCorpus:
    """A judged collection inside real distractors: the collection's documents first, then the
    encoded Wikipedia passages in corpus order, then (past the passages) documents spliced from
    the collection (`synthetic.Recombiner`), so any size can be asked for and the report says
    how many of each it holds. The collection's qrels still judge the mixed corpus: a passage is
    an unjudged document, like any unjudged document of the collection."""

    real: Sequence[EncodedRecord]
    parts: Sequence[Path]

    def documents(self, size: int) -> Iterator[EncodedRecord]:
        yield from self.real[:size]
        left = size - len(self.real)
        for part in self.parts:
            if left <= 0:
                return
            for _, item in read_encoded(part):
                if isinstance(item, DeadLetter):
                    continue
                yield item
                left -= 1
                if left == 0:
                    return
        if left > 0:  # more than the passages: the rest spliced from the collection
            spliced = Recombiner(self.real).documents(len(self.real) + left)
            yield from islice(spliced, len(self.real), None)

    def makeup(self, size: int) -> dict[str, int]:
        """How many judged, Wikipedia and spliced documents a corpus of `size` holds."""
        judged = min(size, len(self.real))
        passages = min(size - judged, self.passages)
        return {"judged": judged, "wikipedia": passages, "spliced": size - judged - passages}

    @cached_property
    def passages(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts)

    @classmethod
    def load(cls, collection: Path, cache: Path = CACHE) -> MixedCorpus:
        """`collection`: the judged collection encoded (e.g. `<cache>/scifact.parquet`). Only
        passages encoded as the collection was (`FieldProfile.clashes_with`: the same model and
        quantization) join it; a corpus of another model is spliced past its judged documents
        (the report's makeup says so) rather than scored against vectors of another model."""
        from splade_es.records import FieldProfile

        from .synthetic import load_real

        made = FieldProfile.read(collection) or FieldProfile()
        parts: list[Path] = []
        clashes: list[str] = []
        for part in encoded_parts(cache):
            clash = made.clashes_with(FieldProfile.read(part) or FieldProfile())
            if clash:
                clashes.append(clash)
            else:
                parts.append(part)
        if clashes:
            print(f"{len(clashes)} encoded passage parts not used: {clashes[0]}", file=sys.stderr)
        return cls(load_real(collection), parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--source", type=Path, default=WIKIPEDIA)
    parser.add_argument("--part-size", type=int, default=PART_SIZE)
    parser.add_argument("--parts", type=int, default=None, help="Stop after this many parts.")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--doc-max-length", type=int, default=256)
    parser.add_argument("--collections", nargs="*", default=list(COLLECTIONS))
    parser.add_argument("--model", default=None, help="Encoder (default: splade-tiny); another "
                        "model needs its own --cache.")  # fmt: skip
    args = parser.parse_args(argv)

    from splade_es.batch_encode import encode_file
    from splade_es.encoder import SpladeEncoder
    from splade_es.models import DEFAULT_MODEL, model_identity
    from splade_es.records import FieldProfile

    if not args.source.exists():
        print(f"--source {args.source}: not found", file=sys.stderr)
        return 2
    model = args.model or DEFAULT_MODEL
    for done_part in encoded_parts(args.cache) if args.cache.is_dir() else []:
        made = (FieldProfile.read(done_part) or FieldProfile()).model
        if made not in (None, model_identity(model)):
            print(f"--cache {args.cache} holds passages of {made}: give {model} its own --cache",
                  file=sys.stderr)  # fmt: skip
            return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    encoder = SpladeEncoder.load(model, dtype=args.dtype, doc_max_length=args.doc_max_length)
    progress = args.cache / "progress.jsonl"

    def encode(name: str, input_path: Path, output: Path) -> None:
        start = time.perf_counter()
        written, stats = encode_file(encoder, model, input_path, output)
        seconds = time.perf_counter() - start
        line = {
            "part": name,
            "docs": written,
            "rejected": len(stats.rejected),
            "seconds": round(seconds, 1),
        }
        line["docs_per_s"] = round(written / seconds, 1)
        with progress.open("a") as out:
            out.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)

    for name in args.collections:
        output = args.cache / f"{name}.parquet"
        if not finished(output):
            encode(name, paths.DATASETS / name / "corpus.jsonl", output)

    for index, lines in enumerate(wikipedia_parts(args.source, args.part_size)):
        if args.parts is not None and index >= args.parts:
            break
        output = part_path(args.cache, index)
        if finished(output):
            continue
        chunk = args.cache / f"wikipedia-{index:03d}.input.jsonl"
        chunk.write_text("".join(lines), encoding="utf-8")
        try:
            encode(f"wikipedia-{index:03d}", chunk, output)
        finally:
            chunk.unlink(missing_ok=True)
    done = encoded_parts(args.cache)
    print(f"{len(done)} Wikipedia parts encoded in {args.cache}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
