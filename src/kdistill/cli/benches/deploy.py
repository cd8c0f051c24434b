"""``kdistill bench deploy``: parameters, bytes and CPU latency of teacher, ensemble, student."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdistill.cli.benches.common import command_line, subparser
from kdistill.errors import KDistillError

NAME = "deploy"


def add(benches: argparse._SubParsersAction) -> None:
    deploy = subparser(
        benches,
        NAME,
        help="parameters, bytes and CPU latency of teacher, ensemble and student (PyTorch, ONNX)",
        description="Why distillation exists, in one table: parameters, bytes on disk, test "
        "errors and CPU latency at batch 1 and 256 (median and p90) of the teacher (the first "
        "--teacher), the ensemble of every --teacher, and the student, in PyTorch and in "
        "onnxruntime (needs pip install 'kdistill[export]').",
        epilog="example:\n  kdistill bench deploy --teacher runs/t0 --teacher runs/t1 "
        "--student runs/student --data mnist",
    )
    deploy.add_argument(
        "--teacher", action="append", required=True, help="run folder or model file (repeatable)"
    )
    deploy.add_argument("--student", required=True, help="run folder or model file")
    deploy.add_argument(
        "--data", default="mnist", help="data set whose test split is used (default mnist)"
    )
    deploy.add_argument(
        "--threads", type=int, default=1, help="CPU threads for both runtimes (default 1)"
    )
    deploy.add_argument(
        "--repeats", type=int, default=200, help="timed runs at batch 1 (default 200)"
    )
    deploy.add_argument(
        "--output-dir", type=Path, default=Path("runs/bench-deploy"),
        help="where README.md and results.json go (default runs/bench-deploy)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from kdistill.data import load_dataset
    from kdistill.export.deploy import bench_deploy, render_table, write_deploy_report
    from kdistill.files import cache_dir

    if args.threads < 1 or args.repeats < 1:
        raise KDistillError("--threads and --repeats must be at least 1")
    test = load_dataset(args.data, cache_dir=cache_dir()).test
    results = bench_deploy(
        args.teacher, args.student, test, threads=args.threads, repeats=args.repeats
    )
    report = write_deploy_report(results, args.output_dir, command_line("kdistill bench deploy"))
    print(render_table(results))
    print(f"report: {report}")
    return 0
