"""A local Spark standalone cluster (Master + Workers as separate JVMs) and Beam's Spark job server.

Spark's jars come from Maven Central (`spark-core`/`spark-streaming` 3.5, Scala 2.12) into a Spark
home's ``jars/``, where Spark's launcher finds them when a Worker starts executors
(``SPARK_SCALA_VERSION=2.12`` stands in for the missing build directories). Beam's Spark 3 runner
(2.62, built against Spark 3.2) runs on it with two adjustments: the job server (the Spark driver)
has its own jar ahead of Spark's, and executors get Beam's newer Guava ahead of Spark's Guava 14
(``spark.executor.extraClassPath``); Beam's slf4j 1.7 API is left out in favour of Spark's.

Layout under ``cache_dir()``: ``spark-<version>/jars/``, ``run/spark/`` (logs, pids, work, tmp,
``beam-sdk-worker``).
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from .cache import cache_dir, run_dir
from .jobserver import JobServerPorts, start_job_server
from .maven import copy_artifact, copy_dependencies
from .processes import (
    Managed,
    RunnerError,
    java,
    port_free,
    saved_settings,
    wait_for,
)
from .sdk_worker import boot_script, environment_config

SPARK_VERSION = "3.5.3"
SCALA_BINARY = "2.12"
GUAVA = "com.google.guava:guava:33.3.1-jre"
"""The Guava Beam's runner needs on executors (Spark itself ships Guava 14)."""

JAVA_MODULE_OPTIONS = (
    "-XX:+IgnoreUnrecognizedVMOptions",
    *(
        f"--add-opens=java.base/{package}=ALL-UNNAMED"
        for package in (
            "java.lang",
            "java.lang.invoke",
            "java.lang.reflect",
            "java.io",
            "java.net",
            "java.nio",
            "java.util",
            "java.util.concurrent",
            "java.util.concurrent.atomic",
            "jdk.internal.ref",
            "sun.nio.ch",
            "sun.nio.cs",
            "sun.security.action",
            "sun.util.calendar",
        )
    ),
    "-Djdk.reflect.useDirectMethodHandle=false",
)
"""What `spark-submit` adds on Java 17 so Spark may reach JDK internals (the job server is the
driver and is not started by spark-submit; executors get them from Spark itself)."""

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


@dataclass(frozen=True)
class SparkSettings:
    """Cluster shape and ports (master RPC `master_port`, UIs from `ui_port`)."""

    workers: int = 1
    cores_per_worker: int = 2
    worker_memory: str = "3g"
    executor_memory: str = "1g"
    master_port: int = 7177
    ui_port: int = 8180
    job_server_port: int = 8397

    @property
    def parallelism(self) -> int:
        return self.workers * self.cores_per_worker

    @property
    def job_server_ports(self) -> JobServerPorts:
        return JobServerPorts.from_base(self.job_server_port)

    @property
    def master_url(self) -> str:
        return f"spark://localhost:{self.master_port}"


@dataclass(frozen=True)
class SparkCluster:
    """A started cluster: where to submit Beam pipelines and how workers boot."""

    ui_url: str
    master_url: str
    job_endpoint: str
    environment_config: str
    parallelism: int
    run: Path

    def pipeline_args(self) -> list[str]:
        """PortableRunner options for a pipeline on this cluster with PROCESS SDK workers."""
        return [
            "--runner=PortableRunner",
            f"--job_endpoint={self.job_endpoint}",
            "--environment_type=PROCESS",
            f"--environment_config={self.environment_config}",
        ]


def settings_for(workers: int) -> SparkSettings:
    """Default settings with `workers` Workers."""
    return SparkSettings(workers=workers)


def spark_home() -> Path:
    """A Spark home whose ``jars/`` Maven filled on first use."""
    home = cache_dir() / f"spark-{SPARK_VERSION}"
    if not any((home / "jars").glob("spark-core_*.jar")):
        copy_dependencies("spark-cluster.xml", home / "jars", cache_dir() / "build" / "spark")
    return home


def guava_jar() -> Path:
    coordinates = GUAVA.split(":")
    jar = cache_dir() / "jars" / f"{coordinates[1]}-{coordinates[2]}.jar"
    if not jar.is_file():
        copy_artifact(GUAVA, jar.parent, cache_dir() / "build" / "guava" / "maven.log")
    return jar


def _processes(run: Path, settings: SparkSettings) -> list[Managed]:
    workers = [Managed(f"worker-{i}", run) for i in range(1, settings.workers + 1)]
    return [Managed("job-server", run), *workers, Managed("master", run)]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "SPARK_HOME": str(home), "SPARK_SCALA_VERSION": SCALA_BINARY}


def _master_state(settings: SparkSettings) -> dict[str, object] | None:
    try:
        url = f"http://localhost:{settings.ui_port}/json/"
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.load(response))
    except (OSError, ValueError):
        return None


def _alive_workers(state: dict[str, object] | None) -> int | None:
    """Workers the master sees ALIVE (None: the master does not answer)."""
    if state is None:
        return None
    workers = state.get("workers")
    return sum(
        1
        for worker in (workers if isinstance(workers, list) else [])
        if isinstance(worker, dict) and worker.get("state") == "ALIVE"
    )


def _ready(settings: SparkSettings) -> bool:
    return _alive_workers(_master_state(settings)) == settings.workers


def _cluster(settings: SparkSettings, run: Path) -> SparkCluster:
    return SparkCluster(
        ui_url=f"http://localhost:{settings.ui_port}",
        master_url=settings.master_url,
        job_endpoint=f"localhost:{settings.job_server_ports.job}",
        environment_config=environment_config(boot_script(run)),
        parallelism=settings.parallelism,
        run=run,
    )


def start(settings: SparkSettings = SparkSettings(), timeout_s: float = 120) -> SparkCluster:
    """Start (or reuse) the cluster and its job server; returns where to submit pipelines."""
    run = run_dir("spark")
    home = spark_home()
    guava = guava_jar()
    if all(p.alive() for p in _processes(run, settings)) and _ready(settings):
        return _cluster(settings, run)
    stop(settings)
    ports = [settings.master_port, settings.ui_port, settings.job_server_ports.job]
    busy = [port for port in ports if not port_free(port)]
    if busy:
        raise RunnerError(f"Spark cluster ports in use: {busy} (another cluster or service?)")
    run.mkdir(parents=True, exist_ok=True)
    (run / "settings.json").write_text(json.dumps(asdict(settings)), encoding="utf-8")
    tmp = run / "tmp"
    tmp.mkdir(exist_ok=True)
    classpath = f"{home / 'jars'}/*"
    common = [java(), "-Xmx512m", *JAVA_MODULE_OPTIONS, f"-Djava.io.tmpdir={tmp}", "-cp", classpath]
    master = Managed("master", run)
    master.spawn(
        [
            *common,
            MASTER,
            "--host",
            "localhost",
            "--port",
            str(settings.master_port),
            "--webui-port",
            str(settings.ui_port),
        ],
        env=_env(home),
    )
    wait_for(lambda: _master_state(settings) is not None, "Spark master", master, timeout_s)
    for index in range(1, settings.workers + 1):
        work = run / f"work-{index}"
        work.mkdir(exist_ok=True)
        Managed(f"worker-{index}", run).spawn(
            [
                *common,
                WORKER,
                "--host",
                "localhost",
                "--webui-port",
                str(settings.ui_port + index),
                "--cores",
                str(settings.cores_per_worker),
                "--memory",
                settings.worker_memory,
                "--work-dir",
                str(work),
                settings.master_url,
            ],
            env=_env(home),
        )
    wait_for(lambda: _ready(settings), "Spark workers", master, timeout_s)
    start_job_server(
        "spark",
        run,
        settings.job_server_ports,
        ["--spark-master-url", settings.master_url],
        jvm_options=[
            *JAVA_MODULE_OPTIONS,
            f"-Dspark.executor.extraClassPath={guava}",
            f"-Dspark.executor.memory={settings.executor_memory}",
            f"-Dspark.local.dir={tmp}",
        ],
        classpath_suffix=[Path(classpath)],
        env=_env(home),
        timeout_s=timeout_s,
    )
    return _cluster(settings, run)


def stop(settings: SparkSettings | None = None) -> list[str]:
    """Stop the job server, the Workers and the Master; returns what was running."""
    run = run_dir("spark")
    if settings is None:
        settings = saved_settings(run, SparkSettings)
    return [p.name for p in _processes(run, settings) if p.stop()]


def status() -> dict[str, object]:
    """Which of the cluster's processes run, and the master's view of its workers."""
    run = run_dir("spark")
    settings = saved_settings(run, SparkSettings)
    state = _master_state(settings)
    return {
        "processes": {p.name: p.pid() for p in _processes(run, settings)},
        "ui": f"http://localhost:{settings.ui_port}",
        "master": settings.master_url,
        "workers_alive": _alive_workers(state),
        "job_endpoint": f"localhost:{settings.job_server_ports.job}",
        "environment_config": environment_config(run / "beam-sdk-worker"),
    }
