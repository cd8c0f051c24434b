"""``kdistill bench methods``: every distillation method on one small, measured footing.

On each data set (Fashion-MNIST, MNIST) one CNN teacher is trained once; then, for every
seed, the same small CNN student is trained with the same epochs, batches and optimizer as

* ``student``: hard labels only (the baseline, and the unit of the epoch-time ratio),
* ``kd``: Hinton et al.'s soft targets plus a little of the hard labels,
* ``<method>``: the method's term(s) plus the hard labels, no soft targets ("alone"),
* ``kd+<method>``: the KD objective plus the method's term(s).

Every run is a plain :func:`kdistill.methods.run` call on a
config (the same configs as ``configs/methods/*.yaml``), so the table measures the toolkit
itself. Each finished (data set, variant, seed) run leaves a JSON file in the work
directory; a killed benchmark re-run with the same options reads those back and resumes the
unfinished run from its last epoch checkpoint. The reported figure is the test accuracy after
the last epoch (no model selection), mean and sample standard deviation over seeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdistill import methods
from kdistill.config import RunConfig, config_digest, parse_config
from kdistill.data import DataSet, load_dataset
from kdistill.data.subsets import stratified_indices
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text, cache_dir

RESULTS_NAME = "results.json"
README_NAME = "README.md"
DATASET_LABELS = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}
KD_TEMPERATURE = 4.0
KD_SOFT_WEIGHT = 0.9
KD_HARD_WEIGHT = 0.1
SUBSET_SEED = 0
"""The training subset is the same for every seed and method: only initialisation and batch
order change with the seed."""


@dataclass(frozen=True)
class Method:
    """One method of the table: its loss term(s) as config entries (``distill.terms``).

    Module paths are those of :class:`kdistill.models.cnn.SmallCNN` with three blocks, for the
    student and the teacher alike: ``features.0`` conv, ``.1`` BatchNorm, ``.2`` ReLU, ``.3``
    max-pool (28 -> 14), ``.4`` .. ``.7`` the second block (14 -> 7), ``.8`` .. ``.11`` the
    third (7 -> 3), ``pool`` the global average (the embedding), ``classifier.1`` the head.
    """

    key: str
    label: str
    terms: tuple[dict[str, Any], ...]
    source: str
    """Where the weight comes from."""

    def term_entries(self) -> list[dict[str, Any]]:
        return [dict(term) for term in self.terms]


METHODS: dict[str, Method] = {
    method.key: method
    for method in (
        Method(
            "logit_l2",
            "logit L2",
            ({"kind": "logit_l2", "weight": 0.1},),
            "0.1 = 1/classes: the gradient of T^2-scaled KD in the high-T limit (Hinton 2015, 2.1)",
        ),
        Method(
            "dkd",
            "DKD",
            ({"kind": "dkd", "weight": 1.0, "temperature": 4.0, "alpha": 1.0, "beta": 8.0},),
            "mdistiller CIFAR-100 defaults (alpha 1, beta 8, T 4), without the 20-epoch warm-up",
        ),
        Method(
            "weights",
            "weights",
            (
                {
                    "kind": "weights",
                    "weight": 1.0,
                    "pairs": [
                        ["features.0", "features.0"],
                        ["features.4", "features.4"],
                        ["features.8", "features.8"],
                        ["classifier.1", "classifier.1"],
                    ],
                },
            ),
            "no reference value: weight 1",
        ),
        Method(
            "fitnet",
            "FitNet",
            (
                {
                    "kind": "fitnet",
                    "weight": 10.0,
                    "student": "features.5",
                    "teacher": "features.5",
                    "reduction": "mean",
                },
            ),
            "RepDistiller's hint weight 100 on the mean error made the loss NaN within the "
            "first epoch of a trial with an (8, 16, 32) student, so 10; one stage, as in "
            "RepDistiller",
        ),
        Method(
            "nst",
            "NST",
            (
                {
                    "kind": "nst",
                    "weight": 50.0,
                    "student": "features.10",
                    "teacher": "features.10",
                    "kernel": "polynomial",
                },
            ),
            "RepDistiller's NST weight 50, polynomial kernel",
        ),
        Method(
            "at",
            "AT",
            (
                {
                    "kind": "at",
                    "weight": 1000.0,
                    "pairs": [
                        ["features.2", "features.2"],
                        ["features.6", "features.6"],
                        ["features.10", "features.10"],
                    ],
                    "p": 2.0,
                    "squared": True,
                },
            ),
            "the AT paper's beta = 1000 on the squared form (as RepDistiller)",
        ),
        Method(
            "grad_at",
            "grad-AT",
            ({"kind": "grad_at", "weight": 1.0},),
            "no reference value for MNIST-size inputs: weight 1",
        ),
        Method(
            "ab",
            "AB",
            (
                {
                    "kind": "ab",
                    "weight": 0.001,
                    "student": "features.9",
                    "teacher": "features.9",
                    "margin": 1.0,
                },
            ),
            "weight 1e-3 (the loss sums about 3,100 hinge terms per teacher image); trained "
            "jointly, not as the paper's initialisation stage",
        ),
        Method(
            "rkd_distance",
            "RKD-distance",
            ({"kind": "rkd_distance", "weight": 25.0, "student": "pool", "teacher": "pool"},),
            "the RKD paper's / RepDistiller's distance weight 25 on the embedding",
        ),
        Method(
            "rkd_angle",
            "RKD-angle",
            ({"kind": "rkd_angle", "weight": 50.0, "student": "pool", "teacher": "pool"},),
            "the RKD paper's / RepDistiller's angle weight 50 on the embedding",
        ),
        Method(
            "sp",
            "SP",
            ({"kind": "sp", "weight": 3000.0, "student": "features.11", "teacher": "features.11"},),
            "the SP paper's / RepDistiller's gamma 3000 on the last block",
        ),
    )
}

# RepDistiller (Tian et al., "Contrastive Representation Distillation", ICLR 2020, Table 1):
# CIFAR-100 top-1, resnet32x4 teacher -> resnet8x4 student, each method with the
# cross-entropy; DKD from mdistiller (Zhao et al., CVPR 2022) on the same pair.
REFERENCE_CIFAR100 = {
    "student": 72.50,
    "kd": 73.33,
    "fitnet": 73.50,
    "at": 73.44,
    "sp": 72.94,
    "rkd": 71.90,
    "ab": 73.17,
    "nst": 73.30,
    "dkd": 76.32,
}


@dataclass
class BenchSettings:
    """Options of ``kdistill bench methods`` (see the CLI help for each)."""

    datasets: list[str] = field(default_factory=lambda: ["fashion-mnist", "mnist"])
    seeds: int = 3
    epochs: int = 5
    train_size: int = 5_000
    test_size: int | None = None
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    output: Path = Path("docs/results/methods")
    work_dir: Path = Path("runs/bench-methods")
    threads: int | None = None
    teacher_channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    student_channels: list[int] = field(default_factory=lambda: [4, 8, 16])
    batch_size: int = 50
    lr: float = 0.05

    def command_line(self) -> str:
        """The ``kdistill bench methods`` command that reproduces these settings."""
        parts = [
            "kdistill bench methods",
            f"--datasets {','.join(self.datasets)}",
            f"--seeds {self.seeds}",
            f"--epochs {self.epochs}",
            f"--train-size {self.train_size}",
        ]
        if self.test_size is not None:
            parts.append(f"--test-size {self.test_size}")
        if self.methods != list(METHODS):
            parts.append(f"--methods {','.join(self.methods)}")
        if self.teacher_channels != [16, 32, 64]:
            parts.append(f"--teacher-channels {','.join(map(str, self.teacher_channels))}")
        if self.student_channels != [4, 8, 16]:
            parts.append(f"--student-channels {','.join(map(str, self.student_channels))}")
        if self.threads is not None:
            parts.append(f"--threads {self.threads}")
        parts += [f"--output {self.output}", f"--work-dir {self.work_dir}"]
        return " ".join(parts)

    def check(self) -> None:
        """Raise :class:`KDistillError` for options that cannot run."""
        unknown = [name for name in self.methods if name not in METHODS]
        if unknown:
            raise KDistillError(
                f"unknown method(s) {', '.join(unknown)} for --methods: use any of "
                f"{', '.join(METHODS)}"
            )
        bad = [name for name in self.datasets if name not in DATASET_LABELS]
        if bad:
            raise KDistillError(
                f"unknown data set(s) {', '.join(bad)} for --datasets: use "
                f"{', '.join(DATASET_LABELS)}"
            )
        for name, value in (("--seeds", self.seeds), ("--epochs", self.epochs)):
            if value < 1:
                raise KDistillError(f"{name} must be at least 1, got {value}")
        if self.train_size < self.batch_size:
            raise KDistillError(
                f"--train-size {self.train_size} is below one batch ({self.batch_size}): "
                "use at least that many images"
            )

    def variants(self) -> list[str]:
        """Run names in table order: baseline, KD, each method alone, KD + each method."""
        return ["student", "kd", *self.methods, *(f"kd+{name}" for name in self.methods)]


def bench_dataset(name: str, train_size: int, test_size: int | None) -> DataSet:
    """``name`` with a stratified ``train_size`` training subset (same for every seed) and the
    whole test set, or a stratified ``test_size`` part of it."""
    full = load_dataset(name, cache_dir=cache_dir())
    train = full.train
    if train_size < len(train):
        train = train.subset(stratified_indices(train.labels, train_size, SUBSET_SEED))
    test = full.test
    if test_size is not None and test_size < len(test):
        test = test.subset(stratified_indices(test.labels, test_size, SUBSET_SEED))
    return DataSet(
        name=name,
        train=train,
        test=test,
        num_classes=full.num_classes,
        fingerprint=f"{full.fingerprint}|train{len(train)}|test{len(test)}",
    )


def _train_section(settings: BenchSettings) -> dict[str, Any]:
    return {
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "eval_batch_size": 1000,
        "optimizer": {"name": "sgd", "lr": settings.lr, "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"name": "cosine"},
        "threads": settings.threads,
        "progress": False,
    }


def _model(channels: Sequence[int]) -> dict[str, Any]:
    return {"name": "cnn", "kwargs": {"channels": list(channels)}}


def teacher_config(settings: BenchSettings, dataset: str, run_dir: Path) -> RunConfig:
    """The teacher of ``dataset``: hard labels, seed 0, the students' epochs and optimizer."""
    return parse_config(
        {
            "seed": 0,
            "output_dir": str(run_dir),
            "data": {"name": dataset},
            "model": _model(settings.teacher_channels),
            "train": _train_section(settings),
        }
    )


def variant_config(
    settings: BenchSettings, dataset: str, variant: str, seed: int, teacher: Path, run_dir: Path
) -> RunConfig:
    """The run config of one table cell: ``student``, ``kd``, ``<method>`` or ``kd+<method>``."""
    raw: dict[str, Any] = {
        "seed": seed,
        "output_dir": str(run_dir),
        "data": {"name": dataset},
        "model": _model(settings.student_channels),
        "train": _train_section(settings),
    }
    if variant != "student":
        with_kd = variant == "kd" or variant.startswith("kd+")
        method = variant.removeprefix("kd+") if variant != "kd" else None
        if method is not None and method not in METHODS:
            raise KDistillError(
                f"unknown benchmark variant {variant!r}: use one of {list(METHODS)}"
            )
        raw["distill"] = {
            "teachers": [{"checkpoint": str(teacher)}],
            "temperature": KD_TEMPERATURE,
            "soft_target_weight": KD_SOFT_WEIGHT if with_kd else 0.0,
            "hard_target_weight": KD_HARD_WEIGHT if with_kd else 1.0,
            "terms": METHODS[method].term_entries() if method else [],
        }
    return parse_config(raw)


def run_digest(config: RunConfig, dataset: DataSet) -> str:
    """A digest of everything that changes a run's numbers: the config (see
    :func:`kdistill.config.config_digest`) and the exact data."""
    content = f"{config_digest(config)}|{dataset.fingerprint}"
    return hashlib.sha256(content.encode()).hexdigest()[:10]


def _epoch_seconds(run_dir: Path, history: list[dict[str, Any]]) -> list[float]:
    """Training seconds of every epoch, FitNet's hint stage (if any) first."""
    seconds: list[float] = []
    hint_log = run_dir / "hint-stage" / "metrics.jsonl"
    if hint_log.exists():
        for line in hint_log.read_text().splitlines():
            if line:
                seconds.append(float(json.loads(line)["seconds"]))
    return seconds + [float(record["seconds"]) for record in history]


def _first_epoch_losses(model_file: Path) -> dict[str, float] | None:
    """The weighted training losses of a finished run's first epoch, from its metrics log."""
    log = model_file.parent / "metrics.jsonl"
    if not log.exists():
        return None
    first = log.read_text().splitlines()[0]
    return json.loads(first)["train"]["loss"]


def _term_to_labels(losses: dict[str, float] | None) -> float | None:
    """First-epoch weighted method term(s) over the cross-entropy with the labels."""
    if not losses or not losses.get("hard_targets"):
        return None
    extra = sum(v for k, v in losses.items() if k not in ("hard_targets", "soft_targets"))
    return extra / losses["hard_targets"]


def run_cell(
    settings: BenchSettings,
    dataset: DataSet,
    variant: str,
    seed: int,
    teacher: Path | None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """One (data set, variant, seed) run, or its JSON record if it already finished."""
    base = settings.work_dir / dataset.name
    if variant == "teacher":
        config = teacher_config(settings, dataset.name, Path("."))
    else:
        assert teacher is not None
        config = variant_config(settings, dataset.name, variant, seed, teacher, Path("."))
    digest = run_digest(config, dataset)
    record_path = base / "results" / variant / f"seed-{seed}.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("digest") == digest:
            record.setdefault("first_epoch_losses", _first_epoch_losses(Path(record["model_file"])))
            return record
    run_dir = base / "runs" / variant / f"seed-{seed}-{digest}"
    config = config.model_copy(update={"output_dir": str(run_dir)})
    started_at = time.time()
    started = time.perf_counter()
    result = methods.run(config, resume=True, dataset=dataset)
    elapsed = time.perf_counter() - started
    model_name = next(iter(result.final))
    test = result.final[model_name]["test"]
    record = {
        "dataset": dataset.name,
        "variant": variant,
        "seed": seed,
        "digest": digest,
        "test_accuracy": 1.0 - test["errors"] / test["total"],
        "test_errors": test["errors"],
        "test_total": test["total"],
        "epoch_seconds": _epoch_seconds(run_dir, result.history),
        "run_seconds": round(elapsed, 2),
        "started_at": started_at,
        "finished_at": time.time(),
        "threads": settings.threads,
        "model_file": str(run_dir / f"{model_name}.safetensors"),
        "first_epoch_losses": result.history[0]["train"]["loss"] if result.history else None,
    }
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    log(
        f"[{dataset.name} {variant} seed {seed}] {elapsed:.1f} s, "
        f"test accuracy {100 * record['test_accuracy']:.2f}%"
    )
    return record


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def summarise(records: list[dict[str, Any]], teachers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per data set and variant: accuracy mean/std over seeds and the epoch-time ratio.

    The ratio is, per seed, the mean epoch time of the run over the mean epoch time of the
    ``student`` run with that seed (same data set, same benchmark machine), then averaged.
    """
    summary: dict[str, Any] = {}
    for dataset in dict.fromkeys(record["dataset"] for record in records):
        rows = [record for record in records if record["dataset"] == dataset]
        baseline = {
            record["seed"]: statistics.fmean(record["epoch_seconds"])
            for record in rows
            if record["variant"] == "student"
        }
        variants: dict[str, Any] = {}
        for variant in dict.fromkeys(record["variant"] for record in rows):
            cells = sorted(
                (record for record in rows if record["variant"] == variant),
                key=lambda record: record["seed"],
            )
            accuracies = [100 * record["test_accuracy"] for record in cells]
            ratios = [
                statistics.fmean(record["epoch_seconds"]) / baseline[record["seed"]]
                for record in cells
                if record["seed"] in baseline
            ]
            mean, std = _mean_std(accuracies)
            shares = [
                share
                for share in (_term_to_labels(record.get("first_epoch_losses")) for record in cells)
                if share is not None
            ]
            variants[variant] = {
                "first_epoch_term_over_labels": round(statistics.fmean(shares), 2)
                if shares and variant not in ("student", "kd")
                else None,
                "accuracy_mean": round(mean, 3),
                "accuracy_std": round(std, 3),
                "accuracies": [round(value, 2) for value in accuracies],
                "seeds": [record["seed"] for record in cells],
                "epoch_time_ratio": round(statistics.fmean(ratios), 2) if ratios else None,
                "epoch_seconds_mean": round(
                    statistics.fmean(
                        [statistics.fmean(record["epoch_seconds"]) for record in cells]
                    ),
                    2,
                ),
            }
        teacher = teachers.get(dataset)
        summary[dataset] = {
            "teacher_accuracy": None
            if teacher is None
            else round(100 * teacher["test_accuracy"], 2),
            "variants": variants,
        }
    return summary


def machine_description(threads: int | None) -> dict[str, Any]:
    """CPU model, core count, torch version and the thread count the runs used."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads if threads is not None else torch.get_num_threads(),
    }


def run_methods_benchmark(
    settings: BenchSettings, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run (or read back) every cell, then write ``results.json`` and ``README.md``."""
    settings.check()
    started = time.perf_counter()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    records: list[dict[str, Any]] = []
    teachers: dict[str, dict[str, Any]] = {}
    seeds = list(range(settings.seeds))
    variants = settings.variants()
    total = len(settings.datasets) * (1 + len(seeds) * len(variants))
    done = 0
    for name in settings.datasets:
        dataset = bench_dataset(name, settings.train_size, settings.test_size)
        teacher = run_cell(settings, dataset, "teacher", 0, None, log)
        teachers[name] = teacher
        done += 1
        for seed in seeds:
            for variant in variants:
                records.append(
                    run_cell(settings, dataset, variant, seed, Path(teacher["model_file"]), log)
                )
                done += 1
        log(f"[{name}] done ({done}/{total} runs, {time.perf_counter() - started:.0f} s so far)")
    wall = time.perf_counter() - started
    everything = [*teachers.values(), *records]
    summary = summarise(records, teachers)
    results = {
        "benchmark": "methods",
        "command": settings.command_line(),
        "rule": "test accuracy after the last epoch; mean and sample std over seeds",
        "settings": {
            **asdict(settings),
            "output": str(settings.output),
            "work_dir": str(settings.work_dir),
            "kd": {
                "temperature": KD_TEMPERATURE,
                "soft_target_weight": KD_SOFT_WEIGHT,
                "hard_target_weight": KD_HARD_WEIGHT,
            },
        },
        "methods": {
            key: {"label": method.label, "terms": method.term_entries(), "source": method.source}
            for key, method in METHODS.items()
            if key in settings.methods
        },
        "machine": machine_description(settings.threads),
        "wall_seconds_this_invocation": round(wall, 1),
        "wall_seconds_first_to_last_run": round(
            max(record.get("finished_at", 0.0) for record in everything)
            - min(record.get("started_at", 0.0) for record in everything),
            1,
        ),
        "run_seconds_total": round(sum(record["run_seconds"] for record in everything), 1),
        "teachers": teachers,
        "summary": summary,
        "runs": records,
    }
    settings.output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(settings.output / RESULTS_NAME, json.dumps(results, indent=2) + "\n")
    atomic_write_text(settings.output / README_NAME, render_report(results))
    log(f"wrote {settings.output / README_NAME} and {settings.output / RESULTS_NAME}")
    return results


def _cell(summary: dict[str, Any], variant: str, baseline: float | None) -> str:
    entry = summary["variants"].get(variant)
    if entry is None:
        return "-"
    text = f"{entry['accuracy_mean']:.2f} ± {entry['accuracy_std']:.2f}"
    if baseline is not None and variant != "student":
        text += f" ({entry['accuracy_mean'] - baseline:+.2f})"
    return text


def _ratio(results: dict[str, Any], variant: str) -> str:
    ratios = [
        data["variants"][variant]["epoch_time_ratio"]
        for data in results["summary"].values()
        if variant in data["variants"] and data["variants"][variant]["epoch_time_ratio"]
    ]
    return f"{statistics.fmean(ratios):.2f}" if ratios else "-"


def render_table(results: dict[str, Any]) -> str:
    """The Markdown table: one row per method, alone and with KD, per data set."""
    datasets = list(results["summary"])
    header = ["method"]
    for name in datasets:
        label = DATASET_LABELS.get(name, name)
        header += [f"{label} alone", f"{label} + KD"]
    header += ["epoch time × student (alone / + KD)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    baselines = {
        name: data["variants"].get("student", {}).get("accuracy_mean")
        for name, data in results["summary"].items()
    }
    teacher_cells = ["teacher (1 run)"]
    for name in datasets:
        accuracy = results["summary"][name]["teacher_accuracy"]
        teacher_cells += [f"{accuracy:.2f}" if accuracy is not None else "-", ""]
    lines.append("| " + " | ".join([*teacher_cells, ""]) + " |")
    rows: list[tuple[str, str, str | None]] = [
        ("student (hard labels)", "student", None),
        ("KD", "kd", None),
    ]
    rows += [(METHODS[key].label, key, f"kd+{key}") for key in results["settings"]["methods"]]
    for label, alone, with_kd in rows:
        cells = [label]
        for name in datasets:
            data = results["summary"][name]
            cells.append(_cell(data, alone, baselines[name]))
            cells.append(_cell(data, with_kd, baselines[name]) if with_kd else "")
        timing = _ratio(results, alone)
        if with_kd:
            timing += f" / {_ratio(results, with_kd)}"
        cells.append(timing)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ordering(results: dict[str, Any], dataset: str) -> str:
    variants = results["summary"][dataset]["variants"]
    shown = ["student", "kd", *results["settings"]["methods"]]
    ranked = sorted(
        (key for key in shown if key in variants),
        key=lambda key: -variants[key]["accuracy_mean"],
    )
    return " > ".join(_label(key) for key in ranked)


def _label(key: str) -> str:
    if key == "student":
        return "student"
    if key == "kd":
        return "KD"
    if key == "rkd":
        return "RKD"
    return METHODS[key].label


def _delta(variants: dict[str, Any], key: str) -> float | None:
    base = variants.get("student", {}).get("accuracy_mean")
    if key not in variants or base is None:
        return None
    return float(variants[key]["accuracy_mean"] - base)


def render_comparison(results: dict[str, Any]) -> str:
    """Our differences from the student (methods alone) next to RepDistiller's CIFAR-100 ones."""
    reference = sorted(REFERENCE_CIFAR100, key=lambda key: -REFERENCE_CIFAR100[key])
    names = list(results["summary"])
    lines = [
        "| method | CIFAR-100 top-1 (reference) | reference Δ vs student | "
        + " | ".join(f"{DATASET_LABELS.get(name, name)} Δ (ours)" for name in names)
        + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for key in reference:
        keys = ["rkd_distance", "rkd_angle"] if key == "rkd" else [key]
        ours = []
        for name in names:
            variants = results["summary"][name]["variants"]
            parts = []
            for part in keys:
                delta = _delta(variants, part)
                if delta is not None:
                    parts.append(
                        f"{delta:+.2f}" + (f" ({METHODS[part].label})" if key == "rkd" else "")
                    )
            ours.append(", ".join(parts) if parts else "-")
        value = REFERENCE_CIFAR100[key]
        lines.append(
            f"| {_label(key)} | {value:.2f} | {value - REFERENCE_CIFAR100['student']:+.2f} | "
            + " | ".join(ours)
            + " |"
        )
    orderings = [
        "Reference order (CIFAR-100): "
        + " > ".join(_label(key) for key in reference)
        + " (RKD there is distance + angle together; DKD from mdistiller)."
    ]
    for name in names:
        orderings.append(
            f"Our order, {DATASET_LABELS.get(name, name)}, methods alone: "
            + _ordering(results, name)
            + "."
        )
    return "\n".join(lines) + "\n\n" + "\n\n".join(orderings)


def _beyond(variants: dict[str, Any], key: str, sign: float) -> bool:
    """Whether ``key`` is above (``sign`` 1) or below (-1) the student by more than the larger
    of the two standard deviations."""
    delta = _delta(variants, key) or 0.0
    spread = max(variants["student"]["accuracy_std"], variants[key]["accuracy_std"])
    return sign * delta > spread


def render_observations(results: dict[str, Any]) -> str:
    """What the table says, computed from it: who beats the student, by how much."""
    lines = []
    for name, data in results["summary"].items():
        variants = data["variants"]
        student = variants.get("student")
        if student is None:
            continue
        spread = student["accuracy_std"]
        alone = [key for key in ["kd", *results["settings"]["methods"]] if key in variants]
        combined = [
            f"kd+{key}" for key in results["settings"]["methods"] if f"kd+{key}" in variants
        ]
        better = [_label(key) for key in alone if _beyond(variants, key, 1.0)]
        worse = [_label(key) for key in alone if _beyond(variants, key, -1.0)]
        kd = variants.get("kd", {}).get("accuracy_mean")
        helps_kd = [
            _label(key.removeprefix("kd+"))
            for key in combined
            if kd is not None and variants[key]["accuracy_mean"] > kd
        ]
        teacher = data["teacher_accuracy"]
        lines.append(
            f"* **{DATASET_LABELS.get(name, name)}**: teacher "
            f"{'-' if teacher is None else f'{teacher:.2f}'}, student alone "
            f"{student['accuracy_mean']:.2f} ± {spread:.2f}. Above the student by more than a "
            f"standard deviation (alone): {', '.join(better) or 'none'}; below it by more than "
            f"one: {', '.join(worse) or 'none'}. Added to KD, these raise KD's mean: "
            f"{', '.join(helps_kd) or 'none'}."
        )
    return "\n".join(lines)


def why_different(results: dict[str, Any]) -> str:
    """Reasons our ordering may differ from the CIFAR-100 one, with the settings filled in."""
    settings = results["settings"]
    kd = settings["kd"]
    steps = settings["epochs"] * -(-settings["train_size"] // settings["batch_size"])
    gaps = ", ".join(
        f"{DATASET_LABELS.get(name, name)} {data['teacher_accuracy']:.2f} vs "
        f"{data['variants']['student']['accuracy_mean']:.2f}"
        for name, data in results["summary"].items()
        if data["teacher_accuracy"] is not None and "student" in data["variants"]
    )
    return f"""Why our ordering may differ from the CIFAR-100 one:

* **Budget.** {settings["epochs"]} epochs ({steps} steps) on {settings["train_size"]:,}
  images, against 240 epochs on 50,000 in RepDistiller. Our student is far from converged
  (teacher vs student alone: {gaps}), and every extra term competes with the labels for the
  few steps there are; on CIFAR-100 the students train to convergence and the same terms act
  as extra signal or regularisers. DKD runs without its warm-up. For KD this was checked
  outside kdistill: a plain-PyTorch loop (Fashion-MNIST, 5,000 images, 5 epochs, the same two
  CNNs, 2 seeds) gave the student 79.45 / 80.69 %, KD at T = {kd["temperature"]} with weight
  {kd["soft_target_weight"]} 78.70 / 78.78 %, and T = 2 with weight 0.5 80.62 / 80.81 %: in
  this regime the setting, not the plumbing, decides whether KD helps.
* **Hyper-parameters.** The weights are the papers' or RepDistiller's, chosen for ResNets on
  CIFAR-100 (or 1 where none exists; FitNet's 100 gave a NaN in the first epoch and was cut
  to 10 after a trial), and nothing was tuned here. The first-epoch ratios above show which terms then
  outweigh the cross-entropy; learning rate, batch size and temperature are the same for
  every row.
* **Architectures.** {len(settings["student_channels"])}-block plain CNNs (widths
  {settings["teacher_channels"]} and {settings["student_channels"]}) against ResNets with
  three stages of residual blocks: AT matches every block, including the first, where a
  {settings["student_channels"][0]}-channel student map is pulled towards a
  {settings["teacher_channels"][0]}-channel teacher's; the relation methods relate a
  {settings["student_channels"][-1]}-dimensional embedding to a
  {settings["teacher_channels"][-1]}-dimensional one.
* **Scale.** 10 classes of 28x28 grey-scale images: soft targets over 10 classes carry far
  less per image than over 100, and on MNIST the better rows differ by tenths of a percent,
  the size of the seed-to-seed spread.
* **Seeds.** {settings["seeds"]} seeds give a standard deviation, not a significance test:
  differences within about one standard deviation are ties.
"""


def _rewritten(results: dict[str, Any]) -> str:
    wall = results["wall_seconds_this_invocation"]
    if wall >= 0.5 * results["run_seconds_total"]:
        return ""
    return (
        f" This file was written by a later invocation that read the finished runs back "
        f"({wall:.0f} s)."
    )


def _share_text(results: dict[str, Any], key: str) -> str:
    shares = [
        f"{DATASET_LABELS.get(name, name)} {entry['first_epoch_term_over_labels']:.2f}"
        for name, data in results["summary"].items()
        if (entry := data["variants"].get(key)) and entry["first_epoch_term_over_labels"]
    ]
    if not shares:
        return ""
    return " First epoch, alone: weighted term / cross-entropy = " + ", ".join(shares) + "."


def render_report(results: dict[str, Any]) -> str:
    """``README.md`` of the benchmark: command, machine, rule, table, comparison."""
    settings = results["settings"]
    machine = results["machine"]
    datasets = ", ".join(DATASET_LABELS.get(name, name) for name in results["summary"])
    method_lines = "\n".join(
        f"* **{entry['label']}**: `{json.dumps(entry['terms'])}` ({entry['source']})."
        + _share_text(results, key)
        for key, entry in results["methods"].items()
    )
    return f"""# Distillation methods, measured

Generated by `kdistill bench methods`; the per-run numbers are in `{RESULTS_NAME}`.

* Command: `{results["command"]}`
* Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["threads"]} thread(s) per run,
  torch {machine["torch"]}, Python {machine["python"]} ({machine["platform"]}).
* Wall time: {results["wall_seconds_first_to_last_run"] / 60:.1f} min from the start of the
  first run to the end of the last; the runs' own times add up to
  {results["run_seconds_total"] / 60:.1f} min.{_rewritten(results)}
* Data: {datasets}; a stratified {settings["train_size"]:,}-image training subset (the same
  for every run), tested on {"the full test set" if settings["test_size"] is None else f"{settings['test_size']:,} test images"}.
* Models: teacher `cnn` channels {settings["teacher_channels"]}, student `cnn` channels
  {settings["student_channels"]}; {settings["epochs"]} epochs for every run (teacher included),
  SGD lr {settings["lr"]} momentum 0.9 weight decay 5e-4, cosine schedule, batch
  {settings["batch_size"]}, no augmentation. Three conv blocks rather than two: with two, the
  7x7 map (receptive field about 10 pixels) is averaged straight into the classifier, and in
  a first measurement here a 2-block student (widths 8, 16) was at 30-60 % test accuracy
  after 1-3 epochs on 10,000 MNIST images, a 3-block one (8, 16, 32) at 95.6 % after 3.
* Rule: **test accuracy (%) after the last epoch**, mean ± sample std over **{settings["seeds"]}
  seeds** (seed = student initialisation and batch order; one teacher per data set). In
  brackets: difference from the student trained alone.
* "alone" = the method's term + cross-entropy with the labels (weight 1), no soft targets;
  "+ KD" = soft targets (T = {settings["kd"]["temperature"]}, weight
  {settings["kd"]["soft_target_weight"]}) + labels (weight {settings["kd"]["hard_target_weight"]})
  + the method's term. KD's row is KD itself.
* Epoch time: training seconds per epoch (evaluation excluded) over the same-seed student's,
  averaged over seeds and data sets. KD, logit L2 and DKD read cached teacher logits; every
  feature, weight or gradient method runs the teacher live, which is most of its cost (the
  weight-matching term too: a term that needs the teacher model turns the logit cache off,
  although this one reads no activations). grad-AT also back-propagates through the teacher
  and twice through the student. Computing the cached logits once per data set is not in
  the ratio.

{render_table(results)}

## Terms and weights

{method_lines}

## Against RepDistiller's CIFAR-100 table

RepDistiller (Tian et al., ICLR 2020, Table 1), resnet32x4 -> resnet8x4, top-1 %, each method
with the cross-entropy; DKD from mdistiller (Zhao et al., CVPR 2022) on the same pair.

{render_comparison(results)}

What the table says (computed from it):

{render_observations(results)}

{why_different(results)}"""
