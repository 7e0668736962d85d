"""Background JVMs that outlive the command that started them, tracked by pid files.

Each process gets a pid file and a log in its cluster's run directory. A pid is only trusted
while the process's command line still names that run directory (pid reuse guard), and stopping
signals exactly the recorded pids: first SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class RunnerError(RuntimeError):
    """A runner component could not be installed, started or reached."""


@dataclass(frozen=True)
class Managed:
    """One background process of a cluster: `name.pid` and `name.log` in `run`."""

    name: str
    run: Path

    @property
    def pid_file(self) -> Path:
        return self.run / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.run / f"{self.name}.log"

    def pid(self) -> int | None:
        """The recorded pid while that process is alive and still ours."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return None
        if state in ("Z", "X"):
            return None
        # an empty command line is a process between exec()s (the java launcher re-executes
        # itself at start); any other must name our run directory (pid reuse guard)
        if cmdline.strip() and str(self.run).encode() not in cmdline:
            return None
        return pid

    def alive(self) -> bool:
        return self.pid() is not None

    def spawn(self, command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Start `command` detached (own session), output to the log; records the pid."""
        self.run.mkdir(parents=True, exist_ok=True)
        if self.log.exists():
            self.log.replace(self.log.with_suffix(".prev.log"))
        with self.log.open("wb") as out:
            process = subprocess.Popen(
                list(command),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.run,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        return process.pid

    def stop(self, grace_s: float = 20) -> bool:
        """SIGTERM, then SIGKILL after `grace_s`; True if a process was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.alive():
            os.kill(pid, signal.SIGKILL)
            while self.alive():
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 10) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(ready: Callable[[], bool], what: str, process: Managed, timeout_s: float) -> None:
    """Poll `ready()` until true; RunnerError with the log tail if the process dies or time ends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not process.alive():
            raise RunnerError(f"{what} exited during start; {process.log}:\n{process.log_tail()}")
        time.sleep(0.5)
    raise RunnerError(
        f"{what} not ready after {timeout_s:.0f}s; {process.log}:\n{process.log_tail()}"
    )


def java() -> str:
    """The `java` to run: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    from shutil import which

    found = which("java")
    if not found:
        raise RunnerError("no java: install a JDK 11 or 17, or set JAVA_HOME")
    return found


def saved_settings(run: Path, kind: Any) -> Any:
    """The settings a cluster in `run` was started with (`settings.json`), else the defaults."""
    try:
        return kind(**json.loads((run / "settings.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return kind()
