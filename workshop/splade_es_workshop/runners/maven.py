"""Fetch and build the runners' Java parts with Maven's own client.

Maven resolves from the user's configured repositories (``~/.m2/settings.xml`` mirrors and
proxies apply), checks every download against its published checksum (``-C``: a mismatch fails
the build) and caches it in the local repository, so a second build is offline-fast. The poms are
package data (:data:`POMS`).
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

POMS = "splade_es_workshop.runners.poms"


class MavenError(RuntimeError):
    """Maven is missing or a build failed (the message carries the log tail)."""


def _mvn() -> str:
    found = shutil.which("mvn")
    if not found:
        raise MavenError("Maven (mvn) is not on PATH: install it (e.g. apt-get install maven)")
    return found


def pom_text(name: str) -> str:
    """A pom shipped with the package, by file name."""
    return resources.files(POMS).joinpath(name).read_text(encoding="utf-8")


def run_maven(pom: Path, *args: str, log: Path) -> None:
    """`mvn -B -C -f pom args...` with the output in `log`; MavenError with its tail on failure."""
    command = [_mvn(), "-B", "-C", "-f", str(pom), *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise MavenError(f"{' '.join(args)} failed (exit {done.returncode}; log {log}):\n{tail}")


def copy_dependencies(pom_name: str, dest: Path, workdir: Path) -> list[Path]:
    """Resolve the dependencies of a shipped pom and copy the jars into `dest`."""
    workdir.mkdir(parents=True, exist_ok=True)
    pom = workdir / "pom.xml"
    pom.write_text(pom_text(pom_name), encoding="utf-8")
    staging = workdir / "lib"
    shutil.rmtree(staging, ignore_errors=True)
    run_maven(
        pom,
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
        log=workdir / "maven.log",
    )
    jars = sorted(staging.glob("*.jar"))
    if not jars:
        raise MavenError(f"{pom_name}: Maven copied no jars into {staging}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(dest)
    return sorted(dest.glob("*.jar"))


def package_jar(pom_name: str, workdir: Path) -> Path:
    """`mvn package` a shipped pom that shades one runnable jar; returns that jar."""
    workdir.mkdir(parents=True, exist_ok=True)
    pom = workdir / "pom.xml"
    pom.write_text(pom_text(pom_name), encoding="utf-8")
    run_maven(pom, "package", log=workdir / "maven.log")
    jars = [p for p in (workdir / "target").glob("*.jar") if not p.name.startswith("original-")]
    if len(jars) != 1:
        raise MavenError(f"{pom_name}: expected one shaded jar in {workdir / 'target'}, {jars}")
    return jars[0]


def copy_artifact(coordinates: str, dest: Path, log: Path) -> Path:
    """`mvn dependency:copy` one artifact (`group:artifact:version[:packaging]`) into `dest`."""
    workdir = log.parent
    workdir.mkdir(parents=True, exist_ok=True)
    pom = workdir / "pom.xml"
    pom.write_text(pom_text("empty.xml"), encoding="utf-8")
    run_maven(
        pom, "dependency:copy", f"-Dartifact={coordinates}", f"-DoutputDirectory={dest}", log=log
    )
    _group, artifact, version = coordinates.split(":")[:3]
    jar = dest / f"{artifact}-{version}.jar"
    if not jar.is_file():
        raise MavenError(f"{coordinates}: Maven reported success but {jar} is missing")
    return jar
