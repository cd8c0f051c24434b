"""SIGTERM, handled at a step boundary: checkpoint, then stop with a message.

Schedulers and container runtimes stop a job with SIGTERM (then SIGKILL after a grace
period). :func:`on_terminate` is the handler the CLI installs: inside the training loop it
only asks the loop to stop, and the loop saves a checkpoint after the step in progress and
raises :class:`~kdistill.errors.Terminated`; anywhere else (loading data, caching logits) it
raises at once, and files being written atomically are left as they were.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from kdistill.errors import Terminated

__all__ = ["handle_sigterm", "on_terminate", "stop_requested", "stoppable"]


class _State:
    in_loop = 0
    requested = False


def on_terminate(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler: ask a running loop to stop at its next step, or stop now."""
    if _State.in_loop and not _State.requested:
        _State.requested = True
        return
    _State.requested = False
    raise Terminated()


@contextlib.contextmanager
def handle_sigterm() -> Iterator[None]:
    """:func:`on_terminate` handles SIGTERM inside (the CLI's verbs run there; a library leaves
    signals alone). Outside the main thread, where Python cannot set handlers, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """The training loop runs inside: SIGTERM then waits for :func:`stop_requested`."""
    _State.in_loop += 1
    try:
        yield
    finally:
        _State.in_loop -= 1


def stop_requested() -> bool:
    """True once after SIGTERM arrived inside :func:`stoppable` (the caller checkpoints and
    raises :class:`~kdistill.errors.Terminated`)."""
    if _State.requested:
        _State.requested = False
        return True
    return False
