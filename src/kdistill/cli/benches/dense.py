"""``kdistill bench dense``: distillation for segmentation and detection on glyph canvases."""

from __future__ import annotations

import argparse

from kdistill.cli.benches.common import add_folders, add_seeds, subparser

NAME = "dense"


def add(benches: argparse._SubParsersAction) -> None:
    dense = subparser(
        benches,
        NAME,
        help="distillation for segmentation (and detection) on glyph canvases",
        description="Segmentation teacher, student alone, student + pixel-wise, + pair-wise, "
        "+ holistic, + pixel-wise and pair-wise, and + all three (Liu et al. 2019) on canvases "
        "of MNIST and Fashion-MNIST glyphs; mIoU, parameters, MACs and CPU latency; writes "
        "results.json, README.md and pictures. "
        "--tasks detection: the same for Chen et al. (2017)'s terms on a grid detector (mAP). "
        "Finished stages are kept in --work-dir; rerun the same command to resume.",
    )
    add_seeds(dense)
    dense.add_argument(
        "--tasks", nargs="+", default=["segmentation"], choices=["segmentation", "detection"]
    )
    dense.add_argument("--teacher-epochs", type=int, default=8, help="default 8")
    dense.add_argument("--epochs", type=int, default=20, help="students' epochs (default 20)")
    dense.add_argument(
        "--train-fraction", type=float, default=0.5, help="students' share of the canvases"
    )
    dense.add_argument("--student-lr", type=float, default=None, help="students' learning rate")
    dense.add_argument(
        "--seg-methods",
        nargs="+",
        default=None,
        help="segmentation cells to train (default: all of student pixel pairwise holistic all "
        "full; student is always trained)",
    )
    dense.add_argument(
        "--det-student-width",
        type=int,
        default=1,
        help="the detection student's channels times this (default 1: 4-8-16-32, 27k "
        "parameters; 2: 105k); reports other than 1 go to detection-width-N.md",
    )
    add_folders(
        dense, "runs/bench-dense", "docs/results/dense", "results.json, README.md and pictures"
    )


def run(args: argparse.Namespace) -> int:
    from kdistill.studies.dense.runner import DenseBenchSettings, run_dense_benchmark

    run_dense_benchmark(
        DenseBenchSettings(
            seeds=args.seeds,
            tasks=args.tasks,
            teacher_epochs=args.teacher_epochs,
            epochs=args.epochs,
            train_fraction=args.train_fraction,
            student_lr=args.student_lr,
            **({"seg_methods": args.seg_methods} if args.seg_methods else {}),
            det_student_width=args.det_student_width,
            work_dir=args.work_dir,
            output_dir=args.output_dir,
        )
    )
    return 0
