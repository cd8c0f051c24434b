"""``kdistill bench``: measured benchmarks (methods table, throughput)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdistill.errors import KDistillError

METHODS_EPILOG = """example (about an hour on 2 CPU cores at 1 thread):
  kdistill bench methods --threads 1
  kdistill bench methods --datasets mnist --methods at,fitnet --seeds 1 --epochs 1

Finished runs are kept in --work-dir as one JSON file each; rerun the same command after an
interruption to resume."""


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _channels(text: str) -> list[int]:
    try:
        channels = [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not channels or min(channels) < 1:
        raise argparse.ArgumentTypeError(f"expected positive channel counts, got {text!r}")
    return channels


def add_bench_verb(verbs: argparse._SubParsersAction) -> None:
    """Register ``kdistill bench`` on the main parser."""
    bench = verbs.add_parser(
        "bench",
        help="measured benchmarks (the distillation methods table)",
        description="Run a benchmark and write its table (Markdown + JSON).",
    )
    benches = bench.add_subparsers(dest="bench", metavar="BENCH")
    methods = benches.add_parser(
        "methods",
        help="every distillation method, alone and with KD, on Fashion-MNIST and MNIST",
        description="Train one CNN teacher per data set, then the same small CNN student with "
        "hard labels, KD, each method alone and KD + each method, over several seeds; report "
        "the last-epoch test accuracy (mean ± std) and the epoch time relative to plain "
        "training.",
        epilog=METHODS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    methods.add_argument(
        "--datasets",
        type=_names,
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
        type=_names,
        default=None,
        help="comma-separated subset of: logit_l2, dkd, weights, fitnet, nst, at, grad_at, ab, "
        "rkd_distance, rkd_angle, sp (default all; the student and KD rows always run)",
    )
    methods.add_argument(
        "--output",
        type=Path,
        default=Path("docs/results/methods"),
        help="where README.md and results.json go (default docs/results/methods)",
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
        type=_channels,
        default=[16, 32, 64],
        help="teacher cnn widths, one per block (default 16,32,64; module paths assume 3 blocks)",
    )
    methods.add_argument(
        "--student-channels",
        type=_channels,
        default=[4, 8, 16],
        help="student cnn widths (default 4,8,16; module paths assume 3 blocks)",
    )


def run_bench(args: argparse.Namespace) -> int | None:
    """Run ``kdistill bench ...``; returns None when ``args`` is not a bench verb."""
    if args.verb != "bench":
        return None
    if args.bench != "methods":
        raise KDistillError("kdistill bench needs a benchmark name: kdistill bench methods")
    from kdistill.benchmarks.methods import METHODS, BenchSettings, run_methods_benchmark

    if args.threads is not None and args.threads < 1:
        raise KDistillError(f"--threads must be at least 1, got {args.threads}")
    settings = BenchSettings(
        datasets=args.datasets,
        seeds=args.seeds,
        epochs=args.epochs,
        train_size=args.train_size,
        test_size=args.test_size,
        methods=args.methods if args.methods is not None else list(METHODS),
        output=args.output,
        work_dir=args.work_dir,
        threads=args.threads,
        teacher_channels=args.teacher_channels,
        student_channels=args.student_channels,
    )
    run_methods_benchmark(settings, log=lambda line: print(line, flush=True))
    return 0
