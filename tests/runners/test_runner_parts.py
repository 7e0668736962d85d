"""Runner parts without a cluster: SDK worker boot against a real provision gRPC service,
managed processes, per-JVM Flink configuration, the `runner` command group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from splade_es_workshop.runners.processes import Managed
from splade_es_workshop.runners.sdk_worker import (
    BootArgs,
    boot_script,
    environment_config,
    worker_environment,
)

JAVA_BOOT_ARGS = [  # what Beam's ProcessEnvironmentFactory passes to the boot command
    "--id=7",
    "--logging_endpoint=localhost:40001",
    "--artifact_endpoint=localhost:40002",
    "--provision_endpoint=localhost:40003",
    "--control_endpoint=localhost:40004",
]


def test_boot_arguments_are_the_ones_beam_passes() -> None:
    args = BootArgs.parse(JAVA_BOOT_ARGS)
    assert (args.worker_id, args.provision_endpoint, args.control_endpoint) == (
        "7",
        "localhost:40003",
        "localhost:40004",
    )
    with pytest.raises(SystemExit):
        BootArgs.parse(["--id=1"])  # no provision endpoint


@pytest.fixture()
def provision_service():
    """A real provision gRPC service answering like a runner's, recording the caller's worker id."""
    from apache_beam.portability.api import (
        beam_provision_api_pb2,
        beam_provision_api_pb2_grpc,
        endpoints_pb2,
    )
    from google.protobuf import struct_pb2

    callers: list[str | None] = []
    options = struct_pb2.Struct()
    options.update({"beam:option:job_name:v1": "splade-test", "beam:option:top_k:v1": 5})

    class Provision(beam_provision_api_pb2_grpc.ProvisionServiceServicer):
        def GetProvisionInfo(self, request, context):
            callers.append(dict(context.invocation_metadata()).get("worker_id"))
            info = beam_provision_api_pb2.ProvisionInfo(
                pipeline_options=options,
                control_endpoint=endpoints_pb2.ApiServiceDescriptor(url="localhost:41000"),
                logging_endpoint=endpoints_pb2.ApiServiceDescriptor(url="localhost:41001"),
                runner_capabilities=["beam:protocol:a:v1", "beam:protocol:b:v1"],
            )
            return beam_provision_api_pb2.GetProvisionInfoResponse(info=info)

    server = grpc.server(futures.ThreadPoolExecutor(2))
    beam_provision_api_pb2_grpc.add_ProvisionServiceServicer_to_server(Provision(), server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    yield f"localhost:{port}", callers
    server.stop(None)


def test_worker_environment_comes_from_the_provision_service(provision_service, tmp_path) -> None:
    from apache_beam.runners.worker.sdk_worker_main import _load_pipeline_options

    endpoint, callers = provision_service
    args = BootArgs.parse([*JAVA_BOOT_ARGS[:3], f"--provision_endpoint={endpoint}"])
    env = worker_environment(args, {"KEEP": "me"})
    assert callers == ["7"], "the provision call must say which worker asks"
    assert env["KEEP"] == "me" and env["WORKER_ID"] == "7"
    assert 'url: "localhost:41000"' in env["CONTROL_API_SERVICE_DESCRIPTOR"]
    assert 'url: "localhost:41001"' in env["LOGGING_API_SERVICE_DESCRIPTOR"]
    assert env["RUNNER_CAPABILITIES"].split() == ["beam:protocol:a:v1", "beam:protocol:b:v1"]
    assert Path(env["SEMI_PERSISTENT_DIRECTORY"]).is_dir()
    assert _load_pipeline_options(env["PIPELINE_OPTIONS"]) == {
        "job_name": "splade-test",
        "top_k": 5,
    }


def test_boot_script_runs_this_interpreter_with_this_import_path(tmp_path: Path) -> None:
    script = boot_script(tmp_path, python=sys.executable)
    assert os.access(script, os.X_OK)
    assert json.loads(environment_config(script)) == {"command": str(script)}
    # the boot module's own argument check runs: proves interpreter + PYTHONPATH reach it
    done = subprocess.run(
        [str(script), "--id=1"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert done.returncode == 2 and "--provision_endpoint" in done.stderr


def test_managed_process_is_stopped_and_pid_reuse_is_not_trusted(tmp_path: Path) -> None:
    process = Managed("sleeper", tmp_path)
    pid = process.spawn(["sh", "-c", "sleep 60", str(tmp_path)])
    assert process.pid() == pid
    assert process.stop(grace_s=5) and process.pid() is None and not process.pid_file.exists()
    assert not process.stop()
    process.pid_file.write_text(str(os.getpid()))  # a live process that is not ours
    assert process.pid() is None


def test_each_flink_jvm_gets_its_own_ports(tmp_path: Path) -> None:
    from splade_es_workshop.runners.flink import FlinkSettings, _conf

    settings = FlinkSettings(task_managers=2)
    confs = [
        dict(
            line.split(": ", 1)
            for line in (_conf(settings, tmp_path, role, i) / "flink-conf.yaml")
            .read_text()
            .splitlines()
        )
        for i, role in enumerate(["jobmanager", "taskmanager-1", "taskmanager-2"])
    ]
    for key in ("taskmanager.rpc.port", "metrics.internal.query-service.port", "io.tmp.dirs"):
        assert len({conf[key] for conf in confs}) == 3, key
    assert {conf["rest.port"] for conf in confs} == {str(settings.rest_port)}
    assert confs[1]["taskmanager.memory.network.max"] == "384m"
    assert confs[1]["parallelism.default"] == "2"


def test_runner_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from splade_es.cli import main

    monkeypatch.setenv("SPLADE_ES_RUNNERS_CACHE", str(tmp_path))
    cli = CliRunner()
    done = cli.invoke(main, ["runner", "status", "flink"])
    assert done.exit_code == 0, done.output
    state = json.loads(done.output)["flink"]
    assert set(state["processes"].values()) == {None} and state["overview"] is None
    done = cli.invoke(main, ["runner", "stop"])
    assert done.exit_code == 0 and "flink: not running" in done.output
    done = cli.invoke(main, ["runner", "start", "dask"])
    assert done.exit_code == 2 and "Invalid value" in done.output
