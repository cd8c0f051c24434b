"""``kdistill bench``: measured benchmarks (methods table, self/online distillation, NetAug)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdistill.cli.bench_gan import add_gan_compression, run_gan_compression
from kdistill.errors import KDistillError
from kdistill.studies.methods import catalogue

METHODS_EPILOG = """example (about an hour on 2 CPU cores at 1 thread):
  kdistill bench methods --threads 1
  kdistill bench methods --datasets mnist --methods at,fitnet --seeds 1 --epochs 1

Finished runs are kept in --work-dir as one JSON file each; rerun the same command after an
interruption to resume."""

SELF_ONLINE_EPILOG = """example (the table: about 30 min on one thread):
  OMP_NUM_THREADS=1 kdistill bench self-online
  OMP_NUM_THREADS=1 kdistill bench self-online --profile timing   # 1 epoch, 1 seed

Finished units are kept in --work-dir (stage.json each); rerun the same command after an
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
        help="measured benchmarks (the distillation methods table, self/online distillation)",
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
    _add_self_online(benches)
    _add_netaug(benches)
    _add_speed(benches)
    add_gan_compression(benches)
    _add_language(benches)
    _add_dense(benches)


def _add_self_online(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.self_online.suites import SUITES

    self_online = benches.add_parser(
        "self-online",
        help="independent training vs born-again generations vs deep mutual learning",
        description="Independent training vs born-again generations (and their ensembles) vs "
        "deep mutual learning, on MNIST MLPs and Fashion-MNIST CNNs, over several seeds; "
        "writes results.json and TABLES.md.",
        epilog=SELF_ONLINE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    self_online.add_argument(
        "--profile",
        choices=["full", "timing"],
        default="full",
        help="full: the table; timing: 1 epoch, 1 seed, logs the planned time (default full)",
    )
    self_online.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
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
    _add_deploy(benches)


def _add_deploy(benches: argparse._SubParsersAction) -> None:
    deploy = benches.add_parser(
        "deploy",
        help="parameters, bytes and CPU latency of teacher, ensemble and student (PyTorch, ONNX)",
        description="Why distillation exists, in one table: parameters, bytes on disk, test "
        "errors and CPU latency at batch 1 and 256 (median and p90) of the teacher (the first "
        "--teacher), the ensemble of every --teacher, and the student, in PyTorch and in "
        "onnxruntime (needs pip install 'kdistill[export]').",
        epilog="example:\n  kdistill bench deploy --teacher runs/t0 --teacher runs/t1 "
        "--student runs/student --data mnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def _run_deploy(args: argparse.Namespace) -> int:
    import sys

    from kdistill.data import load_dataset
    from kdistill.export.deploy import bench_deploy, render_table, write_deploy_report
    from kdistill.files import cache_dir

    if args.threads < 1 or args.repeats < 1:
        raise KDistillError("--threads and --repeats must be at least 1")
    test = load_dataset(args.data, cache_dir=cache_dir()).test
    results = bench_deploy(
        args.teacher, args.student, test, threads=args.threads, repeats=args.repeats
    )
    command = "kdistill " + " ".join(sys.argv[1:]) if sys.argv[1:] else "kdistill bench deploy"
    report = write_deploy_report(results, args.output_dir, command)
    print(render_table(results))
    print(f"report: {report}")
    return 0


NETAUG_EPILOG = """example:
  OMP_NUM_THREADS=1 kdistill bench netaug
  OMP_NUM_THREADS=1 kdistill bench netaug --seeds 0 --epochs 1 --train-size 2000   # a smoke run

Finished stages are kept in --work-dir; rerun the same command after an interruption to resume
(a killed stage continues from its last epoch checkpoint)."""


def _add_netaug(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.netaug.plan import MODELS
    from kdistill.studies.netaug.runner import DATASETS

    netaug = benches.add_parser(
        "netaug",
        help="network augmentation vs plain training and KD, tiny and large models",
        description="Baseline, KD, NetAug and NetAug + KD on tiny models (MLP 30-30, CNN 4-8-16) "
        "and a large one (MLP 800-800), on MNIST and Fashion-MNIST, over several seeds; "
        "training and test error; writes results.json and README.md with the verdict on the "
        "lecture's claims.",
        epilog=NETAUG_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    netaug.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    netaug.add_argument("--epochs", type=int, default=8, help="epochs of every run (default 8)")
    netaug.add_argument(
        "--train-size", type=int, default=10_000, help="stratified training subset (default 10000)"
    )
    netaug.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    netaug.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    netaug.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/bench-netaug"),
        help="stage folders (default runs/bench-netaug)",
    )
    netaug.add_argument(
        "--output-dir",
        type=Path,
        default=Path("docs/results/netaug"),
        help="where results.json and README.md go (default docs/results/netaug)",
    )


SPEED_EPILOG = """example (about 10 minutes on 2 quiet cores; the committed report:
  kdistill bench speed --output-dir docs/results/speed):
  kdistill bench speed
  kdistill bench speed --rounds 1 --no-scaling --no-jitter --layout-size 0 --train-size 6400   # a smoke run"""


def _add_speed(benches: argparse._SubParsersAction) -> None:
    speed = benches.add_parser(
        "speed",
        help="kdistill's engine against the hand-written distillation loop, side by side",
        description="Samples/s of the hand-written loop (live teacher) and of kdistill training "
        "the student alone, with a cached and with a live teacher, in turns over several "
        "rounds; FLOP/s against the same-shape matmul rate; epoch time against transfer-set "
        "size and teacher width; the per-shift cache on a jittered transfer set; a profile.",
        epilog=SPEED_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def _run_speed(args: argparse.Namespace) -> int:
    import sys

    from kdistill.studies.speed import SpeedSettings, run_speed_benchmark, write_speed_report

    if args.rounds < 1 or args.batch_size < 1:
        raise KDistillError("--rounds and --batch-size must be at least 1")
    command = "kdistill " + " ".join(sys.argv[1:]) if sys.argv[1:] else "kdistill bench speed"
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
            command=command,
        )
    )
    report = write_speed_report(results, args.output_dir)
    print(report.read_text())
    print(f"report: {report}")
    return 0


LANGUAGE_EPILOG = """example:
  OMP_NUM_THREADS=1 kdistill bench language
  OMP_NUM_THREADS=1 kdistill bench language --seeds 0 --student-epochs 1 --teacher-epochs 1 \\
      --train-fraction 0.05 --work-dir runs/smoke-language --output-dir runs/smoke-report

Needs the nlp extra (pip install 'kdistill[nlp]'). Finished stages are kept in --work-dir;
rerun the same command after an interruption to resume."""


def _add_language(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.language.plan import VARIANTS

    language = benches.add_parser(
        "language",
        help="MiniLM -> small BERT on BBC News: KD, TinyBERT, MiniLM, DistilBERT terms; embeddings",
        description="Fine-tunes all-MiniLM-L6-v2 on BBC News topics, trains a 2-layer BERT "
        "alone and with each distillation variant over several seeds, distils the pretrained "
        "MiniLM's sentence embeddings; accuracy, macro-F1, parameters, CPU latency, probes; "
        "writes results.json and README.md.",
        epilog=LANGUAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    language.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    language.add_argument("--student-epochs", type=int, default=4)
    language.add_argument("--teacher-epochs", type=int, default=2)
    language.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    language.add_argument("--no-embedding", action="store_true", help="skip embedding distillation")
    language.add_argument("--train-fraction", type=float, default=1.0)
    language.add_argument(
        "--part", choices=["encoder", "lm", "all"], default="all", help="which half to run"
    )
    language.add_argument("--lm-epochs", type=int, default=2)
    language.add_argument(
        "--lm-train-fraction", type=float, default=0.05, help="share of articles the LMs see"
    )
    language.add_argument("--work-dir", type=Path, default=Path("runs/bench-language"))
    language.add_argument("--output-dir", type=Path, default=Path("docs/results/language"))


def _run_language(args: argparse.Namespace) -> int:
    from kdistill.studies.language import LanguageBenchSettings, run_language_benchmark

    run_language_benchmark(
        LanguageBenchSettings(
            seeds=tuple(args.seeds),
            student_epochs=args.student_epochs,
            teacher_epochs=args.teacher_epochs,
            variants=tuple(args.variants),
            embedding=not args.no_embedding,
            train_fraction=args.train_fraction,
            work_dir=args.work_dir,
            report_dir=args.output_dir,
            part=args.part,
            lm_epochs=args.lm_epochs,
            lm_train_fraction=args.lm_train_fraction,
        )
    )
    print(f"report: {args.output_dir / 'README.md'}")
    return 0


def _add_dense(benches: argparse._SubParsersAction) -> None:
    dense = benches.add_parser(
        "dense",
        help="distillation for segmentation (and detection) on glyph canvases",
        description="Segmentation teacher, student alone, student + pixel-wise, + pair-wise, "
        "+ holistic, + pixel-wise and pair-wise, and + all three (Liu et al. 2019) on canvases "
        "of MNIST and Fashion-MNIST glyphs; mIoU, parameters, MACs and CPU latency; writes "
        "results.json, README.md and pictures. "
        "--tasks detection: the same for Chen et al. (2017)'s terms on a grid detector (mAP). "
        "Finished stages are kept in --work-dir; rerun the same command to resume.",
    )
    dense.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    dense.add_argument(
        "--tasks", nargs="+", default=["segmentation"], choices=["segmentation", "detection"]
    )
    dense.add_argument("--teacher-epochs", type=int, default=8, help="default 8")
    dense.add_argument("--epochs", type=int, default=6, help="students' epochs (default 6)")
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
    dense.add_argument("--work-dir", type=Path, default=Path("runs/bench-dense"))
    dense.add_argument("--output-dir", type=Path, default=Path("docs/results/dense"))


def run_bench(args: argparse.Namespace) -> int | None:
    """Run ``kdistill bench ...``; returns None when ``args`` is not a bench verb."""
    if args.verb != "bench":
        return None
    if args.bench == "deploy":
        return _run_deploy(args)
    if args.bench == "speed":
        return _run_speed(args)
    if args.bench == "self-online":
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
    if args.bench == "language":
        return _run_language(args)
    if args.bench == "netaug":
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
    if args.bench == "gan-compression":
        return run_gan_compression(args)
    if args.bench == "dense":
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
                work_dir=args.work_dir,
                output_dir=args.output_dir,
            )
        )
        return 0
    if args.bench != "methods":
        raise KDistillError(
            "kdistill bench needs a benchmark name: kdistill bench methods, self-online, netaug, "
            "gan-compression, language, dense, deploy or speed"
        )
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
