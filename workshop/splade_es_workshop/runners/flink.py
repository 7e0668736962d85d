"""A local Flink session cluster: one JobManager and N TaskManagers as separate JVMs, plus Beam's
Flink job server, so a Beam pipeline runs on a real distributed engine.

Flink publishes no binary distribution on Maven Central, so the cluster's classpath is the
runtime jars (`flink-runtime`, `flink-clients`, `flink-streaming-java`, `flink-java`,
`flink-runtime-web` + slf4j-simple) copied by Maven. The JVMs are started as `bin/jobmanager.sh`
and `bin/taskmanager.sh` would: the entry-point classes, with memory flags computed by Flink's own
`BashJavaUtils`. Each JVM gets its own config directory (distinct RPC and metrics ports).

Layout under ``cache_dir()``: ``flink-<version>/lib/`` (jars), ``run/flink/`` (conf-*, logs, pids,
tmp, ``beam-sdk-worker`` boot script).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cache import cache_dir, run_dir
from .jobserver import JobServerPorts, start_job_server
from .maven import copy_dependencies
from .processes import (
    Managed,
    RunnerError,
    java,
    port_free,
    saved_settings,
    wait_for,
)
from .sdk_worker import boot_script, environment_config

FLINK_VERSION = "1.19.0"
"""The Flink that Beam 2.62's `beam-runners-flink-1.19` runner is built against."""

UTILS = "org.apache.flink.runtime.util.bash.BashJavaUtils"
JOB_MANAGER = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASK_MANAGER = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
RESULT = "BASH_JAVA_UTILS_EXEC_RESULT:"


@dataclass(frozen=True)
class FlinkSettings:
    """Cluster shape and ports. Ports: REST (UI) `rest_port`; RPC/blob/metrics from `rpc_base`."""

    task_managers: int = 2
    slots_per_task_manager: int = 1
    rest_port: int = 8281
    rpc_base: int = 6220
    job_server_port: int = 8297
    job_manager_memory: str = "1600m"
    task_manager_memory: str = "2560m"
    network_memory: str = "384m"
    extra_conf: dict[str, str] = field(default_factory=dict)

    @property
    def parallelism(self) -> int:
        return self.task_managers * self.slots_per_task_manager

    @property
    def job_server_ports(self) -> JobServerPorts:
        return JobServerPorts.from_base(self.job_server_port)


@dataclass(frozen=True)
class FlinkCluster:
    """A started cluster: where to submit Beam pipelines and how workers boot."""

    rest_url: str
    job_endpoint: str
    environment_config: str
    parallelism: int
    run: Path

    @property
    def ui_url(self) -> str:
        return self.rest_url

    def pipeline_args(self) -> list[str]:
        """PortableRunner options for a pipeline on this cluster with PROCESS SDK workers."""
        return [
            "--runner=PortableRunner",
            f"--job_endpoint={self.job_endpoint}",
            "--environment_type=PROCESS",
            f"--environment_config={self.environment_config}",
            f"--parallelism={self.parallelism}",
        ]


def settings_for(task_managers: int) -> FlinkSettings:
    """Default settings with `task_managers` TaskManagers."""
    return FlinkSettings(task_managers=task_managers)


def flink_lib() -> Path:
    """The cluster's jars, copied by Maven on first use."""
    lib = cache_dir() / f"flink-{FLINK_VERSION}" / "lib"
    if not any(lib.glob("flink-runtime-*.jar")):
        copy_dependencies("flink-cluster.xml", lib, cache_dir() / "build" / "flink-cluster")
    return lib


def _processes(run: Path, settings: FlinkSettings) -> list[Managed]:
    tms = [Managed(f"taskmanager-{i}", run) for i in range(1, settings.task_managers + 1)]
    return [Managed("job-server", run), *tms, Managed("jobmanager", run)]


def _conf(settings: FlinkSettings, run: Path, role: str, index: int) -> Path:
    """`run/conf-<role>/flink-conf.yaml` for one JVM (own TaskManager RPC and metrics ports)."""
    base = settings.rpc_base
    conf = {
        "jobmanager.rpc.address": "localhost",
        "jobmanager.bind-host": "localhost",
        "jobmanager.rpc.port": base,
        "blob.server.port": base + 1,
        "rest.address": "localhost",
        "rest.bind-address": "localhost",
        "rest.port": settings.rest_port,
        "jobmanager.memory.process.size": settings.job_manager_memory,
        "taskmanager.host": "localhost",
        "taskmanager.bind-host": "localhost",
        "taskmanager.rpc.port": base + 10 + index,
        "taskmanager.data.port": base + 20 + index,
        "taskmanager.resource-id": role,
        "metrics.internal.query-service.port": base + 30 + index,
        "taskmanager.numberOfTaskSlots": settings.slots_per_task_manager,
        "taskmanager.memory.process.size": settings.task_manager_memory,
        "taskmanager.memory.network.min": settings.network_memory,
        "taskmanager.memory.network.max": settings.network_memory,
        "parallelism.default": settings.parallelism,
        "io.tmp.dirs": str(run / "tmp" / role),
        "web.tmpdir": str(run / "tmp" / role / "web"),
        **settings.extra_conf,
    }
    folder = run / f"conf-{role}"
    folder.mkdir(parents=True, exist_ok=True)
    (run / "tmp" / role).mkdir(parents=True, exist_ok=True)
    (folder / "flink-conf.yaml").write_text(
        "".join(f"{key}: {value}\n" for key, value in conf.items()), encoding="utf-8"
    )
    return folder


def _resource_params(lib: Path, conf: Path, command: str) -> tuple[list[str], list[str]]:
    """JVM flags and `-D` dynamic options from BashJavaUtils, as Flink's start scripts get them."""
    done = subprocess.run(
        [java(), "-cp", f"{lib}/*", UTILS, command, "--configDir", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    results = [line[len(RESULT) :] for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or len(results) < 2:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-10:])
        raise RunnerError(f"Flink {command} failed (exit {done.returncode}):\n{tail}")
    return results[-2].split(), results[-1].split()


def _overview(rest_port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://localhost:{rest_port}/overview", timeout=2) as r:
            return dict(json.load(r))
    except (OSError, ValueError):
        return None


def _ready(settings: FlinkSettings) -> bool:
    """The JobManager answers and sees every TaskManager."""
    overview = _overview(settings.rest_port)
    return overview is not None and overview.get("taskmanagers") == settings.task_managers


def _cluster(settings: FlinkSettings, run: Path) -> FlinkCluster:
    script = boot_script(run)
    return FlinkCluster(
        rest_url=f"http://localhost:{settings.rest_port}",
        job_endpoint=f"localhost:{settings.job_server_ports.job}",
        environment_config=environment_config(script),
        parallelism=settings.parallelism,
        run=run,
    )


def start(settings: FlinkSettings = FlinkSettings(), timeout_s: float = 120) -> FlinkCluster:
    """Start (or reuse) the cluster and its job server; returns where to submit pipelines."""
    run = run_dir("flink")
    lib = flink_lib()
    if all(p.alive() for p in _processes(run, settings)) and _ready(settings):
        return _cluster(settings, run)
    stop(settings)
    ports = [settings.rest_port, settings.rpc_base, settings.rpc_base + 1]
    ports += [settings.job_server_ports.job, settings.job_server_ports.artifact]
    busy = [port for port in ports if not port_free(port)]
    if busy:
        raise RunnerError(f"Flink cluster ports in use: {busy} (another cluster or service?)")
    (run / "settings.json").parent.mkdir(parents=True, exist_ok=True)
    (run / "settings.json").write_text(json.dumps(asdict(settings)), encoding="utf-8")
    classpath = f"{lib}/*"
    conf = _conf(settings, run, "jobmanager", 0)
    jvm, dynamic = _resource_params(lib, conf, "GET_JM_RESOURCE_PARAMS")
    jobmanager = Managed("jobmanager", run)
    jobmanager.spawn(
        [java(), *jvm, "-cp", classpath, JOB_MANAGER, "--configDir", str(conf), *dynamic]
    )
    wait_for(
        lambda: _overview(settings.rest_port) is not None, "Flink JobManager", jobmanager, timeout_s
    )
    for index in range(1, settings.task_managers + 1):
        role = f"taskmanager-{index}"
        conf = _conf(settings, run, role, index)
        jvm, dynamic = _resource_params(lib, conf, "GET_TM_RESOURCE_PARAMS")
        Managed(role, run).spawn(
            [java(), *jvm, "-cp", classpath, TASK_MANAGER, "--configDir", str(conf), *dynamic]
        )
    wait_for(lambda: _ready(settings), "Flink TaskManagers", jobmanager, timeout_s)
    start_job_server(
        "flink",
        run,
        settings.job_server_ports,
        ["--flink-master", f"localhost:{settings.rest_port}"],
        timeout_s=timeout_s,
    )
    return _cluster(settings, run)


def stop(settings: FlinkSettings | None = None) -> list[str]:
    """Stop the job server, the TaskManagers and the JobManager; returns what was running."""
    run = run_dir("flink")
    if settings is None:
        settings = saved_settings(run, FlinkSettings)
    return [p.name for p in _processes(run, settings) if p.stop()]


def status() -> dict[str, object]:
    """Which of the cluster's processes run, and the REST overview when it answers."""
    run = run_dir("flink")
    settings = saved_settings(run, FlinkSettings)
    return {
        "processes": {p.name: p.pid() for p in _processes(run, settings)},
        "rest": f"http://localhost:{settings.rest_port}",
        "overview": _overview(settings.rest_port),
        "job_endpoint": f"localhost:{settings.job_server_ports.job}",
        "environment_config": environment_config(run / "beam-sdk-worker"),
    }
