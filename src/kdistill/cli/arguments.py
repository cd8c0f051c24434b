"""Arguments every run verb shares, so config/--set/--output-dir/--resume read the same."""

from __future__ import annotations

import argparse

__all__ = ["add_run_arguments", "run_overrides"]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        help="YAML run config (see configs/); keys: seed, output_dir, data, model, train, distill",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.optimizer.lr=0.05 (repeatable)",
    )
    parser.add_argument(
        "--output-dir",
        help="where to write metrics, checkpoints and models (default: the config's output_dir)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in output_dir from its last checkpoint (same config; "
        "train.epochs may be raised for train and distill)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run output_dir holds (its metrics and checkpoints are removed); "
        "without it, or --resume, a folder holding a run is refused",
    )


def run_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides plus ``--output-dir`` as an override of ``output_dir``."""
    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    return overrides
