"""Fetch Maven artifacts into the engine cache, each one verified by SHA-1.

Why: CI machines have Java and a Maven repository, nothing else. Artifacts come through Maven's own
client (``mvn dependency:copy``), so a user's ``settings.xml`` mirrors, proxies and credentials
apply; or, when ``SPLADE_ES_MAVEN_REPO`` names a repository root URL (``https://``, ``file://``),
over plain HTTP from there. Every file is checked against the repository's ``.sha1`` (Maven runs
with strict checksums and the ``.sha1`` it stored in its local repository is compared again) or,
for artifacts published without one (plugin zips, Elasticsearch 9.x zips), a SHA-1 pinned in
:data:`PINNED_SHA1`. A cached file is re-verified on every use and fetched again if it changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from splade_es.files import write_atomically

from .spec import LauncherError, cache_dir

REPO_ENV = "SPLADE_ES_MAVEN_REPO"

# Artifacts published without a .sha1 (and without a .pom); hashes of downloads that agreed twice.
PINNED_SHA1: dict[str, str] = {
    "elasticsearch-9.2.4.zip": "54ca6e33db3623ecf3bed523f9b5c494993ff692",
    "neural-search-2.19.6.0.zip": "49882bec3918169127e224ade10f4f5d965fdc53",
    "opensearch-knn-2.19.6.0.zip": "3f9fcc3784f9a731912e651d4926626695132eaf",
    "opensearch-job-scheduler-2.19.6.0.zip": "758627d8b74a0eb4198e80756ba4204390f66f7e",
    "opensearch-ml-plugin-2.19.6.0.zip": "19b4355396d3df2ceb56776cef4af54705d7366a",
    "neural-search-3.6.0.0.zip": "8bc15fe12b8cf7bd6bc8138e0ab0666b05940c36",
    "opensearch-knn-3.6.0.0.zip": "a5341366a870baf34bc405602bbb6b6530157697",
    "opensearch-job-scheduler-3.6.0.0.zip": "32b2bf420ffbd66efa06d82bbe4e387dd71c1bae",
    "opensearch-ml-plugin-3.6.0.0.zip": "5209040092476760abd056c2aa3f79cc335a7649",
}


@dataclass(frozen=True)
class Artifact:
    """One Maven artifact (``group:artifact:version`` with a packaging extension)."""

    group: str
    artifact: str
    version: str
    ext: str = "jar"

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}:{self.ext}"

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.{self.ext}"

    @property
    def repository_path(self) -> str:
        """Path below a repository root, in Maven's layout."""
        return f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"

    @property
    def pinned_sha1(self) -> str | None:
        return PINNED_SHA1.get(self.filename)


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_path(artifact: Artifact) -> Path:
    """Where the verified file lives in the cache (its expected SHA-1 sits beside it)."""
    return cache_dir() / "downloads" / f"{artifact.group}__{artifact.filename}"


def fetch(artifact: Artifact) -> Path:
    """The artifact's file in the cache, fetched (and verified) if missing or changed."""
    dest = cached_path(artifact)
    checksum_file = dest.with_name(dest.name + ".sha1")
    if dest.is_file():
        expected = artifact.pinned_sha1 or _read_sha1(checksum_file)
        if expected is not None and sha1_of(dest) == expected:
            return dest
        # changed on disk (or cached by an older launcher without its checksum): fetch again
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        root = os.environ.get(REPO_ENV)
        if root:
            got, expected = _fetch_http(artifact, root.rstrip("/"), Path(tmp))
        else:
            got, expected = _fetch_maven(artifact, Path(tmp))
        actual = sha1_of(got)
        if actual != expected:
            raise LauncherError(
                f"checksum mismatch for {artifact.coordinates}: sha1 {actual}, expected {expected}"
            )
        write_atomically(checksum_file, expected + "\n")
        got.replace(dest)
    return dest


def _read_sha1(path: Path) -> str | None:
    """The hex digest from a ``.sha1`` file (which may carry a file name after it)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    match = re.match(r"\s*([0-9a-fA-F]{40})\b", text)
    return match.group(1).lower() if match else None


# --------------------------------------------------------------------------- plain HTTP


def _fetch_http(artifact: Artifact, root: str, tmp: Path) -> tuple[Path, str]:
    url = f"{root}/{artifact.repository_path}"
    expected = artifact.pinned_sha1
    if expected is None:
        sha1_file = tmp / "expected.sha1"
        try:
            _download(url + ".sha1", sha1_file)
        except LauncherError as exc:
            raise LauncherError(
                f"no checksum for {artifact.coordinates} ({exc}): pin its SHA-1 in PINNED_SHA1"
            ) from None
        expected = _read_sha1(sha1_file)
        if expected is None:
            raise LauncherError(f"unreadable checksum {url}.sha1")
    target = tmp / artifact.filename
    _download(url, target)
    return target, expected


def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, target.open("wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except urllib.error.HTTPError as exc:
        raise LauncherError(f"download failed: {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LauncherError(f"download failed: {url}: {reason}") from exc


# --------------------------------------------------------------------------- Maven


def _fetch_maven(artifact: Artifact, tmp: Path) -> tuple[Path, str]:
    """``mvn dependency:copy`` into ``tmp``; the expected SHA-1 is pinned or Maven's ``.sha1``.

    Artifacts with a published ``.sha1`` are fetched with strict checksums (a mismatch or a
    missing ``.sha1`` fails the download); pinned ones without (Maven would refuse them, as they
    have no ``.sha1``), and are checked against the pin instead.
    """
    pinned = artifact.pinned_sha1
    res = _run_maven(
        [
            *([] if pinned else ["--strict-checksums"]),
            "dependency:copy",
            f"-Dartifact={artifact.coordinates}",
            f"-DoutputDirectory={tmp}",
            "-Dmdep.overWriteReleases=true",
        ],
        tmp,
    )
    got = tmp / artifact.filename
    if res.returncode != 0 or not got.is_file():
        reason = _maven_error(res.stdout + res.stderr)
        if "no checksums available" in reason:
            reason += " (the repository has no .sha1 for it: pin one in PINNED_SHA1)"
        raise LauncherError(f"download failed: {artifact.coordinates}: {reason}")
    if pinned:
        return got, pinned
    local_repo = _local_repository()
    stored = _read_sha1(local_repo / (artifact.repository_path + ".sha1")) if local_repo else None
    if stored is None:
        raise LauncherError(
            f"no checksum for {artifact.coordinates} in the local Maven repository "
            f"({local_repo}): pin its SHA-1 in PINNED_SHA1"
        )
    return got, stored


def _run_maven(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LauncherError(
            f"Maven (mvn) not found: install it, or set {REPO_ENV} to a Maven repository root URL"
        )
    cmd = [mvn, "-B", "-q", "-Dstyle.color=never", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=cwd)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LauncherError(f"cannot run Maven: {exc}") from exc


@cache
def _local_repository() -> Path | None:
    """Maven's local repository as the user's settings define it (where it keeps ``.sha1``s)."""
    with tempfile.TemporaryDirectory() as tmp:
        res = _run_maven(
            ["help:evaluate", "-Dexpression=settings.localRepository", "-DforceStdout"], Path(tmp)
        )
    lines = [ln.strip() for ln in _strip_ansi(res.stdout).splitlines() if ln.strip()]
    if res.returncode != 0 or not lines:
        return None
    path = Path(lines[-1])
    return path if path.is_absolute() else None


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _maven_error(output: str) -> str:
    """Maven's first meaningful error line, without its log prefix."""
    for line in output.splitlines():
        line = _strip_ansi(line).strip()
        if line.startswith("[ERROR]"):
            text = line.removeprefix("[ERROR]").strip()
            if text and not text.startswith(("->", "To see the full", "Re-run Maven", "For more")):
                text = re.sub(r"^Failed to execute goal .*? on project [^:]+: ", "", text)
                text = re.sub(r"\s*-> \[Help \d+\]$", "", text)
                text = re.sub(r" \(https?://[^)]*\)", "", text)  # keep it short: no URLs
                return re.sub(r"https?://\S+", "the repository", text)[:400]
    tail = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return tail[-1][:400] if tail else "Maven failed without output"
