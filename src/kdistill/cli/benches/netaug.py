"""``kdistill bench netaug``: network augmentation vs plain training and KD."""

from __future__ import annotations

import argparse

from kdistill.cli.benches.common import add_folders, add_seeds, subparser

NAME = "netaug"
EPILOG = """example:
  OMP_NUM_THREADS=1 kdistill bench netaug
  OMP_NUM_THREADS=1 kdistill bench netaug --seeds 0 --epochs 1 --train-size 2000   # a smoke run

Finished stages are kept in --work-dir; rerun the same command after an interruption to resume
(a killed stage continues from its last epoch checkpoint)."""


def add(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.netaug.plan import MODELS
    from kdistill.studies.netaug.runner import DATASETS

    netaug = subparser(
        benches,
        NAME,
        help="network augmentation vs plain training and KD, tiny and large models",
        description="Baseline, KD, NetAug and NetAug + KD on tiny models (MLP 30-30, CNN 4-8-16) "
        "and a large one (MLP 800-800), on MNIST and Fashion-MNIST, over several seeds; "
        "training and test error; writes results.json and README.md with the verdict on the "
        "lecture's claims.",
        epilog=EPILOG,
    )
    add_seeds(netaug)
    netaug.add_argument("--epochs", type=int, default=8, help="epochs of every run (default 8)")
    netaug.add_argument(
        "--train-size", type=int, default=10_000, help="stratified training subset (default 10000)"
    )
    netaug.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    netaug.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    add_folders(netaug, "runs/bench-netaug", "docs/results/netaug", "results.json and README.md")


def run(args: argparse.Namespace) -> int:
    from kdistill.studies.netaug import NetAugBenchSettings, run_netaug_benchmark

    run_netaug_benchmark(
        NetAugBenchSettings(
            seeds=args.seeds,
            epochs=args.epochs,
            train_size=args.train_size,
            datasets=args.datasets,
            models=args.models,
            work_dir=args.work_dir,
            output_dir=args.output_dir,
        )
    )
    return 0
