"""``kdistill bench gan-compression``: a 1/4-width conditional generator, scratch vs distilled."""

from __future__ import annotations

import argparse

from kdistill.cli.benches.common import add_folders, add_seeds, subparser

NAME = "gan-compression"
EPILOG = """example:
  OMP_NUM_THREADS=1 kdistill bench gan-compression
  OMP_NUM_THREADS=1 kdistill bench gan-compression --seeds 0 --epochs 1 --train-size 2000 \\
      --datasets fashion-mnist --work-dir runs/gan-smoke --output-dir runs/gan-smoke/report

Finished stages are kept in --work-dir; rerun the same command after an interruption to resume
(a killed stage continues from its last epoch checkpoint)."""


def add(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.gan_compression.runner import DATASETS

    gan = subparser(
        benches,
        NAME,
        help="GAN Compression: a 1/4-width conditional generator, from scratch vs distilled",
        description="Per data set a feature-space classifier, a teacher conditional GAN, and "
        "per seed the 1/4-width student generator trained from scratch as a GAN, with the "
        "reconstruction term, with feature distillation, and with both; Frechet distance and "
        "accuracy of generated samples in the classifier's feature space (not Inception-FID), "
        "precision/recall, parameters, MACs, CPU latency and image grids; writes results.json, "
        "README.md and PNG grids.",
        epilog=EPILOG,
    )
    add_seeds(gan)
    gan.add_argument("--epochs", type=int, default=6, help="epochs of every GAN (default 6)")
    gan.add_argument(
        "--classifier-epochs", type=int, default=2, help="epochs of the classifier (default 2)"
    )
    gan.add_argument(
        "--train-size", type=int, default=10_000, help="stratified GAN training subset"
    )
    gan.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    add_folders(
        gan,
        "runs/bench-gan-compression",
        "docs/results/gan-compression",
        "results.json, README.md and the grids",
    )


def run(args: argparse.Namespace) -> int:
    from kdistill.studies.gan_compression import GanBenchSettings, run_gan_benchmark

    run_gan_benchmark(
        GanBenchSettings(
            seeds=args.seeds,
            epochs=args.epochs,
            classifier_epochs=args.classifier_epochs,
            train_size=args.train_size,
            datasets=args.datasets,
            work_dir=args.work_dir,
            output_dir=args.output_dir,
        )
    )
    return 0
