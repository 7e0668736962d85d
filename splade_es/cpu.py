"""What this CPU can do that changes which path is fastest: its flags (Linux /proc/cpuinfo), and
whether what they promise holds on the host it runs on."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of CPUs whose bfloat16 matrix products can outrun float32."""

FAST_BF16_RATIO = 0.7
"""bfloat16 counts as fast when its product takes at most this share of float32's time: below it
the screened pooling (a bfloat16 pass, then float32 for the few entries that can be positive)
beats one float32 pass."""


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


def bf16_time_ratio(rows: int = 64, width: int = 128, vocab: int = 8192, repeats: int = 5) -> float:
    """bfloat16's time over float32's for one `[rows, width] x [width, vocab]` product, the shape
    of a vocabulary projection (best of `repeats` each; about 20 ms in all)."""
    best: dict[torch.dtype, float] = {}
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            x, w = torch.randn(rows, width).to(dtype), torch.randn(vocab, width).to(dtype)
            F.linear(x, w)  # first call: kernel choice, caches
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                F.linear(x, w)
                times.append(time.perf_counter() - started)
            best[dtype] = min(times)
    return best[torch.bfloat16] / best[torch.float32]


@cache
def this_cpu_has_fast_bf16() -> bool:
    """Whether bfloat16 products outrun float32 here, decided once per process. The flags are not
    enough: a VM can report AVX-512 BF16 on a host where bfloat16 is no faster (one such host
    ran `splade-tiny`'s document encoding at 36-41 docs/s in bfloat16 and 46-50 in float32), so a
    CPU with the flags is also timed once (`bf16_time_ratio`)."""
    return cpu_has_fast_bf16() and bf16_time_ratio() <= FAST_BF16_RATIO
