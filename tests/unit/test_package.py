"""The package's public names resolve, and importing it stays cheap (no torch at import)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import splade_es

ROOT = Path(__file__).resolve().parents[2]


def test_public_names_resolve() -> None:
    for name in splade_es.__all__:
        assert getattr(splade_es, name).__name__ == name
    with pytest.raises(AttributeError):
        _ = splade_es.nothing_here


def test_import_does_not_load_torch() -> None:
    code = "import sys, splade_es, splade_es.cli; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def _wheel_names(project: Path, out: Path) -> set[str]:
    """The file names inside the wheel pip builds from `project` (offline: the venv's setuptools)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(project),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.slow
def test_base_wheel_carries_no_workshop(tmp_path: Path) -> None:
    """The library a production user installs has the front ends and the mapping files, and none
    of the local node / runner cluster management or the demo (those are splade-es-workshop)."""
    names = _wheel_names(ROOT, tmp_path / "base")
    assert "splade_es/pipelines/index_corpus.py" in names
    assert "splade_es/training/trainer.py" in names
    assert "splade_es/benchmarks/latency_scale.py" in names
    assert "splade_es/mapping_files/opensearch-3.json" in names
    assert not any(n.startswith(("splade_es_workshop/", "splade_es/engines/")) for n in names)
    extra = _wheel_names(ROOT / "workshop", tmp_path / "workshop")
    assert (
        "splade_es_workshop/engines/node.py" in extra
        and "splade_es_workshop/runners/poms/flink-cluster.xml" in extra
    )
    assert not any(n.startswith("splade_es/pipelines/") for n in extra)


def test_no_links_in_the_tree() -> None:
    """Front ends install through setup.cfg's package_dir, not through links a checkout without
    symlinks (or an sdist) would break."""
    tracked = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line for line in tracked if line.startswith("120000")] == []
