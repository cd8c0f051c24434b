"""``kdistill bench methods``: every distillation method, alone and with KD."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdistill.cli.benches.common import channel_list, name_list, subparser
from kdistill.errors import KDistillError

NAME = "methods"
EPILOG = """example (about an hour on 2 CPU cores at 1 thread):
  kdistill bench methods --threads 1
  kdistill bench methods --datasets mnist --methods at,fitnet --seeds 1 --epochs 1

Finished runs are kept in --work-dir as one JSON file each; rerun the same command after an
interruption to resume."""


def add(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.methods import catalogue

    methods = subparser(
        benches,
        NAME,
        help="every distillation method, alone and with KD, on Fashion-MNIST and MNIST",
        description="Train one CNN teacher per data set, then the same small CNN student with "
        "hard labels, KD, each method alone and KD + each method, over several seeds; report "
        "the last-epoch test accuracy (mean ± std) and the epoch time relative to plain "
        "training.",
        epilog=EPILOG,
    )
    methods.add_argument(
        "--datasets",
        type=name_list,
        default=["fashion-mnist", "mnist"],
        help="comma-separated: fashion-mnist, mnist (default both)",
    )
    methods.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    methods.add_argument("--epochs", type=int, default=5, help="epochs of every run (default 5)")
    methods.add_argument(
        "--train-size",
        type=int,
        default=5_000,
        help="stratified training subset, the same for every run (default 5000)",
    )
    methods.add_argument(
        "--test-size", type=int, default=None, help="stratified test subset (default: all)"
    )
    methods.add_argument(
        "--methods",
        type=name_list,
        default=None,
        help=f"comma-separated subset of: {', '.join(catalogue.methods())} (default all; the "
        "student and KD rows always run)",
    )
    methods.add_argument(
        "--output",
        type=Path,
        default=Path("runs/bench-methods/report"),
        help="where README.md and results.json go (default runs/bench-methods/report; the "
        "committed report is written with --output docs/results/methods)",
    )
    methods.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/bench-methods"),
        help="run folders and per-run JSON results (default runs/bench-methods)",
    )
    methods.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    methods.add_argument(
        "--teacher-channels",
        type=channel_list,
        default=[16, 32, 64],
        help="teacher cnn widths, one per block (default 16,32,64; module paths assume 3 blocks)",
    )
    methods.add_argument(
        "--student-channels",
        type=channel_list,
        default=[4, 8, 16],
        help="student cnn widths (default 4,8,16; module paths assume 3 blocks)",
    )


def run(args: argparse.Namespace) -> int:
    from kdistill.studies.methods import BenchSettings, methods, run_methods_benchmark

    if args.threads is not None and args.threads < 1:
        raise KDistillError(f"--threads must be at least 1, got {args.threads}")
    settings = BenchSettings(
        datasets=args.datasets,
        seeds=args.seeds,
        epochs=args.epochs,
        train_size=args.train_size,
        test_size=args.test_size,
        methods=args.methods if args.methods is not None else list(methods()),
        output=args.output,
        work_dir=args.work_dir,
        threads=args.threads,
        teacher_channels=args.teacher_channels,
        student_channels=args.student_channels,
    )
    run_methods_benchmark(settings, log=lambda line: print(line, flush=True))
    return 0
