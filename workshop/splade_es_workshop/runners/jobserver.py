"""Beam job servers built from Beam's runner artifacts on Maven Central, cached as one jar each.

Beam publishes `beam-runners-flink-<ver>` and `beam-runners-spark-3` but no runnable job-server
jar on Central, so the Python SDK cannot fetch one. A shipped pom depends on the runner and shades
it with its dependencies into a runnable jar whose main class is the runner's job-server driver;
it is built once (`mvn package`) and kept in the cache.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from splade_es.files import replaced_on_success

from .cache import cache_dir
from .maven import package_jar
from .processes import Managed, java, port_open, wait_for

BEAM_JAVA_VERSION = "2.62.0"
"""Beam's Java runners used (2.62.0 is the newest whose Flink runner resolves completely)."""


@dataclass(frozen=True)
class JobServerKind:
    """One runner's job server: the pom that builds it and the jar it produces."""

    runner: str
    pom: str
    jar_name: str


JOB_SERVERS = {
    "flink": JobServerKind(
        "flink",
        "flink-job-server.xml",
        f"beam-runners-flink-1.19-job-server-{BEAM_JAVA_VERSION}.jar",
    ),
    "spark": JobServerKind(
        "spark",
        "spark-job-server.xml",
        f"beam-runners-spark-3-job-server-{BEAM_JAVA_VERSION}.jar",
    ),
}


def job_server_jar(runner: str, rebuild: bool = False) -> Path:
    """The runner's job-server jar, built with Maven on first use and cached."""
    kind = JOB_SERVERS[runner]
    target = cache_dir() / "jars" / kind.jar_name
    if target.is_file() and not rebuild:
        return target
    built = package_jar(kind.pom, cache_dir() / "build" / f"{runner}-job-server")
    with replaced_on_success(target) as partial:
        shutil.copyfile(built, partial)
    return target


@dataclass(frozen=True)
class JobServerPorts:
    """The job server's gRPC ports: job submission, artifact staging, expansion."""

    job: int
    artifact: int
    expansion: int

    @classmethod
    def from_base(cls, base: int) -> JobServerPorts:
        return cls(base, base + 1, base + 2)


def start_job_server(
    runner: str,
    run: Path,
    ports: JobServerPorts,
    driver_args: Sequence[str],
    jvm_options: Sequence[str] = (),
    classpath_suffix: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120,
) -> Managed:
    """Start the job server JVM in `run` and wait until its job port accepts connections.

    Its own jar comes first on the classpath, then `classpath_suffix` (a cluster's jars)."""
    jar = job_server_jar(runner)
    process = Managed("job-server", run)
    if process.alive():
        return process
    classpath = ":".join([str(jar), *map(str, classpath_suffix)])
    driver = {
        "flink": "org.apache.beam.runners.flink.FlinkJobServerDriver",
        "spark": "org.apache.beam.runners.spark.SparkJobServerDriver",
    }[runner]
    process.spawn(
        [
            java(),
            "-Xmx1g",
            f"-Djava.io.tmpdir={run / 'tmp'}",
            *jvm_options,
            "-cp",
            classpath,
            driver,
            "--job-port",
            str(ports.job),
            "--artifact-port",
            str(ports.artifact),
            "--expansion-port",
            str(ports.expansion),
            "--artifacts-dir",
            str(run / "artifacts"),
            *driver_args,
        ],
        env=env,
    )
    wait_for(lambda: port_open(ports.job), f"{runner} job server", process, timeout_s)
    return process
