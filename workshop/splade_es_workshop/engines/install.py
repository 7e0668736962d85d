"""Unpack an engine distribution into the cache and complete it with modules and plugins.

The home is built in a staging folder and renamed into place only when complete, so an
interrupted install never leaves a half-built home that later starts would trust.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from .catalog import Module, PluginZip, distribution, modules, plugin_zips
from .fetch import fetch
from .java import find_java
from .spec import EngineSpec, LauncherError, check_spec, home_dir

INSTALLED_MARKER = ".splade-es-installed"


def install(spec: EngineSpec) -> Path:
    """Fetch (cached, SHA-1 verified), unpack and complete the engine; return its home."""
    check_spec(spec)
    home = home_dir(spec)
    if (home / INSTALLED_MARKER).is_file():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with (home.parent / f".{home.name}.install.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer per home (several ports, xdist workers)
        try:
            if not (home / INSTALLED_MARKER).is_file():
                _install(spec, home)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return home


def _install(spec: EngineSpec, home: Path) -> None:
    dist = fetch(distribution(spec))
    wanted_modules = [(m, [fetch(a) for a in m.jars]) for m in modules(spec)]
    zips = [(p, fetch(p.zip)) for p in plugin_zips(spec)]

    staging = home.with_name(home.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract(dist, staging)
        roots = [p for p in staging.iterdir() if p.is_dir()]
        if len(roots) != 1:
            raise LauncherError(f"unexpected layout in {dist.name}: {[p.name for p in roots]}")
        root = roots[0]
        for p in (root / "bin").iterdir():
            if p.is_file() and not p.suffix:
                p.chmod(0o755)
        for module, jars in wanted_modules:
            if not (root / "modules" / module.name).exists():
                add_module(root, spec, module, jars)
        for plugin, path in zips:
            _install_plugin(root, spec, plugin, path)
        (root / INSTALLED_MARKER).write_text(
            json.dumps(
                {
                    "engine": spec.engine,
                    "version": spec.version,
                    "plugins": [p.name for p, _ in zips],
                }
            )
        )
        shutil.rmtree(home, ignore_errors=True)
        root.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    make_readable(home)


def installed_plugins(home: Path) -> list[str]:
    """Plugin names installed in an engine home (the folders under ``plugins/``)."""
    folder = home / "plugins"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _extract(zip_path: Path, dest: Path) -> None:
    """Unzip keeping Unix modes (zipfile drops them, and bin/ scripts must be executable)."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(target, mode)


def plugin_classname(jar: Path, candidates: tuple[str, ...]) -> str:
    """The first candidate class present in the jar (class names differ between majors)."""
    with zipfile.ZipFile(jar) as zf:
        names = set(zf.namelist())
    for cls in candidates:
        if cls.replace(".", "/") + ".class" in names:
            return cls
    raise LauncherError(f"no plugin class {candidates} in {jar.name}")


def descriptor(spec: EngineSpec, module: Module, classname: str) -> str:
    """A module's ``plugin-descriptor.properties``."""
    key = "opensearch.version" if spec.engine == "opensearch" else "elasticsearch.version"
    lines = [
        f"description={module.description}",
        f"version={spec.version}",
        f"name={module.name}",
        f"classname={classname}",
        "java.version=11",
        f"{key}={spec.version}",
        f"extended.plugins={','.join(module.extended_plugins)}",
        "has.native.controller=false",
    ]
    return "\n".join(lines) + "\n"


def add_module(home: Path, spec: EngineSpec, module: Module, jars: list[Path]) -> None:
    """Install jars as a bundled module (a folder with a plugin descriptor)."""
    folder = home / "modules" / module.name
    folder.mkdir(parents=True, exist_ok=True)
    for artifact, jar in zip(module.jars, jars, strict=True):
        shutil.copy2(jar, folder / artifact.filename)
    classname = plugin_classname(jars[0], module.classnames)
    (folder / "plugin-descriptor.properties").write_text(descriptor(spec, module, classname))
    if module.security_policy is not None:
        (folder / "plugin-security.policy").write_text(module.security_policy)


def _install_plugin(home: Path, spec: EngineSpec, plugin: PluginZip, path: Path) -> None:
    env = dict(os.environ)
    env["OPENSEARCH_JAVA_HOME"] = str(find_java(spec))
    for name in ("OPENSEARCH_PATH_CONF", "OPENSEARCH_JAVA_OPTS", "JAVA_TOOL_OPTIONS"):
        env.pop(name, None)
    tool = home / "bin" / "opensearch-plugin"
    try:
        res = subprocess.run(
            [str(tool), "install", "--batch", path.resolve().as_uri()],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise LauncherError(f"cannot run {tool.name}: {exc}") from exc
    if res.returncode != 0:
        lines = [ln.strip() for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
        fallback = lines[-1] if lines else f"exit status {res.returncode}"
        reason = next((ln for ln in lines if "Exception" in ln or "ERROR" in ln), fallback)
        raise LauncherError(
            f"installing plugin {plugin.name} (feature {plugin.feature!r}) failed: {reason}"
        )


def make_readable(path: Path) -> None:
    """Let the node user read the engine home: o+rX on what we created (only matters as root)."""
    if os.geteuid() != 0:
        return
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o755)
        for f in filenames:
            fp = os.path.join(dirpath, f)
            if not os.path.islink(fp):
                os.chmod(fp, os.stat(fp).st_mode | 0o444)
