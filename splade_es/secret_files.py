"""Handing a connection's secrets to pipeline workers without putting them in the pipeline.

Whatever travels with a Beam job (its options, its pickled transforms) ends up in places others
can read: Flink's REST API and web UI (`/jobs/<id>/config`), the TaskManager logs, the SDK
workers' `PIPELINE_OPTIONS`, a runner's blob store. So the launcher writes the password and API
key to a file only its user can read (mode 0600 inside a private 0700 temporary folder), the
transforms carry the file's path, and the folder is removed when the run ends. Workers on the
same machine (the FnApiRunner, the project's local Flink and Spark clusters) read the file;
workers elsewhere (Dataflow) do not see it and take `SPLADE_ES_PASSWORD` / `SPLADE_ES_API_KEY`
from their own environment (see `client.ConnectionSettings.unsealed`).

A launcher killed before it could clean up leaves its folder behind; the next launcher removes
folders whose process is gone (`remove_stale`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

PREFIX = "splade-es-secrets-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: Path | None = None) -> list[Path]:
    """Remove the secret folders of launchers that no longer run; returns what was removed."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = path.name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and path.stat().st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class PrivateSecrets:
    """A private folder of 0600 secret files, removed on exit (a context manager)."""

    def __init__(self, parent: Path | None = None) -> None:
        self.parent = parent
        self.folder: Path | None = None
        self.count = 0

    def __enter__(self) -> PrivateSecrets:
        remove_stale(self.parent)
        prefix = f"{PREFIX}{os.getpid()}-"
        self.folder = Path(tempfile.mkdtemp(prefix=prefix, dir=self.parent))  # mode 0700
        return self

    def write(self, values: dict[str, str]) -> str:
        """A new file holding `values`, readable by this user only; returns its path."""
        if self.folder is None:
            raise RuntimeError("PrivateSecrets.write outside its `with` block")
        self.count += 1
        path = self.folder / f"connection-{self.count}.json"
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(values, out)
        return str(path)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def read_secrets(path: str) -> dict[str, str] | None:
    """The values of a secret file, or None when it is not on this machine."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except FileNotFoundError:
        return None
    return {str(k): str(v) for k, v in values.items() if v}
