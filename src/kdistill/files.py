"""Files kdistill writes: the one atomic writer and the one cache folder.

A file is written to a temporary name in the same folder, flushed and fsynced, then renamed
over the old one, so a run killed at any instant (even by SIGKILL) leaves either the previous
complete file or the new complete one, never half of either.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any

from kdistill.errors import KDistillError

__all__ = [
    "MARKER_NAME",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "cache_dir",
    "folder_lock",
    "remove_stale_temporaries",
    "run_once",
]

MARKER_NAME = "stage.json"
LOCK_NAME = ".kdistill.lock"
TEMPORARY_PATTERN = ".*.tmp"
"""What :func:`atomic_write` names its temporary files (``.<name>.<random>.tmp``)."""


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        os.fchmod(descriptor, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:  # a full disk, a quota, a folder made read-only meanwhile
        Path(temporary).unlink(missing_ok=True)
        raise _write_error(path, error) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise _write_error(path, error) from None


def _write_error(path: Path, error: OSError) -> KDistillError:
    kept = f"; the previous {path.name} is intact" if path.exists() else ""
    return KDistillError(
        f"cannot write {path} ({error.strerror or error}){kept}: free space on that disk or "
        "choose a writable folder, then rerun (with --resume to continue a run)"
    )


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers only ever see a complete file."""
    atomic_write(path, lambda handle: handle.write(payload))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


_held_locks: dict[Path, int] = {}
"""Folders this process holds locked, with how many nested holders (a method's run folder,
then the engine's fit in the same folder)."""


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``folder`` for this process: an exclusive ``flock`` on ``folder/.kdistill.lock``.

    A second process (or a second ``kdistill`` command) that asks for the same folder gets a
    one-line :class:`KDistillError` at once. The kernel releases the lock when the process
    exits, however it exits (SIGKILL included), so a killed run never leaves a stale lock.
    Nested holders in one process share the lock. On taking it, temporary files that a run
    killed inside :func:`atomic_write` left in the folder are removed.
    """
    folder = Path(folder).resolve()
    if folder in _held_locks:
        _held_locks[folder] += 1
        try:
            yield
        finally:
            _held_locks[folder] -= 1
        return
    path = folder / LOCK_NAME
    try:
        handle = path.open("a+")
    except OSError as error:
        raise KDistillError(
            f"cannot write in {folder} ({error.strerror}): choose a writable --output-dir"
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise KDistillError(
                f"{folder} is in use by another kdistill run ({holder}): wait for it to "
                "finish, or choose another --output-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        remove_stale_temporaries(folder)
        _held_locks[folder] = 1
        try:
            yield
        finally:
            del _held_locks[folder]
    finally:
        handle.close()  # releases the lock


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` under ``folder`` (left by a run
    killed while writing; the previous complete file is intact beside them). Call it only
    while holding the folder's lock, so no live writer's file is removed. Returns them."""
    removed = []
    for path in Path(folder).rglob(TEMPORARY_PATTERN):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


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
    # Under torchrun every process computes (training is collective); rank 0 writes.
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_text(
            path, json.dumps({"identity": identity, "result": result}, indent=2) + "\n"
        )
    return result, False


def _read_marker(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # written atomically, so only a hand-edited marker gets here: recompute
    return saved if isinstance(saved, dict) else None
