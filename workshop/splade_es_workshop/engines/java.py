"""Find a Java runtime the engine version runs on (2.x/7.x need the Security Manager, gone in 24)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .spec import EngineSpec, LauncherError, major

_JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/local/lib/jvm"), Path("/opt/java"))


def java_major(java_home: Path) -> int | None:
    """The Java feature version of a JDK/JRE folder (from ``release``, else ``java -version``)."""
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


def java_range(spec: EngineSpec) -> tuple[int, int]:
    """Inclusive Java majors the engine runs on."""
    engine_major = major(spec.version)
    if spec.engine == "opensearch":
        return (11, 23) if engine_major < 3 else (21, 99)
    if engine_major <= 7:
        return (11, 17)
    if engine_major == 8:
        return (17, 23)
    return (21, 99)


def _hint(lo: int, hi: int) -> str:
    return f"Java {lo}+" if hi >= 99 else f"Java {lo}..{hi}"


def find_java(spec: EngineSpec) -> Path:
    """``OPENSEARCH_JAVA_HOME``/``ES_JAVA_HOME`` if set (checked), else the first fitting JDK
    among ``JAVA_HOME``, the ``java`` on PATH and the usual JVM folders."""
    lo, hi = java_range(spec)
    env_var = "OPENSEARCH_JAVA_HOME" if spec.engine == "opensearch" else "ES_JAVA_HOME"
    explicit = os.environ.get(env_var)
    if explicit:
        ver = java_major(Path(explicit))
        if ver is None or not lo <= ver <= hi:
            raise LauncherError(
                f"{env_var}={explicit} is Java {ver}; "
                f"{spec.engine} {spec.version} needs {_hint(lo, hi)}"
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
        ver = java_major(real)
        if ver is not None and lo <= ver <= hi and (real / "bin" / "java").is_file():
            return real
    raise LauncherError(f"{_hint(lo, hi)} needed for {spec.engine} {spec.version}: set {env_var}")
