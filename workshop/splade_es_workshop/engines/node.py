"""Run a node detached on 127.0.0.1: configure, spawn, wait for health, stop, report.

Health, version and plugins come from the project's own client (:mod:`splade_es.client`).
Processes are tracked by two pid files in the node's run dir: ``node.pid`` (the JVM, written by
the engine) and ``launcher.pid`` (the wrapper we spawned: ``runuser`` as root, else the start
script). A pid counts as a live node only if its process runs this run dir and is neither a
zombie nor stopped (SIGSTOP); stale pid files are removed before a new spawn.

Both engines refuse to run as root: as root the node runs as the system account
``SPLADE_ES_SERVICE_USER`` (default ``splade-es``, created if missing) via ``runuser``. The
transport port is ``http port + 100``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import AuthenticationException, OpenSearchException, TransportError

from splade_es.client import ConnectionSettings, EngineError, connect, detect

from .catalog import plugin_zips
from .install import install, installed_plugins
from .java import find_java
from .spec import (
    SECURED_USER,
    EngineSpec,
    LauncherError,
    check_spec,
    features,
    home_dir,
    major,
    node_heap,
    run_dir,
)

SERVICE_USER_ENV = "SPLADE_ES_SERVICE_USER"
PASSWD_LOCK = "/etc/.pwd.lock"
"""The lock file of the system's account files (flock'ed here; lckpwdf takes an fcntl lock)."""
START_WAIT_ENV = "SPLADE_ES_START_WAIT"
DEFAULT_START_WAIT_S = 180.0

# Node settings ml-commons needs to call a model service on this machine (remote connectors).
ML_SETTINGS: dict[str, Any] = {
    "plugins.ml_commons.trusted_connector_endpoints_regex": [
        r"^https?://(127\.0\.0\.1|localhost)(:[0-9]+)?/.*$"
    ],
    "plugins.ml_commons.connector.private_ip_enabled": True,
    "plugins.ml_commons.only_run_on_ml_node": False,
    "plugins.ml_commons.native_memory_threshold": 100,
    "plugins.ml_commons.jvm_heap_memory_threshold": 100,
}


def service_user_name() -> str:
    return os.environ.get(SERVICE_USER_ENV, "splade-es")


def start_wait(wait_s: float | None = None) -> float:
    """Seconds to wait for health: the argument, else ``SPLADE_ES_START_WAIT``, else 180."""
    if wait_s is not None:
        return wait_s
    env = os.environ.get(START_WAIT_ENV)
    if not env:
        return DEFAULT_START_WAIT_S
    try:
        value = float(env)
    except ValueError:
        value = -1
    if value <= 0:
        raise LauncherError(f"bad {START_WAIT_ENV}={env!r}: use a number of seconds")
    return value


def url_of(spec: EngineSpec) -> str:
    return f"http://127.0.0.1:{spec.port}"


# --------------------------------------------------------------------------- talking to the node


@dataclass(frozen=True)
class Probe:
    """What answers HTTP on the spec's port."""

    answers: bool  # something speaks HTTP there
    auth_failed: bool = False
    engine: str | None = None  # None: not an engine (or auth failed)
    version: str | None = None


@contextlib.contextmanager
def _quiet_client() -> Iterator[None]:
    """Mute opensearch-py's per-request warnings while polling a node that may not be up."""
    logger = logging.getLogger("opensearch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _client(spec: EngineSpec, timeout: float = 5, authenticate: bool = True) -> OpenSearch:
    user = SECURED_USER if spec.password is not None and authenticate else None
    password = spec.password if authenticate else None
    return connect(
        ConnectionSettings(
            url=url_of(spec), username=user, password=password, timeout=timeout, max_retries=0
        )
    )


def probe(spec: EngineSpec) -> Probe:
    """Ask the port what it is (authenticated when the spec has a password)."""
    client = _client(spec)
    try:
        with _quiet_client():
            info = detect(client, url_of(spec))
    except EngineError as exc:
        cause = exc.__cause__
        if isinstance(cause, AuthenticationException):
            return Probe(answers=True, auth_failed=True)
        if isinstance(cause, TransportError) and isinstance(cause.status_code, int):
            return Probe(answers=True)  # HTTP, but not an engine's answer
        return Probe(answers=False)
    except OpenSearchException:  # an answer that is not JSON (some other web server)
        return Probe(answers=True)
    finally:
        client.close()
    return Probe(answers=True, engine=info.engine, version=info.version)


def _healthy(spec: EngineSpec) -> bool:
    client = _client(spec)
    try:
        with _quiet_client():
            # request_timeout keeps opensearch-py from taking `timeout` as its own socket timeout
            health = client.cluster.health(
                wait_for_status="yellow", timeout="1s", request_timeout=5
            )
    except TransportError:
        return False
    finally:
        client.close()
    return isinstance(health, dict) and health.get("status") in ("yellow", "green")


def _requires_auth(spec: EngineSpec) -> bool:
    """Whether the node refuses an unauthenticated request (HTTP 401)."""
    client = _client(spec, authenticate=False)
    try:
        with _quiet_client():
            client.cluster.health()
    except AuthenticationException:
        return True
    except OpenSearchException:
        return False
    finally:
        client.close()
    return False


def node_plugins(client: OpenSearch) -> list[str]:
    """Names of the plugins a node runs (``_cat/plugins``; modules are not listed)."""
    rows = client.cat.plugins(format="json")
    return sorted({str(row.get("component")) for row in rows if isinstance(row, dict)})


def _running_plugins(spec: EngineSpec) -> list[str] | None:
    client = _client(spec)
    try:
        with _quiet_client():
            return node_plugins(client)
    except OpenSearchException:
        return None
    finally:
        client.close()


# --------------------------------------------------------------------------- processes


def process_state(pid: int) -> str:
    """``running``, ``stopped`` (SIGSTOP / traced) or ``gone`` (no such process, or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except PermissionError:
            return "running"
        return "running"
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X", "x"):
        return "gone"
    if state in ("T", "t"):
        return "stopped"
    return "running"


def _is_ours(pid: int, spec: EngineSpec) -> bool:
    """Guard against pid reuse: the process's command line names this node's run dir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return process_state(pid) != "gone"
    return str(run_dir(spec)).encode() in cmdline


@dataclass(frozen=True)
class Tracked:
    """A process from one of the node's pid files."""

    pid: int
    state: str  # "running" | "stopped"


def _tracked(spec: EngineSpec, pid_file: str) -> Tracked | None:
    """The pid file's process if it still exists as ours (neither gone nor a zombie)."""
    try:
        pid = int((run_dir(spec) / pid_file).read_text().strip())
    except (OSError, ValueError):
        return None
    state = process_state(pid)
    if state == "gone" or not _is_ours(pid, spec):
        return None
    return Tracked(pid, state)


def _live(spec: EngineSpec) -> list[Tracked]:
    return [t for t in (_tracked(spec, "node.pid"), _tracked(spec, "launcher.pid")) if t]


# Children spawned by this Python process, reaped lazily so they never linger as zombies.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap() -> None:
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


# --------------------------------------------------------------------------- logs


def log_tail(spec: EngineSpec, lines: int = 8) -> str:
    """Last meaningful lines of this run's console (it carries log4j output too), one line."""
    path = run_dir(spec) / "console.log"
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log output)"
    kept: list[str] = []
    for ln in text[-200:]:
        ln = ln.strip()
        if (
            not ln
            or ln.startswith(("at ", "...", "warning: no-jdk"))
            or ln in ("output:", "error:")
        ):
            continue
        if not kept or kept[-1] != ln[:300]:
            kept.append(ln[:300])
    tail = " | ".join(kept[-lines:]) if kept else "(no log output)"
    return f"{tail} (log: {path})"


# --------------------------------------------------------------------------- configuration


def node_settings(spec: EngineSpec, run: Path) -> dict[str, Any]:
    """The node's ``opensearch.yml`` / ``elasticsearch.yml`` settings."""
    settings: dict[str, Any] = {
        "cluster.name": f"splade-es-{spec.port}",
        "node.name": f"splade-es-{spec.port}",
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": spec.port,
        # transport port away from common defaults so several nodes can coexist
        "transport.port": spec.port + 100,
        "path.data": str(run / "data"),
        "path.logs": str(run / "logs"),
        "cluster.routing.allocation.disk.threshold_enabled": False,
    }
    if spec.cluster:
        del settings["discovery.type"]  # each engine's default: discovery among the seeds
        settings.update(_discovery(spec))
    if spec.engine == "opensearch":
        settings["action.auto_create_index"] = True
        if "ml" in features(spec):
            settings.update(ML_SETTINGS)
    elif major(spec.version) >= 8:
        # basic auth over plain HTTP when the spec has a password (single-node: no transport-TLS
        # bootstrap check); TLS stays off either way.
        settings.update(
            {
                "xpack.security.enabled": spec.password is not None,
                "xpack.security.http.ssl.enabled": False,
                "xpack.security.transport.ssl.enabled": False,
                "xpack.security.enrollment.enabled": False,
            }
        )
    elif major(spec.version) == 7:
        settings["xpack.security.enabled"] = False
    return settings


def _discovery(spec: EngineSpec) -> dict[str, Any]:
    """A cluster member's discovery settings (instead of ``discovery.type: single-node``):
    every member is a seed and a cluster-manager candidate, so any two of three elect one."""
    if not spec.cluster:
        return {}
    names = [f"splade-es-{port}" for port in spec.cluster]
    initial = (
        "cluster.initial_cluster_manager_nodes"
        if spec.engine == "opensearch"
        else "cluster.initial_master_nodes"
    )
    return {
        "cluster.name": f"splade-es-cluster-{spec.cluster[0]}",
        "discovery.seed_hosts": [f"127.0.0.1:{port + 100}" for port in spec.cluster],
        initial: names,
    }


def _write_config(spec: EngineSpec, home: Path, run: Path) -> Path:
    conf = run / "config"
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree(home / "config", conf)
    # jvm.options names logs/ and data relative to the (root-owned) home: point them at run/.
    jvm = conf / "jvm.options"
    if jvm.is_file():
        text = jvm.read_text()
        text = re.sub(r"(?<=[=:])logs/", str(run / "logs") + "/", text)
        text = re.sub(r"HeapDumpPath=data\b", f"HeapDumpPath={run / 'data'}", text)
        jvm.write_text(text)
    yml = conf / f"{spec.engine}.yml"
    yml.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in node_settings(spec, run).items()))
    return conf


def _add_user(spec: EngineSpec, home: Path, conf: Path, java: Path) -> None:
    """Create the file-realm superuser in ``conf`` (``users``, ``users_roles``).

    Runs as the invoking user before the run dir is chowned to the node user; the password goes
    to the tool's prompt on stdin so it never shows in a process list.
    """
    assert spec.password is not None
    env = dict(os.environ)
    env.update(ES_JAVA_HOME=str(java), ES_PATH_CONF=str(conf))
    env.pop("ES_JAVA_OPTS", None)
    env.pop("JAVA_TOOL_OPTIONS", None)
    for name in ("users", "users_roles"):  # the tool needs both files; start from empty ones
        (conf / name).write_text("")
    tool = home / "bin" / "elasticsearch-users"
    try:
        res = subprocess.run(
            [str(tool), "useradd", SECURED_USER, "-r", "superuser"],
            input=f"{spec.password}\n{spec.password}\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise LauncherError(f"cannot run {tool}: {exc}") from exc
    if res.returncode != 0 or not (conf / "users").is_file():
        out = " | ".join(
            ln.strip()
            for ln in (res.stdout + res.stderr).replace(spec.password, "***").splitlines()
            if ln.strip()
        )
        raise LauncherError(f"{tool.name} useradd {SECURED_USER} failed: {out[-500:]}")
    for name in ("users", "users_roles"):
        (conf / name).chmod(0o600)


# --------------------------------------------------------------------------- service user


def _ensure_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run as (None if we are not root); created if missing."""
    if os.geteuid() != 0:
        return None
    name = service_user_name()
    # useradd's own locking does not stop two at once here (both succeed, one entry survives, and
    # the launchers run as different uids): launchers take turns on the account files' lock file
    with open(PASSWD_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
        res = subprocess.run(cmd, capture_output=True, text=True)
        try:  # made by us, or by something other than a launcher since we looked
            return pwd.getpwnam(name)
        except KeyError:
            problem = res.stderr.strip() or f"exit {res.returncode}"
            raise LauncherError(f"cannot create user {name}: {problem}") from None


def _check_access(path: Path, user: pwd.struct_passwd) -> None:
    """Fail early if the node user cannot reach ``path`` (a 0700 parent such as /root)."""
    cur = path.resolve()
    for parent in [cur, *cur.parents]:
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            continue
        if not st.st_mode & 0o001:
            raise LauncherError(
                f"user {user.pw_name} cannot traverse {parent}: "
                "set SPLADE_ES_CACHE to a world-readable dir"
            )


def _chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chown(dirpath, user.pw_uid, user.pw_gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


# --------------------------------------------------------------------------- start


def start(spec: EngineSpec, wait_s: float | None = None) -> str:
    """Start the node detached (it survives this process) unless it is up; wait for health.

    ``wait_s`` defaults to ``SPLADE_ES_START_WAIT`` or 180 s. Returns the node's URL.
    """
    wait = start_wait(wait_s)
    spawned = spawn_unless_running(spec)
    await_healthy(spec, wait, spawned)
    return url_of(spec)


def spawn_unless_running(spec: EngineSpec) -> bool:
    """Spawn the node unless one runs (or is starting) on its port; True if one was spawned."""
    check_spec(spec)
    _reap()
    run = run_dir(spec)
    run.mkdir(parents=True, exist_ok=True)
    with (run / ".start.lock").open("a") as lock:
        # serialize check-and-spawn across processes (e.g. pytest-xdist workers)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _start_locked(spec)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def await_healthy(spec: EngineSpec, wait: float, spawned: bool) -> None:
    """Wait up to ``wait`` seconds for the node's health, then check its plugins."""
    if not _wait_healthy(spec, wait):
        what = "started" if spawned else "already starting"
        raise LauncherError(
            f"{spec.engine} {spec.version} ({what}) not healthy on {url_of(spec)} after "
            f"{wait:.0f}s; it keeps starting: `engine start` again waits longer (--wait, "
            f"{START_WAIT_ENV}), `engine stop` stops it. Log: {log_tail(spec)}"
        )
    _check_plugins(spec)


def _start_locked(spec: EngineSpec) -> bool:
    """Decide what runs on the port and spawn a node if none; True if one was spawned."""
    found = probe(spec)
    if found.auth_failed:
        who = "the password of this spec" if spec.password is not None else "no credentials"
        raise LauncherError(f"port {spec.port} answers HTTP 401 (authentication failed) to {who}")
    if found.engine is not None:
        if (found.engine, found.version) != (spec.engine, spec.version):
            raise LauncherError(
                f"port {spec.port} is already used by {found.engine} {found.version}"
            )
        if spec.password is not None and not _requires_auth(spec):
            raise LauncherError(f"port {spec.port} is already used by a node without security")
        return False
    node = _tracked(spec, "node.pid")
    wrapper = _tracked(spec, "launcher.pid")
    if node is not None and node.state == "stopped":
        raise LauncherError(
            f"{spec.engine} {spec.version} on port {spec.port} is stopped (pid {node.pid}, "
            f"SIGSTOP): resume it with `kill -CONT {node.pid}` or stop it with "
            f"`splade-es engine stop --engine {spec.engine} --port {spec.port}`"
        )
    if node is not None or (wrapper is not None and wrapper.state == "running"):
        return False  # still starting (or recovering): wait for it
    _clear_stale(spec, wrapper)
    if found.answers or _port_in_use(spec.port):
        raise LauncherError(
            f"port {spec.port} is in use by another program (not a node started here): "
            "choose another with --port"
        )
    if _port_in_use(spec.port + 100):
        raise LauncherError(
            f"transport port {spec.port + 100} (HTTP port + 100) is in use by another program: "
            "choose another HTTP port with --port"
        )
    _spawn(spec)
    return True


def _clear_stale(spec: EngineSpec, wrapper: Tracked | None) -> None:
    """Remove what a crashed node left: a stopped wrapper whose JVM is gone, stale pid files."""
    if wrapper is not None:  # stopped, and its JVM gone: nothing to resume
        with contextlib.suppress(ProcessLookupError):
            os.kill(wrapper.pid, signal.SIGKILL)
        _wait_gone(spec, 10)
    for name in ("node.pid", "launcher.pid"):
        (run_dir(spec) / name).unlink(missing_ok=True)


def _spawn(spec: EngineSpec) -> None:
    home = install(spec)
    java = find_java(spec)
    user = _ensure_user()
    run = run_dir(spec)
    for sub in ("data", "logs"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    conf = _write_config(spec, home, run)
    if spec.password is not None:
        _add_user(spec, home, conf, java)
    if user is not None:
        _check_access(home, user)
        _check_access(run, user)
        _chown_tree(run, user)

    env = dict(os.environ)
    opts = f"-Xms{node_heap(spec)} -Xmx{node_heap(spec)}"
    if spec.engine == "opensearch":
        env.update(
            OPENSEARCH_JAVA_HOME=str(java),
            OPENSEARCH_PATH_CONF=str(conf),
            OPENSEARCH_JAVA_OPTS=opts,
        )
        script = home / "bin" / "opensearch"
    else:
        env.update(ES_JAVA_HOME=str(java), ES_PATH_CONF=str(conf), ES_JAVA_OPTS=opts)
        script = home / "bin" / "elasticsearch"
    env.pop("JAVA_TOOL_OPTIONS", None)
    tmp = run / "tmp"
    tmp.mkdir(exist_ok=True)
    if user is not None:
        os.chown(tmp, user.pw_uid, user.pw_gid)
    env["OPENSEARCH_TMPDIR" if spec.engine == "opensearch" else "ES_TMPDIR"] = str(tmp)
    cmd = [str(script), "-p", str(run / "node.pid")]
    if user is not None:
        cmd = ["runuser", "-u", user.pw_name, "--", *cmd]
        env["HOME"] = str(run)
    if (run / "console.log").exists():  # keep one previous run's console for post-mortems
        (run / "console.log").replace(run / "console.prev.log")
    console = (run / "console.log").open("wb")
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=str(run),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session: survives our exit and terminal hangups
        )
    except OSError as exc:
        raise LauncherError(f"cannot start {script}: {exc}") from exc
    finally:
        console.close()
    _CHILDREN[proc.pid] = proc
    (run / "launcher.pid").write_text(str(proc.pid))


def _wait_healthy(spec: EngineSpec, wait_s: float) -> bool:
    """Poll health until ``wait_s``; fail at once when our node's processes are gone or stopped."""
    deadline = time.monotonic() + wait_s
    grace_until = time.monotonic() + 5  # the wrapper may not have written its pid file yet
    while True:
        if _healthy(spec):
            return True
        _reap()
        if time.monotonic() > grace_until:
            live = _live(spec)
            if not live and not probe(spec).answers:
                raise LauncherError(
                    f"{spec.engine} {spec.version} exited during startup: {log_tail(spec)}"
                )
            node = _tracked(spec, "node.pid")
            if node is not None and node.state == "stopped":
                raise LauncherError(
                    f"{spec.engine} {spec.version} on port {spec.port} was stopped (pid "
                    f"{node.pid}, SIGSTOP) while starting: resume it with `kill -CONT {node.pid}`"
                )
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def _check_plugins(spec: EngineSpec) -> None:
    """A node already on the port may lack plugins this spec asks for: say which."""
    wanted = {p.name: p.feature for p in plugin_zips(spec)}
    if not wanted:
        return
    running = _running_plugins(spec)
    if running is None:
        return
    missing = sorted(set(wanted) - set(running))
    if missing:
        needed = sorted({wanted[m] for m in missing})
        raise LauncherError(
            f"{spec.engine} {spec.version} on port {spec.port} runs without "
            f"{', '.join(missing)} (needed for --plugins {','.join(needed)}): stop it with "
            f"`splade-es engine stop --engine {spec.engine} --port {spec.port}` and start again"
        )


# --------------------------------------------------------------------------- stop, status


def stop(spec: EngineSpec, timeout_s: float = 30) -> bool:
    """SIGTERM the node (clean shutdown), SIGKILL after ``timeout_s``; True if one was running.

    A stopped (SIGSTOP) node is continued so it can act on the SIGTERM.
    """
    _reap()
    node = _tracked(spec, "node.pid")
    targets = [node] if node is not None else _live(spec)
    if not targets:
        for name in ("node.pid", "launcher.pid"):
            (run_dir(spec) / name).unlink(missing_ok=True)
        return False
    for t in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(t.pid, signal.SIGTERM)
    for t in _live(spec):  # the wrapper too: runuser stops itself when its child is stopped
        if t.state == "stopped":
            with contextlib.suppress(ProcessLookupError):
                os.kill(t.pid, signal.SIGCONT)
    if not _wait_gone(spec, timeout_s):
        _signal_all(spec, signal.SIGKILL)
        _wait_gone(spec, 10)
    for name in ("node.pid", "launcher.pid"):
        (run_dir(spec) / name).unlink(missing_ok=True)
    return True


def _signal_all(spec: EngineSpec, sig: int) -> None:
    for t in _live(spec):
        with contextlib.suppress(ProcessLookupError):
            os.kill(t.pid, sig)


def kill_hard(spec: EngineSpec) -> None:
    """SIGKILL the node without shutdown (simulates a crash; data must survive a restart)."""
    _reap()
    _signal_all(spec, signal.SIGKILL)
    _wait_gone(spec, 10)


def _wait_gone(spec: EngineSpec, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap()
        if not _live(spec):
            return True
        time.sleep(0.1)
    return False


def status(spec: EngineSpec) -> dict[str, Any]:
    """Whether the node answers on its port, its version, pid, process state and plugins.

    ``plugins`` lists what the running node reports, or what its home has installed when it
    is down.
    """
    _reap()
    found = probe(spec)
    node = _tracked(spec, "node.pid")
    home = home_dir(spec)
    running = found.engine is not None or found.auth_failed
    plugins = _running_plugins(spec) if found.engine is not None else None
    result: dict[str, Any] = {
        "running": running,
        "url": url_of(spec),
        "version": found.version,
        "engine": found.engine,
        "pid": node.pid if node else None,
        "process": node.state if node else None,
        "plugins": plugins if plugins is not None else installed_plugins(home),
        "home": str(home),
    }
    if spec.password is not None:
        result["user"] = SECURED_USER
    if found.auth_failed:
        result["error"] = "authentication failed"
    return result
