"""Files kdistill writes: the one atomic writer and the one cache folder.

A file is written to a temporary name in the same folder, flushed and fsynced, then renamed
over the old one, so a run killed at any instant (even by SIGKILL) leaves either the previous
complete file or the new complete one, never half of either.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, Any

from kdistill.errors import KDistillError

__all__ = [
    "MARKER_NAME",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "cache_dir",
    "run_once",
]

MARKER_NAME = "stage.json"


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


def run_once(
    folder: str | Path,
    identity: dict[str, Any],
    compute: Callable[[], dict[str, Any]],
    *,
    marker: str = MARKER_NAME,
    must_match: Collection[str] | None = None,
    legacy: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    still_valid: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[dict[str, Any], bool]:
    """``compute()`` once for ``identity``; returns ``(result, cached)``.

    A marker ``folder/marker`` written for the same identity is read back (``cached`` True).
    One written for another identity raises :class:`KDistillError` if it differs in a key of
    ``must_match`` (default: every key), and is recomputed and overwritten otherwise (e.g. a
    born-again generation whose teacher was retrained). A marker written before markers held
    an identity is handed to ``legacy``, which returns the result it holds or None to
    recompute (without ``legacy`` such a marker is recomputed). ``still_valid(result)``
    False (e.g. the model file it describes was replaced since) recomputes too.

    The marker is written only after ``compute`` returns, so a unit killed half-way leaves
    none and runs again; every study (reproductions, benchmarks) and born-again generations
    use this one mechanism.
    """
    path = Path(folder) / marker
    saved = _read_marker(path)
    if saved is not None:
        if "identity" not in saved or "result" not in saved:
            old = legacy(saved) if legacy is not None else None
            if old is not None and (still_valid is None or still_valid(old)):
                return old, True
        elif saved["identity"] == identity:
            if still_valid is None or still_valid(saved["result"]):
                return saved["result"], True
        else:
            differ = sorted(
                key
                for key in set(identity) | set(saved["identity"])
                if identity.get(key) != saved["identity"].get(key)
            )
            strict = set(identity) if must_match is None else set(must_match)
            if strict.intersection(differ):
                raise KDistillError(
                    f"{path} holds a result for a different {', '.join(differ)}: use another "
                    "work folder, or delete that one to recompute it"
                )
    result = compute()
    atomic_write_text(path, json.dumps({"identity": identity, "result": result}, indent=2) + "\n")
    return result, False


def _read_marker(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # written atomically, so only a hand-edited marker gets here: recompute
    return saved if isinstance(saved, dict) else None
