"""Boot a Beam Python SDK worker as a plain process (Beam's PROCESS environment), no Docker.

A runner's PROCESS environment runs ``<command> --id=ID --logging_endpoint=... --artifact_endpoint=...
--provision_endpoint=... --control_endpoint=...``. Beam's containers answer that with a Go boot
binary; this module does the same job in Python: it asks the provision service for the job's
pipeline options and endpoints, sets the environment ``apache_beam.runners.worker.sdk_worker_main``
reads (``PIPELINE_OPTIONS``, ``CONTROL_API_SERVICE_DESCRIPTOR``, ``WORKER_ID``, ...) and replaces
itself with that worker, so the runner can stop it by pid. Staged artifacts are not installed:
the worker runs in the submitting interpreter's environment (same machine, same packages).

:func:`boot_script` writes the executable the runner is given (``--environment_config``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootArgs:
    """What the runner passes to the boot command."""

    worker_id: str
    provision_endpoint: str
    control_endpoint: str
    logging_endpoint: str = ""
    artifact_endpoint: str = ""
    semi_persistent_directory: str = ""

    @classmethod
    def parse(cls, argv: Sequence[str]) -> BootArgs:
        parser = argparse.ArgumentParser(prog="python -m splade_es_workshop.runners.sdk_worker")
        parser.add_argument("--id", required=True)
        parser.add_argument("--provision_endpoint", required=True)
        parser.add_argument("--control_endpoint", default="")
        parser.add_argument("--logging_endpoint", default="")
        parser.add_argument("--artifact_endpoint", default="")
        parser.add_argument("--semi_persistent_directory", default="")
        ns, unknown = parser.parse_known_args(list(argv))
        if unknown:
            log.warning("ignoring boot arguments %s", unknown)
        return cls(
            ns.id,
            ns.provision_endpoint,
            ns.control_endpoint,
            ns.logging_endpoint,
            ns.artifact_endpoint,
            ns.semi_persistent_directory,
        )


def _descriptor(url: str) -> str:
    """An ApiServiceDescriptor in the text format sdk_worker_main parses."""
    from apache_beam.portability.api import endpoints_pb2
    from google.protobuf import text_format

    return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))


def worker_environment(args: BootArgs, base: dict[str, str]) -> dict[str, str]:
    """Ask the provision service for this worker's job and build sdk_worker_main's environment."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
    from google.protobuf import json_format

    with grpc.insecure_channel(args.provision_endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        info = stub.GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(),
            metadata=[("worker_id", args.worker_id)],
            timeout=60,
        ).info
    if info.dependencies:
        log.info("not installing %d staged artifacts (same environment)", len(info.dependencies))
    control = info.control_endpoint.url or args.control_endpoint
    logging_url = info.logging_endpoint.url or args.logging_endpoint
    if not control:
        raise SystemExit("sdk_worker boot: no control endpoint from the runner")
    env = dict(base)
    env.update(
        WORKER_ID=args.worker_id,
        PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
        CONTROL_API_SERVICE_DESCRIPTOR=_descriptor(control),
        RUNNER_CAPABILITIES=" ".join(info.runner_capabilities),
        # as Beam's own boot: the temp dir unless the runner names one (nothing is staged there)
        SEMI_PERSISTENT_DIRECTORY=args.semi_persistent_directory or tempfile.gettempdir(),
    )
    if logging_url:
        env["LOGGING_API_SERVICE_DESCRIPTOR"] = _descriptor(logging_url)
    if info.status_endpoint.url:
        env["STATUS_API_SERVICE_DESCRIPTOR"] = _descriptor(info.status_endpoint.url)
    return env


def boot_script(folder: Path, python: str | None = None) -> Path:
    """Write `folder/beam-sdk-worker` that boots a worker with this interpreter and import path.

    The runner's JVM starts it with its own environment, so the script pins what the worker
    needs from the submitter's: the Python executable and ``PYTHONPATH`` (the pipeline's modules).
    """
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "beam-sdk-worker"
    own = (sys.prefix, sys.base_prefix)  # the interpreter finds its own library paths
    extra = [p for p in sys.path if p and not p.startswith(own)]
    entries = [*os.environ.get("PYTHONPATH", "").split(os.pathsep), *extra]
    path = os.pathsep.join(p for p in dict.fromkeys(entries) if p)
    script.write_text(
        "#!/bin/sh\n"
        "# Beam PROCESS-environment boot command written by splade_es_workshop.runners.sdk_worker\n"
        f"PYTHONPATH={shlex.quote(path)}\n"
        "export PYTHONPATH\n"
        f'exec {shlex.quote(python or sys.executable)} -m splade_es_workshop.runners.sdk_worker "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def environment_config(script: Path) -> str:
    """The `--environment_config` JSON of a PROCESS environment that runs `script`."""
    return json.dumps({"command": str(script)})


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sdk_worker boot: %(message)s")
    args = BootArgs.parse(sys.argv[1:] if argv is None else argv)
    env = worker_environment(args, dict(os.environ))
    command = [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"]
    log.info("worker %s: exec %s", args.worker_id, " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    main()
