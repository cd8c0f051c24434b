"""Arguments several benchmarks share, so every ``kdistill bench X`` reads them alike."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_folders", "add_seeds", "channel_list", "command_line", "name_list", "subparser"]


def subparser(
    benches: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """The parser of ``kdistill bench NAME`` (its epilog, the examples, printed as written)."""
    return benches.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_seeds(parser: argparse.ArgumentParser, default: Sequence[int] = (0, 1, 2)) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=list(default))


def add_folders(
    parser: argparse.ArgumentParser, work_dir: str, output_dir: str, writes: str
) -> None:
    """``--work-dir`` (finished units, kept for a rerun to resume) and ``--output-dir``."""
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(work_dir),
        help=f"unit folders, kept so a rerun resumes (default {work_dir})",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path(output_dir),
        help=f"where {writes} go (default {output_dir})",
    )


def command_line(default: str) -> str:
    """The command as the user typed it, for the report (``default`` when called in-process)."""
    return "kdistill " + " ".join(sys.argv[1:]) if sys.argv[1:] else default


def name_list(text: str) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]`` (argparse type)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def channel_list(text: str) -> list[int]:
    """``16,32,64`` -> ``[16, 32, 64]``, positive (argparse type)."""
    try:
        channels = [int(part) for part in name_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not channels or min(channels) < 1:
        raise argparse.ArgumentTypeError(f"expected positive channel counts, got {text!r}")
    return channels
