"""``kdistill bench self-online``: independent training vs born-again vs mutual learning."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdistill.cli.benches.common import add_seeds, subparser

NAME = "self-online"
EPILOG = """example (the table: about 30 min on one thread):
  OMP_NUM_THREADS=1 kdistill bench self-online
  OMP_NUM_THREADS=1 kdistill bench self-online --profile timing   # 1 epoch, 1 seed

Finished units are kept in --work-dir (stage.json each); rerun the same command after an
interruption to resume."""


def add(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.self_online.suites import SUITES

    self_online = subparser(
        benches,
        NAME,
        help="independent training vs born-again generations vs deep mutual learning",
        description="Independent training vs born-again generations (and their ensembles) vs "
        "deep mutual learning, on MNIST MLPs and Fashion-MNIST CNNs, over several seeds; "
        "writes results.json and TABLES.md.",
        epilog=EPILOG,
    )
    self_online.add_argument(
        "--profile",
        choices=["full", "timing"],
        default="full",
        help="full: the table; timing: 1 epoch, 1 seed, logs the planned time (default full)",
    )
    add_seeds(self_online)
    self_online.add_argument(
        "--train-size", type=int, default=10_000, help="stratified training subset (default 10000)"
    )
    self_online.add_argument("--datasets", nargs="+", default=list(SUITES), choices=list(SUITES))
    self_online.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/bench-self-online"),
        help="unit folders (default runs/bench-self-online)",
    )
    self_online.add_argument(
        "--output-dir",
        type=Path,
        default=Path("runs/bench-self-online/report"),
        help="where results.json and TABLES.md go (default runs/bench-self-online/report; the "
        "committed report is written with --output-dir docs/results/self-online)",
    )


def run(args: argparse.Namespace) -> int:
    from kdistill.studies.self_online import SelfOnlineSettings, run_self_online_benchmark

    run_self_online_benchmark(
        SelfOnlineSettings(
            profile=args.profile,
            seeds=args.seeds,
            train_size=args.train_size,
            datasets=args.datasets,
            work_dir=args.work_dir,
            output_dir=args.output_dir,
        )
    )
    return 0
