"""``kdistill bench gan-compression``: its arguments and its call into the study."""

from __future__ import annotations

import argparse
from pathlib import Path

GAN_EPILOG = """example:
  OMP_NUM_THREADS=1 kdistill bench gan-compression
  OMP_NUM_THREADS=1 kdistill bench gan-compression --seeds 0 --epochs 1 --train-size 2000 \\
      --datasets fashion-mnist --work-dir runs/gan-smoke --output-dir runs/gan-smoke/report

Finished stages are kept in --work-dir; rerun the same command after an interruption to resume
(a killed stage continues from its last epoch checkpoint)."""


def add_gan_compression(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.gan_compression.runner import DATASETS

    gan = benches.add_parser(
        "gan-compression",
        help="GAN Compression: a 1/4-width conditional generator, from scratch vs distilled",
        description="Per data set a feature-space classifier, a teacher conditional GAN, and "
        "per seed the 1/4-width student generator trained from scratch as a GAN, with the "
        "reconstruction term, with feature distillation, and with both; Frechet distance and "
        "accuracy of generated samples in the classifier's feature space (not Inception-FID), "
        "precision/recall, parameters, MACs, CPU latency and image grids; writes results.json, "
        "README.md and PNG grids.",
        epilog=GAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gan.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    gan.add_argument("--epochs", type=int, default=6, help="epochs of every GAN (default 6)")
    gan.add_argument(
        "--classifier-epochs", type=int, default=2, help="epochs of the classifier (default 2)"
    )
    gan.add_argument(
        "--train-size", type=int, default=10_000, help="stratified GAN training subset"
    )
    gan.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    gan.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/bench-gan-compression"),
        help="stage folders (default runs/bench-gan-compression)",
    )
    gan.add_argument(
        "--output-dir",
        type=Path,
        default=Path("docs/results/gan-compression"),
        help="where results.json, README.md and the grids go (default docs/results/gan-compression)",
    )


def run_gan_compression(args: argparse.Namespace) -> int:
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
