"""``kdistill``: the command line. Verbs are thin; the work is in importable functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdistill import __version__
from kdistill.cli.arguments import add_run_arguments, run_overrides
from kdistill.cli.benches import add_bench_verb, run_bench
from kdistill.cli.procedure_verbs import add_procedure_verbs, run_procedure_verb
from kdistill.cli.ship import add_export_verb, run_export
from kdistill.errors import KDistillError, Terminated

EPILOG = """examples:
  kdistill reproduce hinton-mnist --profile quick
  kdistill reproduce specialists --profile quick --workers 2
  kdistill train configs/hinton-mnist/teacher.yaml --set train.epochs=5 --output-dir runs/teacher
  kdistill distill configs/hinton-mnist/student-distilled.yaml \\
      --set "distill.teachers=[{checkpoint: runs/teacher/model.safetensors}]" --set distill.temperature=8
  kdistill evaluate runs/teacher/model.safetensors --data mnist --bias-shift 3=3.5
  kdistill born-again configs/born-again/mnist-mlp.yaml --generations 3
  kdistill mutual configs/mutual/mnist-mlp-pair.yaml
  kdistill netaug configs/netaug/mnist-mlp30.yaml
  kdistill bench methods --datasets mnist --seeds 1 --epochs 1

Every config key can be overridden with --set section.key=value (values are YAML).
Errors print one line and exit with status 2; --resume continues a killed run (Ctrl-C exits
130, SIGTERM checkpoints at the next step and exits 143). A folder holding another run is
refused unless --resume or --overwrite; two runs never share one (a lock is held)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdistill",
        description="Knowledge distillation on a CPU or GPU: train teachers, distil students, reproduce papers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kdistill {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    train = verbs.add_parser(
        "train",
        help="train a model on hard labels (a teacher or a baseline student)",
        description="Train one model with cross-entropy on the true labels. Writes metrics.jsonl, "
        "checkpoint.safetensors (resumable) and model.safetensors to the output directory.",
    )
    add_run_arguments(train)

    distill = verbs.add_parser(
        "distill",
        help="distil a student from one or more teachers",
        description="Train a student on a teacher's (or an ensemble's) soft targets at temperature T, "
        "plus the hard labels and any extra loss terms in distill.terms (Hinton et al. 2015).",
    )
    add_run_arguments(distill)

    netaug = verbs.add_parser(
        "netaug",
        help="train a tiny model with network augmentation (NetAug), optionally with KD",
        description="Network Augmentation (Cai et al., ICLR 2022): each step trains the base "
        "model (model: an mlp or cnn) and one wider copy of it that shares its weights, loss = "
        "L(base) + netaug.aug_weight * L(augmented); channels sorted by L1 norm each epoch; "
        "augmentation stops after netaug.stop_fraction of the epochs; batch norm re-estimated "
        "at the end. netaug.distill (teachers, temperature, ...) adds KD. Only the base is saved "
        "(model.safetensors, a plain mlp or cnn).",
    )
    add_run_arguments(netaug)

    evaluate = verbs.add_parser(
        "evaluate",
        help="test a saved model: errors, per-class errors, confusion matrix",
        description="Evaluate a model file written by kdistill (its sidecar says how to build it).",
    )
    evaluate.add_argument(
        "model",
        nargs="+",
        help="model.safetensors / student.safetensors from a run; several files are tested "
        "as an ensemble (and one by one)",
    )
    evaluate.add_argument(
        "--ensemble-rule",
        choices=["arithmetic", "geometric"],
        default="arithmetic",
        help="how several models' distributions are averaged (default arithmetic)",
    )
    evaluate.add_argument(
        "--data",
        help="mnist, fashion-mnist, idx:DIR or npz:FILE (default: the data set the model file "
        "records it was trained on, else mnist)",
    )
    evaluate.add_argument(
        "--bias-shift",
        action="append",
        default=[],
        metavar="CLASS=SHIFT",
        help="add SHIFT to the output bias of CLASS before testing (the paper's missing-class fix)",
    )
    evaluate.add_argument(
        "--model-spec",
        metavar="NAME",
        help="how to build the model when its file has no recipe (a user nn.Module): a "
        "registered name or package.module:factory",
    )
    evaluate.add_argument(
        "--model-kwargs", default="{}", help="keyword arguments for --model-spec, as YAML"
    )
    evaluate.add_argument("--json", action="store_true", help="print the full result as JSON")

    reproduce = verbs.add_parser(
        "reproduce",
        help="run a paper reproduction and write its report",
        description="Run a named reproduction end to end and write Markdown + JSON + plots. "
        "Finished stages are cached, so a killed run resumes where it stopped.",
    )
    reproduce.add_argument("name", help="reproduction to run; available: hinton-mnist, specialists")
    reproduce.add_argument(
        "--profile",
        default="quick",
        help="quick (minutes), full (paper sizes, 3 seeds) or smoke (tests)",
    )
    reproduce.add_argument(
        "--output-dir",
        help="report folder (default WORK_DIR/report; the committed reports are written with "
        "--output-dir docs/results/NAME/PROFILE)",
    )
    reproduce.add_argument(
        "--work-dir", help="where runs and checkpoints go (default runs/NAME-PROFILE)"
    )
    reproduce.add_argument(
        "--workers",
        type=int,
        help="specialists: train this many specialists at once, one process and one thread "
        "each (default 1)",
    )
    add_procedure_verbs(verbs)
    add_export_verb(verbs)
    add_bench_verb(verbs)
    return parser


def _yaml_mapping(text: str) -> dict:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise KDistillError(
            f"--model-kwargs {text!r} is not valid YAML: e.g. '{{hidden: 64}}'"
        ) from None
    if not isinstance(value, dict):
        raise KDistillError(f"--model-kwargs {text!r} must be a mapping, e.g. '{{hidden: 64}}'")
    return value


def _check_class_counts(
    paths: Sequence[str], models: Sequence[Any], test: Any, classes: int, name: str
) -> None:
    """Every model must output one score per class of the data set, and all alike."""
    from kdistill.tasks import ClassificationTask

    task = ClassificationTask()
    outputs = [task.probe(model, test, path) for path, model in zip(paths, models, strict=True)]
    if len(set(outputs)) > 1:
        listed = ", ".join(f"{path}: {count}" for path, count in zip(paths, outputs, strict=True))
        raise KDistillError(
            f"the models output different numbers of classes ({listed}): evaluate models of "
            "one data set together"
        )
    if outputs[0] < classes:
        raise KDistillError(
            f"{paths[0]} outputs {outputs[0]} classes but {name} has {classes}: pass --data "
            "with the data set it was trained on"
        )


def _run(args: argparse.Namespace) -> int:
    if args.verb in {"train", "distill", "netaug"}:
        from kdistill import methods
        from kdistill.config import (
            DistillRunConfig,
            NetAugRunConfig,
            RunConfig,
            TrainRunConfig,
            load_config,
        )
        from kdistill.engine import is_main_process

        schemas: dict[str, type[RunConfig]] = {
            "train": TrainRunConfig,
            "distill": DistillRunConfig,
            "netaug": NetAugRunConfig,
        }
        schema = schemas[args.verb]
        config = load_config(args.config, run_overrides(args), schema=schema)
        result = methods.run(config, resume=args.resume, overwrite=args.overwrite)
        if not is_main_process():
            return 0  # under torchrun, rank 0 reports for every process
        # Detection has no errors to count: its line shows mAP instead.
        errors = {
            name: {
                split: metrics["errors"] if "errors" in metrics else {"map": metrics.get("map")}
                for split, metrics in splits.items()
            }
            for name, splits in result.final.items()
        }
        print(json.dumps({"output_dir": str(result.run_dir), "test_errors": errors}))
        return 0
    if args.verb == "evaluate":
        from kdistill.data import InputEncoding, load_dataset
        from kdistill.engine import load_model
        from kdistill.files import cache_dir
        from kdistill.models import apply_class_bias_shift
        from kdistill.teachers import Teacher, evaluate_teacher

        shifts = {}
        for item in args.bias_shift:
            label, _, value = item.partition("=")
            try:
                shifts[int(label)] = float(value)
            except ValueError:
                raise KDistillError(
                    f"--bias-shift {item!r} must look like CLASS=SHIFT, e.g. 3=3.5"
                ) from None
        recipe = None
        if args.model_spec:
            recipe = {"name": args.model_spec, "kwargs": _yaml_mapping(args.model_kwargs)}
        loaded = [load_model(path, recipe) for path in args.model]
        for path, (_, meta) in zip(args.model, loaded, strict=True):
            if meta.get("task") in ("generation", "discriminator"):
                raise KDistillError(
                    f"{path} is a GAN's {meta['task'] == 'generation' and 'generator' or 'discriminator'}: "
                    "kdistill evaluate measures classifiers; a generator's metrics are in its "
                    "run's final.json and metrics.jsonl"
                )
        models = [model for model, _ in loaded]
        for model in models:
            if shifts:
                apply_class_bias_shift(model, shifts)
        encodings = {json.dumps(meta.get("input_encoding"), sort_keys=True) for _, meta in loaded}
        if len(encodings) > 1:
            raise KDistillError(
                "the models were trained on inputs encoded differently (normalisation or "
                "input_shape): evaluate them one at a time"
            )
        data = args.data or loaded[0][1].get("dataset") or "mnist"
        dataset = load_dataset(data, cache_dir=cache_dir())
        test = dataset.test
        recorded = loaded[0][1].get("input_encoding")
        if recorded is not None:
            test = test.with_encoding(InputEncoding.from_description(recorded))
        task_name = str(loaded[0][1].get("task") or "classification")
        if task_name != "classification":  # segmentation, detection: the task's own metrics
            from kdistill.engine import resolve_device
            from kdistill.tasks import create_task

            if len(models) > 1 or shifts:
                raise KDistillError(
                    f"evaluate one {task_name} model at a time, without --bias-shift"
                )
            dense = create_task(task_name).evaluate(models[0], test, 500, resolve_device("cpu"))
            print(json.dumps(dense.summary()))
            return 0
        _check_class_counts(args.model, models, test, dataset.num_classes, dataset.name)
        evaluation, members = evaluate_teacher(Teacher(models), test, args.ensemble_rule)
        if args.json:
            summary = evaluation.summary(with_details=True)
            if len(models) > 1:
                summary["members"] = [member.summary() for member in members]
            print(json.dumps(summary))
            return 0
        if len(models) > 1:
            for path, member in zip(args.model, members, strict=True):
                print(f"{path}: {member.errors} errors / {member.total}")
        name = (
            args.model[0] if len(models) == 1 else f"{args.ensemble_rule} ensemble of {len(models)}"
        )
        print(
            f"{name} on {dataset.name} test: {evaluation.errors} errors / {evaluation.total} "
            f"({100 * evaluation.accuracy:.2f}% accuracy)"
        )
        print(
            "per-class errors:",
            " ".join(f"{c}:{n}" for c, n in enumerate(evaluation.per_class_errors)),
        )
        return 0
    if args.verb == "export":
        return run_export(args)
    if args.verb == "reproduce":
        from kdistill.studies import run_reproduction

        results = run_reproduction(
            args.name,
            profile=args.profile,
            output_dir=args.output_dir,
            work_dir=args.work_dir,
            workers=args.workers,
        )
        from kdistill.engine import is_main_process

        if not is_main_process():
            return 0  # under torchrun, rank 0 reports for every process
        report = Path(results["report"])
        lines = report.read_text().splitlines()
        first = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
        table = []
        for line in lines[first:]:
            if not line.startswith("|"):
                break
            table.append(line)
        print("\n".join(table))
        print(f"report: {report} (with results.json and the plots beside it)")
        return 0
    status = run_bench(args)
    if status is not None:
        return status
    return run_procedure_verb(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 1
    from kdistill.engine.distributed import leave_process_group
    from kdistill.engine.interrupt import handle_sigterm

    finished = False
    try:
        with handle_sigterm():
            status = _run(args)
        finished = True
        return status
    except KDistillError as error:
        print(f"kdistill: error: {error}", file=sys.stderr)
        return 2
    except Terminated:
        print(
            "kdistill: stopped by SIGTERM; rerun the same command with --resume to continue "
            "from the last checkpoint",
            file=sys.stderr,
        )
        return 143
    except KeyboardInterrupt:
        print(
            "kdistill: interrupted; rerun with --resume to continue from the last checkpoint",
            file=sys.stderr,
        )
        return 130
    finally:
        leave_process_group(finished)


if __name__ == "__main__":
    sys.exit(main())
