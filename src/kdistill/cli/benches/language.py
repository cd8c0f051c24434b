"""``kdistill bench language``: MiniLM -> small BERT on BBC News; SmolLM2 -> small Llama."""

from __future__ import annotations

import argparse

from kdistill.cli.benches.common import add_folders, add_seeds, subparser

NAME = "language"
EPILOG = """example:
  OMP_NUM_THREADS=1 kdistill bench language
  OMP_NUM_THREADS=1 kdistill bench language --seeds 0 --student-epochs 1 --teacher-epochs 1 \\
      --train-fraction 0.05 --work-dir runs/smoke-language --output-dir runs/smoke-report

Needs the nlp extra (pip install 'kdistill[nlp]'). Finished stages are kept in --work-dir;
rerun the same command after an interruption to resume."""


def add(benches: argparse._SubParsersAction) -> None:
    from kdistill.studies.language.plan import VARIANTS

    language = subparser(
        benches,
        NAME,
        help="MiniLM -> small BERT on BBC News: KD, TinyBERT, MiniLM, DistilBERT terms; embeddings",
        description="Fine-tunes all-MiniLM-L6-v2 on BBC News topics, trains a 2-layer BERT "
        "alone and with each distillation variant over several seeds, distils the pretrained "
        "MiniLM's sentence embeddings; accuracy, macro-F1, parameters, CPU latency, probes; "
        "writes results.json and README.md.",
        epilog=EPILOG,
    )
    add_seeds(language, (0, 1, 2, 3, 4))
    language.add_argument("--student-epochs", type=int, default=4)
    language.add_argument("--teacher-epochs", type=int, default=2)
    language.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    language.add_argument("--no-embedding", action="store_true", help="skip embedding distillation")
    language.add_argument("--train-fraction", type=float, default=1.0)
    language.add_argument(
        "--part", choices=["encoder", "lm", "all"], default="all", help="which half to run"
    )
    language.add_argument("--lm-epochs", type=int, default=6)
    language.add_argument(
        "--lm-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the causal-LM students"
    )
    language.add_argument(
        "--lm-train-fraction", type=float, default=0.3, help="share of articles the LMs see"
    )
    add_folders(
        language, "runs/bench-language", "docs/results/language", "results.json and README.md"
    )


def run(args: argparse.Namespace) -> int:
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
            lm_seeds=tuple(args.lm_seeds),
            lm_train_fraction=args.lm_train_fraction,
        )
    )
    print(f"report: {args.output_dir / 'README.md'}")
    return 0
