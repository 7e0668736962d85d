"""Where runner jars, cluster homes and run directories live."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SPLADE_ES_RUNNERS_CACHE"


def cache_dir() -> Path:
    """Root of the runners cache (env ``SPLADE_ES_RUNNERS_CACHE`` wins).

    As root it is ``/var/cache/splade-es/runners`` (beside the engines cache), else
    ``~/.cache/splade-es/runners``.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/cache/splade-es/runners")
    return Path.home() / ".cache" / "splade-es" / "runners"


def run_dir(name: str) -> Path:
    """Runtime directory (config, logs, pid files) of one started cluster."""
    return cache_dir() / "run" / name
