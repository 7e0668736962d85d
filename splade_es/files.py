"""Files replaced whole or not at all, safe when several writers target the same name at once.

Every temporary name is unique to its writer (`tempfile.mkstemp` beside the target): a fixed
`<name>.tmp` shared by two runs of the same command lets one run rename the other's temporary
file away, and the second rename then fails with "No such file or directory". The last writer to
finish wins; no reader ever sees a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def temporary_beside(path: Path) -> Path:
    """A new, empty file with a name unique to this writer, in `path`'s folder (same filesystem,
    so the final rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextmanager
def replaced_on_success(path: Path) -> Iterator[Path]:
    """A temporary path to fill; it replaces `path` when the block ends without an error and is
    removed when it raises."""
    tmp = temporary_beside(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_atomically(path: Path, text: str) -> None:
    """`path.write_text(text)` (UTF-8), but readers see the old file or the new one, never a part."""
    with replaced_on_success(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class AtomicFile:
    """A file written under a temporary name and renamed into place only on success.

    A run that fails, even before writing a byte, leaves any existing file of that name intact.
    """

    def __init__(self, path: Path, mode: str = "w") -> None:
        self.path = path
        self.tmp = temporary_beside(path)
        self.handle: IO[Any] = (
            self.tmp.open(mode, encoding="utf-8") if "b" not in mode else self.tmp.open(mode)
        )

    def commit(self) -> None:
        self.handle.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)
