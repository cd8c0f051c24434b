"""Files kdistill writes: the one atomic writer and the one cache folder.

A file is written to a temporary name in the same folder, flushed and fsynced, then renamed
over the old one, so a run killed at any instant (even by SIGKILL) leaves either the previous
complete file or the new complete one, never half of either.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "cache_dir"]


def cache_dir(override: str | Path | None = None) -> Path:
    """Where data sets, wheels and teacher logits are cached: ``override`` if given, else
    ``$KDISTILL_CACHE``, else ``~/.cache/kdistill``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("KDISTILL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "kdistill"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(handle)`` on a temporary file, then rename it to ``path`` atomically.

    Readers only ever see a complete file; the temporary file is removed if ``write`` fails.
    Files are created readable by all (a cache shared through ``KDISTILL_CACHE``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        os.fchmod(descriptor, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers only ever see a complete file."""
    atomic_write(path, lambda handle: handle.write(payload))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
