"""The command line a study's report prints: the bench invocation that reproduces its
settings, each option given only where it differs from the settings' own default, so the
defaults are written once (in the settings dataclass) and never copied here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["bench_command_line"]


def bench_command_line(program: str, settings: Any, flags: Mapping[str, str]) -> str:
    """``program`` and ``--flag value`` for each settings field named in ``flags`` (field ->
    flag, in the order printed) whose value differs from a default-built ``type(settings)()``;
    lists and tuples print space-separated, a boolean field prints its flag alone."""
    defaults = type(settings)()
    parts = [program]
    for name, flag in flags.items():
        value = getattr(settings, name)
        if value == getattr(defaults, name):
            continue
        if isinstance(value, bool):
            parts.append(f"--{flag}")
        elif isinstance(value, list | tuple):
            parts.append(f"--{flag} " + " ".join(map(str, value)))
        else:
            parts.append(f"--{flag} {value}")
    return " ".join(parts)
