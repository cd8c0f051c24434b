"""``kdistill bench speed``: the engine against the hand-written distillation loop."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdistill.cli.benches.common import command_line, subparser
from kdistill.errors import KDistillError

NAME = "speed"
EPILOG = """example (about 10 minutes on 2 quiet cores; the committed report:
  kdistill bench speed --output-dir docs/results/speed):
  kdistill bench speed
  kdistill bench speed --rounds 1 --no-scaling --no-jitter --layout-size 0 --train-size 6400   # a smoke run"""


def add(benches: argparse._SubParsersAction) -> None:
    speed = subparser(
        benches,
        NAME,
        help="kdistill's engine against the hand-written distillation loop, side by side",
        description="Samples/s of the hand-written loop (live teacher) and of kdistill training "
        "the student alone, with a cached and with a live teacher, in turns over several "
        "rounds; FLOP/s against the same-shape matmul rate; epoch time against transfer-set "
        "size and teacher width; the per-shift cache on a jittered transfer set; a CNN's "
        "memory layout; a profile.",
        epilog=EPILOG,
    )
    speed.add_argument("--rounds", type=int, default=3, help="rounds of every row (default 3)")
    speed.add_argument("--batch-size", type=int, default=128, help="default 128")
    speed.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    speed.add_argument("--train-size", type=int, default=None, help="default: all 60,000")
    speed.add_argument("--no-scaling", action="store_true", help="skip the growth tables")
    speed.add_argument("--no-jitter", action="store_true", help="skip the per-shift cache row")
    speed.add_argument(
        "--layout-size",
        type=int,
        default=6000,
        help="images the CNN memory-layout row trains on (default 6000; 0 skips it)",
    )
    speed.add_argument(
        "--output-dir",
        type=Path,
        default=Path("runs/bench-speed"),
        help="where README.md and results.json go (default runs/bench-speed)",
    )


def run(args: argparse.Namespace) -> int:
    from kdistill.studies.speed import SpeedSettings, run_speed_benchmark, write_speed_report

    if args.rounds < 1 or args.batch_size < 1:
        raise KDistillError("--rounds and --batch-size must be at least 1")
    results = run_speed_benchmark(
        SpeedSettings(
            output_dir=args.output_dir,
            rounds=args.rounds,
            batch_size=args.batch_size,
            threads=args.threads,
            scaling=not args.no_scaling,
            jitter=not args.no_jitter,
            layout_train_size=args.layout_size,
            train_size=args.train_size,
            command=command_line("kdistill bench speed"),
        )
    )
    report = write_speed_report(results, args.output_dir)
    print(report.read_text())
    print(f"report: {report}")
    return 0
