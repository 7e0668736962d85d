"""What this CPU can do that changes which path is fastest (Linux /proc/cpuinfo)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of CPUs whose bfloat16 matrix products outrun float32."""


def cpu_has_fast_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX or AVX-512 BF16; Linux only)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return any(flag in flags for flag in CPU_BF16_FLAGS)


@cache
def this_cpu_has_fast_bf16() -> bool:
    """`cpu_has_fast_bf16` of this machine, read once."""
    return cpu_has_fast_bf16()
