"""Fetch, cache and run a real single-node search engine for integration tests and CI.

Why: SPLADE retrieval must be tested against a real engine (``rank_features`` /
``rank_feature`` on OpenSearch, ``sparse_vector`` on Elasticsearch), and CI machines have
only Java, Maven Central and PyPI. So the engine's *integ-test* zip is downloaded from Maven
Central, verified against Central's ``.sha1``, unpacked under :func:`cache_dir`, completed with
the modules it lacks, and started detached on ``127.0.0.1``.

Verified here (Debian, Java 17 default, Temurin 25 in ``/usr/lib/jvm``):

* OpenSearch 2.19.6 on Java 17 and 3.8.0 on Java 25, from
  ``org.opensearch.distribution.integ-test-zip:opensearch:<v>@zip``. That zip holds only the
  ``transport-netty4`` module, so ``org.opensearch.plugin:mapper-extras-client:<v>`` is installed
  as ``modules/mapper-extras`` (classname ``org.opensearch.index.mapper.MapperExtrasPlugin`` on
  2.x, ``...MapperExtrasModulePlugin`` on 3.x, read from the jar) for ``rank_features`` and the
  ``rank_feature`` query.
* Elasticsearch 8.19.21 (Java 17) and 9.2.4 (Java 21+) from
  ``org.elasticsearch.distribution.integ-test-zip:elasticsearch:<v>@zip`` with
  ``xpack.security.enabled: false``: the ``sparse_vector`` field (server) and query
  (x-pack-core) work. The zip lacks the ``rest-root`` module, so ``GET /`` answers 405 (the
  version comes from ``GET /_nodes/_local``). Central serves the 9.x zips without ``.pom`` or
  ``.sha1`` and omits them from ``maven-metadata.xml``: their SHA-1 is pinned in
  ``_PINNED_SHA1``; 8.19.x is fully published, hence the default. 9.x hides ``sparse_vector``
  values from ``_source`` unless ``index.mapping.exclude_source_vectors: false``.
  ES 7.17.29 + ``org.elasticsearch.plugin:mapper-extras-client:7.17.29`` (``rank_features``)
  works too on Java 17.
* Elasticsearch 8.x/9.x with HTTP basic auth (``EngineSpec.password``, e.g. :data:`SECURED_SPEC`):
  ``xpack.security.enabled: true`` with HTTP and transport TLS off is accepted by a
  ``single-node`` node on loopback (the transport-TLS bootstrap check only logs a warning).
  The file-realm superuser :data:`SECURED_USER` is created in the node's per-run config with
  the distribution's ``bin/elasticsearch-users useradd`` (password on stdin, not argv). The
  ``.security`` index cannot be created (its mapping needs ``pattern_capture`` from the
  ``analysis-common`` module the zip lacks; a few startup warnings), so native-realm users
  and API keys do not work there: file-realm basic auth does.
* ``neural_sparse`` (OpenSearch neural-search plugin) cannot be had from Maven Central: 404 for
  ``https://repo1.maven.org/maven2/org/opensearch/plugin/opensearch-neural-search/maven-metadata.xml``,
  ``.../org/opensearch/plugin/neural-search/...``,
  ``.../org/opensearch/opensearch-neural-search/...`` and its dependency
  ``.../org/opensearch/plugin/opensearch-ml-plugin/...`` (only
  ``opensearch-knn`` 2.19.1.0/3.5.0.0 and ``lang-painless`` are there). ``neural_sparse`` with
  ``query_tokens`` builds the same ``FeatureField`` linear queries as ``rank_feature`` +
  ``linear`` + ``boost``, so ``rank_feature`` stands in for it.

Both engines refuse to run as root: as root the node runs as the system user ``splade-es``
(created if missing; env ``SPLADE_ES_USER``) via ``runuser``, and the cache defaults to
``/var/cache/splade-es/engines`` because ``/root`` (0700) is not traversable by that user.
The transport port is ``http port + 100``.

Layout under :func:`cache_dir`::

    downloads/                      zips and jars from Central
    <engine>-<version>/             engine home (read-only for the node)
    run/<engine>-<version>-<port>/  config/, data/, logs/, tmp/, node.pid (JVM),
                                    launcher.pid (wrapper), console.log (+ console.prev.log)
    run/<engine>-<version>-secured-<port>/   the same for a node with basic auth
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SPECS",
    "SECURED_SPEC",
    "SECURED_USER",
    "EngineSpec",
    "LauncherError",
    "cache_dir",
    "install",
    "kill_hard",
    "start",
    "status",
    "stop",
]

MAVEN_CENTRAL = os.environ.get("SPLADE_ES_MAVEN", "https://repo1.maven.org/maven2").rstrip("/")
SERVICE_USER = os.environ.get("SPLADE_ES_USER", "splade-es")
_INSTALLED_MARKER = ".splade-es-installed"
# Central serves the Elasticsearch 9.x integ-test zips without .sha1/.pom (and without listing
# them in maven-metadata.xml); these hashes were taken from downloads over HTTPS.
_PINNED_SHA1: dict[str, str] = {
    "elasticsearch-9.2.4.zip": "54ca6e33db3623ecf3bed523f9b5c494993ff692",
}
_JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/local/lib/jvm"), Path("/opt/java"))
# File-realm superuser created on nodes whose spec has a password (Elasticsearch 8+ only).
SECURED_USER = "elastic-test"


class LauncherError(RuntimeError):
    """One-line, actionable failure of fetching, installing or running an engine."""


@dataclass(frozen=True)
class EngineSpec:
    """What to run: engine name, version, HTTP port on 127.0.0.1 and JVM heap.

    ``password`` (Elasticsearch 8+ only) turns on HTTP basic auth: ``xpack.security.enabled``
    without TLS and a file-realm superuser :data:`SECURED_USER` with that password. ``None``
    (the default) runs the node without security. The repr hides it.
    """

    engine: str  # "opensearch" | "elasticsearch"
    version: str
    port: int
    heap: str = "512m"
    password: str | None = field(default=None, repr=False)


# Only engines verified to start and serve SPLADE queries here.
DEFAULT_SPECS: dict[str, EngineSpec] = {
    "opensearch": EngineSpec("opensearch", "2.19.6", 9200),
    # 8.19.x rather than 9.x: fully published on Central (pom, .sha1) and runs on Java 17.
    "elasticsearch": EngineSpec("elasticsearch", "8.19.21", 9250),
}

# Elasticsearch with basic auth (user SECURED_USER) for authentication tests; a fixed test
# password, not a secret: the node listens on 127.0.0.1 only.
SECURED_SPEC = EngineSpec("elasticsearch", "8.19.21", 9251, password="splade-es-test-pw")


# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """Root of downloads, engine homes and node runtime dirs (env ``SPLADE_ES_CACHE`` wins)."""
    env = os.environ.get("SPLADE_ES_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        # /root is 0700: the unprivileged node user could not read a home under it.
        return Path("/var/cache/splade-es/engines")
    return Path.home() / ".cache" / "splade-es" / "engines"


def _home_dir(spec: EngineSpec) -> Path:
    return cache_dir() / f"{spec.engine}-{spec.version}"


def _run_dir(spec: EngineSpec) -> Path:
    secured = "-secured" if spec.password is not None else ""
    return cache_dir() / "run" / f"{spec.engine}-{spec.version}{secured}-{spec.port}"


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise LauncherError(f"bad version {version!r}") from exc


def _check_spec(spec: EngineSpec) -> None:
    if spec.engine not in ("opensearch", "elasticsearch"):
        raise LauncherError(f"unknown engine {spec.engine!r}: use 'opensearch' or 'elasticsearch'")
    _major(spec.version)
    if not re.fullmatch(r"\d+[kKmMgG]", spec.heap):
        raise LauncherError(f"bad heap {spec.heap!r}: use e.g. '512m' or '2g'")
    if spec.password is not None:
        if spec.engine != "elasticsearch" or _major(spec.version) < 8:
            raise LauncherError(
                f"password (basic auth) is supported on Elasticsearch 8+ only, "
                f"not {spec.engine} {spec.version}"
            )
        # elasticsearch-users rejects shorter passwords; newlines would break its stdin prompt.
        if len(spec.password) < 6 or any(c in spec.password for c in "\r\n"):
            raise LauncherError("bad password: use at least 6 characters and no line breaks")


# --------------------------------------------------------------------------- download


def _maven_url(group: str, artifact: str, version: str, ext: str) -> str:
    return (
        f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.{ext}"
    )


def _http_get(url: str, timeout: float = 60) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data: bytes = resp.read()
            return data
    except urllib.error.HTTPError as exc:
        raise LauncherError(f"download failed: {url}: {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LauncherError(f"download failed: {url}: {exc}") from exc


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected_sha1(url: str) -> str:
    """Central's ``.sha1`` for ``url``; a pinned one where Central serves the file without it."""
    try:
        return _http_get(url + ".sha1").decode("ascii", "replace").split()[0].strip().lower()
    except IndexError as exc:
        raise LauncherError(f"download failed: {url}.sha1: empty checksum") from exc
    except LauncherError:
        pinned = _PINNED_SHA1.get(url.rsplit("/", 1)[-1])
        if pinned:
            return pinned
        try:  # is it the artifact or only its checksum that is missing?
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30).close()
        except urllib.error.HTTPError as exc:
            raise LauncherError(f"download failed: {url}: {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise LauncherError(f"download failed: {url}: {exc}") from exc
        raise LauncherError(
            f"no checksum on Central for {url} (.sha1 404): pin one in _PINNED_SHA1"
        ) from None


def _fetch(group: str, artifact: str, version: str, ext: str) -> Path:
    """Download one Maven artifact into the cache once, verified against Central's ``.sha1``."""
    url = _maven_url(group, artifact, version, ext)
    dest = cache_dir() / "downloads" / f"{group}__{artifact}-{version}.{ext}"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = _expected_sha1(url)
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        raise LauncherError(f"download failed: {url}: {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise LauncherError(f"download failed: {url}: {exc}") from exc
    actual = _sha1(tmp)
    if actual != expected:
        tmp.unlink(missing_ok=True)
        raise LauncherError(f"checksum mismatch: {url}: sha1 {actual} != {expected}")
    tmp.replace(dest)
    return dest


# --------------------------------------------------------------------------- install


def _extract(zip_path: Path, dest: Path) -> None:
    """Unzip keeping Unix modes (zipfile drops them, and bin/ scripts must be executable)."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(target, mode)


def _plugin_classname(jar: Path, candidates: tuple[str, ...]) -> str:
    with zipfile.ZipFile(jar) as zf:
        names = set(zf.namelist())
    for cls in candidates:
        if cls.replace(".", "/") + ".class" in names:
            return cls
    raise LauncherError(f"no plugin class {candidates} in {jar.name}")


def _add_module(
    home: Path, spec: EngineSpec, name: str, jar: Path, classname: str, description: str
) -> None:
    """Install a plugin jar as a bundled module (a folder with a plugin descriptor)."""
    mod = home / "modules" / name
    mod.mkdir(parents=True, exist_ok=True)
    shutil.copy2(jar, mod / jar.name.split("__", 1)[-1])
    key = "opensearch.version" if spec.engine == "opensearch" else "elasticsearch.version"
    (mod / "plugin-descriptor.properties").write_text(
        "\n".join(
            [
                f"description={description}",
                f"version={spec.version}",
                f"name={name}",
                f"classname={classname}",
                "java.version=11",
                f"{key}={spec.version}",
                "extended.plugins=",
                "has.native.controller=false",
                "",
            ]
        )
    )


def install(spec: EngineSpec) -> Path:
    """Download (cached, sha1-verified), unpack and complete the engine; return its home dir."""
    _check_spec(spec)
    home = _home_dir(spec)
    if (home / _INSTALLED_MARKER).is_file():
        return home
    major = _major(spec.version)
    if spec.engine == "opensearch":
        dist = _fetch(
            "org.opensearch.distribution.integ-test-zip", "opensearch", spec.version, "zip"
        )
    else:
        dist = _fetch(
            "org.elasticsearch.distribution.integ-test-zip", "elasticsearch", spec.version, "zip"
        )
    extras: Path | None = None
    if spec.engine == "opensearch":
        extras = _fetch("org.opensearch.plugin", "mapper-extras-client", spec.version, "jar")
    elif major <= 7:
        extras = _fetch("org.elasticsearch.plugin", "mapper-extras-client", spec.version, "jar")

    staging = home.with_name(home.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _extract(dist, staging)
    roots = [p for p in staging.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise LauncherError(f"unexpected layout in {dist.name}: {[p.name for p in roots]}")
    root = roots[0]
    if extras is not None:
        if spec.engine == "opensearch":
            cls = _plugin_classname(
                extras,
                (
                    "org.opensearch.index.mapper.MapperExtrasModulePlugin",
                    "org.opensearch.index.mapper.MapperExtrasPlugin",
                ),
            )
        else:
            cls = _plugin_classname(extras, ("org.elasticsearch.index.mapper.MapperExtrasPlugin",))
        _add_module(
            root, spec, "mapper-extras", extras, cls, "Adds advanced field mappers (rank_features)"
        )
    for p in (root / "bin").iterdir():
        if p.is_file() and not p.suffix:
            p.chmod(0o755)
    (root / _INSTALLED_MARKER).write_text(
        json.dumps({"engine": spec.engine, "version": spec.version})
    )
    shutil.rmtree(home, ignore_errors=True)
    root.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    _make_traversable(home)
    return home


# --------------------------------------------------------------------------- java + user


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    if release.is_file():
        m = re.search(
            r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(errors="replace"), re.M
        )
        if m:
            first = int(m.group(1))
            return int(m.group(2) or 0) if first == 1 else first
    java = java_home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30
        ).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    first = int(m.group(1))
    return int(m.group(2) or 0) if first == 1 else first


def _java_range(spec: EngineSpec) -> tuple[int, int]:
    """Inclusive Java majors the engine runs on (2.x/7.x need the Security Manager, gone in 24)."""
    major = _major(spec.version)
    if spec.engine == "opensearch":
        return (11, 23) if major < 3 else (21, 99)
    if major <= 7:
        return (11, 17)
    if major == 8:
        return (17, 23)
    return (21, 99)


def _java_hint(lo: int, hi: int) -> str:
    return f"Java {lo}+" if hi >= 99 else f"Java {lo}..{hi}"


def _find_java(spec: EngineSpec) -> Path:
    lo, hi = _java_range(spec)
    env_var = "OPENSEARCH_JAVA_HOME" if spec.engine == "opensearch" else "ES_JAVA_HOME"
    explicit = os.environ.get(env_var)
    if explicit:
        ver = _java_major(Path(explicit))
        if ver is None or not lo <= ver <= hi:
            raise LauncherError(
                f"{env_var}={explicit} is Java {ver}; "
                f"{spec.engine} {spec.version} needs {_java_hint(lo, hi)}"
            )
        return Path(explicit)
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    which = shutil.which("java")
    if which:
        candidates.append(Path(os.path.realpath(which)).parent.parent)
    for d in _JVM_DIRS:
        if d.is_dir():
            candidates.extend(sorted(p for p in d.iterdir() if p.is_dir() and not p.is_symlink()))
    seen: set[Path] = set()
    for cand in candidates:
        real = cand.resolve()
        if real in seen:
            continue
        seen.add(real)
        ver = _java_major(real)
        if ver is not None and lo <= ver <= hi and (real / "bin" / "java").is_file():
            return real
    hint = _java_hint(lo, hi)
    raise LauncherError(f"{hint} needed for {spec.engine} {spec.version}: set {env_var}")


def _ensure_user() -> pwd.struct_passwd | None:
    """Return the unprivileged user to run as (None if we are not root); create it if missing."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise LauncherError(
            f"cannot create user {SERVICE_USER}: {res.stderr.strip() or res.returncode}"
        )
    return pwd.getpwnam(SERVICE_USER)


def _make_traversable(path: Path) -> None:
    """Let the node user read the engine home: o+rX on files/dirs we created (best effort)."""
    if os.geteuid() != 0:
        return
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o755)
        for f in filenames:
            fp = os.path.join(dirpath, f)
            if not os.path.islink(fp):
                os.chmod(fp, os.stat(fp).st_mode | 0o444)


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


# --------------------------------------------------------------------------- processes


def _pid_alive(pid: int) -> bool:
    """Alive and not a zombie (kill(pid, 0) succeeds on zombies)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _is_our_node(pid: int, spec: EngineSpec) -> bool:
    """Guard against pid reuse: the process must be a JVM running this engine home."""
    try:
        cmdline = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return _pid_alive(pid)
    return str(_home_dir(spec)) in cmdline or str(_run_dir(spec)) in cmdline


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _node_pid(spec: EngineSpec) -> int | None:
    """PID of the node's JVM (from the engine's own ``-p`` pid file), if it is alive."""
    run = _run_dir(spec)
    pid = _read_pid(run / "node.pid")
    if pid is not None and _pid_alive(pid) and _is_our_node(pid, spec):
        return pid
    return None


def _launcher_pid(spec: EngineSpec) -> int | None:
    """PID of the wrapper (runuser / start script) we spawned, if alive; covers early startup."""
    pid = _read_pid(_run_dir(spec) / "launcher.pid")
    if pid is not None and _pid_alive(pid) and _is_our_node(pid, spec):
        return pid
    return None


# Children spawned by this Python process, reaped lazily so they never linger as zombies.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap() -> None:
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def _auth_headers(spec: EngineSpec) -> dict[str, str]:
    """Basic-auth header for a secured node's :data:`SECURED_USER`; none without a password."""
    if spec.password is None:
        return {}
    token = base64.b64encode(f"{SECURED_USER}:{spec.password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _get_json(spec: EngineSpec, path: str, timeout: float = 3) -> Any:
    """``GET`` ``path`` on the node, authenticated when the spec has a password."""
    req = urllib.request.Request(f"http://127.0.0.1:{spec.port}{path}", headers=_auth_headers(spec))
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


_AUTH_FAILED = "authentication failed"


def _root_info(spec: EngineSpec) -> dict[str, Any] | None:
    """``GET /`` of the node, or None if nothing answers HTTP on the port.

    Elasticsearch's integ-test zip lacks the ``rest-root`` module (``GET /`` answers 405), so
    the version then comes from ``GET /_nodes/_local`` in the same shape. A node that answers
    401 (secured, and the spec has no or another password) gives ``{"error": ...}``.
    """
    try:
        info = _get_json(spec, "/")
        return info if isinstance(info, dict) else None
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return {"error": _AUTH_FAILED}
    except (urllib.error.URLError, OSError, ValueError):
        return None
    try:
        nodes = _get_json(spec, "/_nodes/_local?filter_path=nodes.*.version,nodes.*.build_flavor")
        node = next(iter(nodes["nodes"].values()))
    except urllib.error.HTTPError as exc:
        return {"error": _AUTH_FAILED} if exc.code == 401 else None
    except (
        urllib.error.URLError,
        OSError,
        ValueError,
        KeyError,
        StopIteration,
        TypeError,
        AttributeError,
    ):
        return None
    return {"version": {"number": node.get("version"), "distribution": "elasticsearch"}}


def _requires_auth(spec: EngineSpec) -> bool:
    """Whether the node refuses an unauthenticated request (HTTP 401)."""
    try:
        _get_json(replace(spec, password=None), "/_cluster/health", timeout=5)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return False


def _healthy(spec: EngineSpec) -> bool:
    path = "/_cluster/health?wait_for_status=yellow&timeout=1s"
    try:
        health = _get_json(spec, path, timeout=5)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(health, dict) and health.get("status") in ("yellow", "green")


def _engine_of(info: dict[str, Any]) -> tuple[str, str]:
    if "error" in info:
        return "?", "?"
    ver = info.get("version", {}) or {}
    dist = ver.get("distribution") or "elasticsearch"
    return str(dist), str(ver.get("number", "?"))


def _log_tail(spec: EngineSpec, lines: int = 8) -> str:
    """Last meaningful lines of the node's console (it also carries log4j output), one line."""
    run = _run_dir(spec)
    for path in (run / "console.log", run / "logs" / f"splade-es-{spec.port}.log"):
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
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
        if kept:
            return " | ".join(kept[-lines:])
    return "(no log output)"


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
    settings = {
        "cluster.name": f"splade-es-{spec.port}",
        "node.name": f"splade-es-{spec.port}",
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(spec.port),
        # transport port away from common defaults so several nodes can coexist
        "transport.port": str(spec.port + 100),
        "path.data": str(run / "data"),
        "path.logs": str(run / "logs"),
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.auto_create_index": "true",
    }
    if spec.engine == "elasticsearch":
        settings.pop("action.auto_create_index")
        if _major(spec.version) >= 8:
            settings.update(
                {
                    # basic auth over plain HTTP when the spec has a password (single-node:
                    # no transport-TLS bootstrap check); TLS stays off either way.
                    "xpack.security.enabled": "true" if spec.password is not None else "false",
                    "xpack.security.http.ssl.enabled": "false",
                    "xpack.security.transport.ssl.enabled": "false",
                    "xpack.security.enrollment.enabled": "false",
                }
            )
        if _major(spec.version) == 7:
            settings["xpack.security.enabled"] = "false"
    (conf / f"{'opensearch' if spec.engine == 'opensearch' else 'elasticsearch'}.yml").write_text(
        "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items())
    )
    # single log file name we know (log4j default uses cluster name)
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


def start(spec: EngineSpec, wait_s: float = 120) -> str:
    """Start the node detached (survives this process) unless already up; wait for yellow health."""
    _check_spec(spec)
    url = f"http://127.0.0.1:{spec.port}"
    _reap()
    info = _root_info(spec)
    if info is not None and "error" in info:
        who = "the password of this spec" if spec.password is not None else "no credentials"
        raise LauncherError(f"port {spec.port} answers HTTP 401 ({_AUTH_FAILED}) to {who}")
    if info is not None:
        engine, version = _engine_of(info)
        if (engine, version) != (spec.engine, spec.version):
            raise LauncherError(f"port {spec.port} is already used by {engine} {version}")
        if spec.password is not None and not _requires_auth(spec):
            raise LauncherError(f"port {spec.port} is already used by a node without security")
        if _wait_healthy(spec, wait_s, None):
            return url
    run = _run_dir(spec)
    run.mkdir(parents=True, exist_ok=True)
    with (run / ".start.lock").open("a") as lock:
        # serialize check-and-spawn across processes (e.g. pytest-xdist workers)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _node_pid(spec) is None and _launcher_pid(spec) is None and not _healthy(spec):
                _spawn(spec)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if not _wait_healthy(spec, wait_s, _run_dir(spec)):
        raise LauncherError(
            f"{spec.engine} {spec.version} not healthy on {url} "
            f"after {wait_s:.0f}s: {_log_tail(spec)}"
        )
    return url


def _spawn(spec: EngineSpec) -> None:
    home = install(spec)
    java = _find_java(spec)
    user = _ensure_user()
    run = _run_dir(spec)
    for sub in ("data", "logs"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    conf = _write_config(spec, home, run)
    if spec.password is not None:
        _add_user(spec, home, conf, java)
    (run / "node.pid").unlink(missing_ok=True)
    if user is not None:
        _check_access(home, user)
        _check_access(run, user)
        _chown_tree(run, user)

    env = dict(os.environ)
    opts = f"-Xms{spec.heap} -Xmx{spec.heap}"
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


def _wait_healthy(spec: EngineSpec, wait_s: float, run: Path | None) -> bool:
    deadline = time.monotonic() + wait_s
    grace_until = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _healthy(spec):
            return True
        _reap()
        if (
            run is not None
            and time.monotonic() > grace_until
            and _node_pid(spec) is None
            and _launcher_pid(spec) is None
        ):
            raise LauncherError(
                f"{spec.engine} {spec.version} exited during startup: {_log_tail(spec)}"
            )
        time.sleep(0.5)
    return False


def _signal_all(spec: EngineSpec, sig: int) -> list[int]:
    pids = [p for p in (_node_pid(spec), _launcher_pid(spec)) if p is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


def stop(spec: EngineSpec, timeout_s: float = 30) -> bool:
    """SIGTERM the node (clean shutdown), SIGKILL after ``timeout_s``; True if one was running."""
    _reap()
    node = _node_pid(spec)
    if node is not None:
        os.kill(node, signal.SIGTERM)  # the JVM; the wrapper exits with it
        pids = [node]
    else:
        pids = _signal_all(spec, signal.SIGTERM)
    if not pids:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap()
        if _node_pid(spec) is None and _launcher_pid(spec) is None:
            break
        time.sleep(0.2)
    else:
        _signal_all(spec, signal.SIGKILL)
        _wait_gone(spec, 10)
    for name in ("node.pid", "launcher.pid"):
        (_run_dir(spec) / name).unlink(missing_ok=True)
    return True


def kill_hard(spec: EngineSpec) -> None:
    """SIGKILL the node without shutdown (simulates a crash; data must survive a restart)."""
    _reap()
    _signal_all(spec, signal.SIGKILL)
    _wait_gone(spec, 10)


def _wait_gone(spec: EngineSpec, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap()
        if _node_pid(spec) is None and _launcher_pid(spec) is None:
            return
        time.sleep(0.1)


def status(spec: EngineSpec) -> dict[str, Any]:
    """Whether the node answers on its port, with its reported version and our pid (if any)."""
    _reap()
    info = _root_info(spec)
    pid = _node_pid(spec)
    result: dict[str, Any] = {
        "running": info is not None,
        "url": f"http://127.0.0.1:{spec.port}",
        "version": _engine_of(info)[1] if info is not None else None,
        "engine": _engine_of(info)[0] if info is not None else None,
        "pid": pid,
    }
    if spec.password is not None:
        result["user"] = SECURED_USER
    if info is not None and "error" in info:
        result["error"] = info["error"]
    return result
